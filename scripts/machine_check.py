"""Does this machine compute a release's stages bit for bit? The release's gate against mixing machine kinds (exit 4).

A release runs in parts, each on whatever machine its session gets, and every part rebuilds the cached stages it
needs (the cache is not committed). Runs paired by stage seed must read the same stage weights, and CPUs of other
kinds do not compute them bit for bit. Measured on 2026-12-07 with this script (`--rebuild` on the committed
results/runs): a Xeon with AMX (amx_bf16, avx512_bf16) rebuilt arithmetic stage seed 3's SFT (the small preset,
float32) as content cbcf754f4f6f7fbe, held-out accuracy 0.511, where the release's 378 runs of its first 11 parts
had all read bbbe12f1951c77e6 (0.540). The kernels' instruction set alone does it: on that machine,
`MKL_CBWR=AVX2` gives c3cd05d279f8a65b, `MKL_CBWR=COMPATIBLE` 9505647659ad69bb, and none of nine such settings
gives the release's content. (That part's SmolLM2 runs, not kept, read other reward models (bf16 training) and the
same sampled preference pairs.) Runs of such a machine fail the release only at its end (`bench/results/release.py`),
hours later; this check stops it first.

    python scripts/machine_check.py RUNS             the stage contents RUNS's finished runs recorded agree per stage
    python scripts/machine_check.py RUNS --rebuild   and this machine rebuilds the cheapest recorded SFT stage (the
                                                     release's: arithmetic's, about 40 s on 2 cores) into a scratch
                                                     cache with the content its runs recorded

Exit 0: they agree (or RUNS has no finished run); 4: they do not, naming the stages (and, rebuilt, both contents);
2: the recorded stage cannot be rebuilt from its run's overrides (another key: the code or config differ). With
--rebuild, a machine that passes is added to RUNS/machines (which kinds ran the release; the message of exit 4
cites it). The probe is a float32 SFT: a machine whose float32 matches and whose bf16 does not (SmolLM2's stages)
passes it, and the check after the phase that rebuilt such a stage stops the release.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml
from hydra import compose, initialize_config_dir

from bench import rundir
from bench.app import CONF_DIR
from bench.cache import content_digest
from bench.config import to_object
from bench.models import build_tokenizer
from bench.results.load import load_summaries
from bench.results.release import rebuilt_stages
from bench.runner.build import pick_device
from bench.stages import prepare_sft
from bench.tasks import build_task, chat_prompts, prompt_splits

OTHER_BITS = 4
MACHINES = "machines"


def this_machine() -> str:
    """The CPU as the kernels see it: its model, torch's vector ISA, the bf16 and AMX instructions oneDNN uses."""
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    info = dict(reversed([tuple(part.strip() for part in line.split(":", 1)) for line in lines if ":" in line]))
    bf16 = "".join(f" {f}" for f in ("avx512_bf16", "amx_bf16") if f in info.get("flags", "").split())
    cpu = f"{info.get('model name', 'unknown CPU')} (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"
    cores = len(os.sched_getaffinity(0))  # this process's, as bench/jobs.py counts them
    return f"{cpu}, {torch.backends.cpu.get_cpu_capability()}{bf16}, {cores} cores"


def recorded_machines(runs: Path) -> str:
    """The machines RUNS/machines lists, each once (a line per part: its date, then the machine)."""
    lines = (runs / MACHINES).read_text().splitlines() if (runs / MACHINES).exists() else []
    return "; ".join(dict.fromkeys(line.partition(" ")[2] for line in lines if line.strip())) or "not recorded"


def record(runs: Path) -> None:
    runs.mkdir(parents=True, exist_ok=True)
    with (runs / MACHINES).open("a") as f:
        f.write(f"{time.strftime('%Y-%m-%d')} {this_machine()}\n")


def cheapest_built_sft(run_dirs: list[Path]) -> Path | None:
    """The run whose SFT stage cost the fewest FLOPs to build (a pretrained model's skipped SFT proves nothing)."""
    sfts = [((rundir.read_summary(d) or {}).get("stages", {}).get("sft", {}), str(d)) for d in run_dirs]
    built = [(sft["flops"], d) for sft, d in sfts if sft.get("flops") and sft.get("hash") and sft.get("content")]
    return Path(min(built)[1]) if built else None


def rebuilt_sft(run_dir: Path, cache: Path) -> tuple[dict, str]:
    """The manifest of `run_dir`'s SFT stage built again, from the run's own overrides, into `cache`, and the device."""
    overrides = [o for o in yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) if not o.startswith("cache_dir=")]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = to_object(compose("config", overrides=[*overrides, f"cache_dir={cache}"]))
    task = build_task(cfg.task)
    tokenizer = build_tokenizer(cfg.model, task.vocabulary)
    prompts = prompt_splits(task, cfg.stage_seed)
    train = chat_prompts(prompts, tokenizer).train if task.chat else prompts.train
    device = pick_device(cfg.device)
    return prepare_sft(cfg, task, tokenizer, train, device)[1], device.type


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", help="a release's run directories (RELEASE_RUNS)")
    parser.add_argument("--rebuild", action="store_true", help="also rebuild the cheapest recorded SFT stage here")
    args = parser.parse_args(argv)
    runs = load_summaries([args.runs]).summaries if Path(args.runs).exists() else pd.DataFrame()
    finished = runs[runs["status"] == "finished"] if len(runs) else runs
    if finished.empty:
        print(f"machine check: no finished run in {args.runs} yet, nothing to compare")
        if args.rebuild:
            record(Path(args.runs))
        return 0
    disagree = rebuilt_stages(finished)
    if disagree:
        print(f"machine check: runs of one stage seed read other stage contents ({'; '.join(disagree[:3])}): a machine "
              "rebuilt them with other bits; move those runs aside and run them on the release's machine kind",
              file=sys.stderr)  # fmt: skip
        return OTHER_BITS
    probe = cheapest_built_sft([Path(d) for d in finished["run_dir"]]) if args.rebuild else None
    if probe is None:
        print(f"machine check: the {len(finished)} finished runs' stage contents agree")
        if args.rebuild:  # no SFT stage it built (a pretrained model's): nothing to rebuild, this machine runs them
            record(Path(args.runs))
        return 0
    summary = rundir.read_summary(probe)
    recorded = summary["stages"]["sft"]
    with tempfile.TemporaryDirectory() as cache:
        manifest, device = rebuilt_sft(probe, Path(cache))
    if manifest["key"] != recorded["hash"]:
        print(f"machine check: {probe}'s overrides give SFT stage {manifest['key']}, not its recorded {recorded['hash']}: "
              "another code or config, nothing to compare; a fresh release (a fresh RELEASE_RUNS) at this code",
              file=sys.stderr)  # fmt: skip
        return 2
    content, quality = content_digest(manifest), manifest["info"].get("heldout_quality")
    # the run's own thread count and device, where they differ: either alone can change the bits on one machine
    pairs = (("threads", summary.get("threads"), torch.get_num_threads()),
             ("device", rundir.execution_of(summary)["device"], device))  # fmt: skip
    setup = [f"{what} {theirs} there, {ours} here" for what, theirs, ours in pairs if theirs is not None and theirs != ours]
    if content != recorded["content"]:
        print(f"machine check: this machine rebuilt SFT stage {recorded['hash']} ({probe.name}'s) as content {content}, "
              f"held-out quality {quality}, where the release's runs read {recorded['content']} "
              f"({recorded.get('heldout_quality')}): it computes other bits than the machines that ran them "
              f"({recorded_machines(Path(args.runs))}; this one: {this_machine()}); continue on a machine of theirs, "
              f"or start a fresh release (a fresh RELEASE_RUNS){''.join(f'; {s}' for s in setup)}", file=sys.stderr)  # fmt: skip
        return OTHER_BITS
    print(f"machine check: this machine rebuilt SFT stage {recorded['hash']} ({probe.name}'s) bit for bit ({content})")
    record(Path(args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
