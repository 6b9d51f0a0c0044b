"""The cached stages every run shares: SFT → preference data → reward model.

Each stage is keyed by a hash of exactly what determines it (its own config plus
the key of the stage it reads), so a sweep trains each once and every algorithm
reads byte-identical files. Their compute is recorded in the manifest and reported
beside each run's budget, not inside it.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from tqdm.auto import trange
from transformers import get_cosine_schedule_with_warmup

from bench.cache import StageCache
from bench.config import BudgetConfig, Config, ConfigError, EvalConfig, PreferenceConfig
from bench.losses import masked_mean
from bench.meter import Meter
from bench.models import ScalarHeadModel, build_policy, load_policy, with_gradient_checkpointing
from bench.optim import adamw, clip_and_step
from bench.rollout import make_batch, reward_scores, sample, token_logprobs
from bench.tasks import Task

log = logging.getLogger(__name__)
CACHE_VERSION = 3  # bump when a stage's code changes what it writes (3: train prompts skip the validation prompts)


def bradley_terry_labels(
    reward_a: torch.Tensor, reward_b: torch.Tensor, tau: float, label_noise: float, generator: torch.Generator
) -> torch.Tensor:
    """The simulated annotator: True where it prefers a over b.

    P(a ≻ b) = σ((r(a) - r(b)) / τ), then each label is flipped with probability `label_noise`.
    """
    prefer_a = torch.rand(reward_a.shape, generator=generator) < torch.sigmoid((reward_a - reward_b) / tau)
    flip = torch.rand(reward_a.shape, generator=generator) < label_noise
    return prefer_a ^ flip


def _meter() -> Meter:
    return Meter(BudgetConfig(amount=float("inf")))


def _sft(out: Path, cfg: Config, task: Task, tokenizer, prompts: list[str], device: torch.device) -> dict:
    """Demonstrations, loss on the completion tokens only: `sft.steps` steps, or, where the task sets
    `task.sft_target`, until the held-out quality reaches it (the last `sft.heldout_prompts` train prompts,
    never trained on), measured every `sft.check_every` steps, at most `sft.max_steps`."""
    torch.manual_seed(cfg.stage_seed)
    policy = build_policy(cfg.model, tokenizer).to(device)
    if cfg.sft.steps == 0:  # the pretrained model is π_sft
        policy.save_pretrained(out)
        tokenizer.save_pretrained(out)
        return {"flops": 0.0, "skipped": "sft.steps=0: the pretrained model"}
    target = cfg.task.sft_target
    heldout = prompts[len(prompts) - cfg.sft.heldout_prompts :] if target is not None else []
    if target is not None and len(heldout) >= len(prompts):
        raise ConfigError(f"sft.heldout_prompts={cfg.sft.heldout_prompts} leaves none of the {len(prompts)} train prompts to train on; raise task.n_train")
    prompts = prompts[: len(prompts) - len(heldout)]
    steps = cfg.sft.steps if target is None else cfg.sft.max_steps
    with_gradient_checkpointing(policy, cfg.model.gradient_checkpointing)
    meter = _meter()
    meter.watch(policy, "policy")
    rng = random.Random(f"sft-{cfg.stage_seed}")
    demos = [task.demonstration(p, rng) for p in prompts]
    optimizer = adamw(policy, cfg.sft.lr)
    schedule = get_cosine_schedule_with_warmup(optimizer, steps // 10, steps)
    order = torch.Generator().manual_seed(cfg.stage_seed)
    curve: list[list[float]] = []  # [step, held-out quality]
    policy.train()
    for step in (bar := trange(1, steps + 1, desc="SFT", leave=False, disable=None)):
        idx = torch.randint(len(prompts), (cfg.sft.batch_size,), generator=order).tolist()
        batch = make_batch(tokenizer, [prompts[i] for i in idx], [demos[i] for i in idx], device)
        loss = -masked_mean(token_logprobs(policy, batch), batch.completion_mask)  # completion tokens only
        loss.backward()
        clip_and_step(policy, optimizer, 1.0)
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if target is not None and step % cfg.sft.check_every == 0:
            with meter.paused():
                curve.append([step, heldout_quality(policy, tokenizer, task, heldout, cfg.eval)])
            if curve[-1][1] >= target:
                break
    policy.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {"flops": meter.flops, "final_loss": loss.item(), "steps": step}
    if target is not None:
        quality = curve[-1][1] if curve else float("nan")
        if not quality >= target:
            log.warning("SFT did not reach task.sft_target=%g in sft.max_steps=%d steps (held-out quality %.3f): raise sft.max_steps", target, steps, quality)
        info |= {"target": target, "heldout_quality": quality, "reached": quality >= target, "quality_curve": curve}
    return info


@torch.no_grad()
def heldout_quality(policy, tokenizer, task: Task, prompts: list[str], cfg: EvalConfig) -> float:
    """The SFT criterion's measure: accuracy where the task has a checker, else mean gold reward, of samples at
    the evaluator's temperature, on a fixed stream that leaves the training stream untouched."""
    policy.eval()
    devices = [torch.device("cuda")] if next(policy.parameters()).device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg.seed)
        batches = [sample(policy, tokenizer, prompts[i : i + cfg.batch_size], task.cfg.max_new_tokens, cfg.temperature)
                   for i in range(0, len(prompts), cfg.batch_size)]  # fmt: skip
    policy.train()
    pairs = [(p, c) for b in batches for p, c in zip(b.prompts, b.completions)]
    scores = [float(task.correct(p, c)) if task.has_checker else task.gold_reward(p, c) for p, c in pairs]
    return sum(scores) / len(scores)


def _preferences(out: Path, cfg: Config, task: Task, tokenizer, sft: Path, prompts: list[str], device) -> dict:
    if cfg.prefs.dataset:
        pairs = load_preference_dataset(cfg.prefs)
        pairs.save_to_disk(out / "pairs")
        return {"flops": 0.0, "pairs": len(pairs), "source": cfg.prefs.dataset}
    torch.manual_seed(cfg.stage_seed)
    policy = load_policy(sft).to(device)
    meter = _meter()
    meter.watch(policy, "policy")
    chosen_prompts = random.Random(f"prefs-{cfg.stage_seed}").choices(prompts, k=cfg.prefs.n_pairs)
    rows: dict[str, list] = {"prompt": [], "completion_a": [], "completion_b": [], "ended_a": [], "ended_b": []}
    for start in trange(0, len(chosen_prompts), cfg.sft.batch_size, desc="preference pairs", leave=False, disable=None):
        chunk = chosen_prompts[start : start + cfg.sft.batch_size]
        rows["prompt"] += chunk
        for side in "ab":
            batch = sample(policy, tokenizer, chunk, task.cfg.max_new_tokens, cfg.prefs.temperature)
            rows[f"completion_{side}"] += batch.completions
            rows[f"ended_{side}"] += batch.ended.tolist()  # a cut-off sample must not be trained on as if it had ended
    gold_a = torch.tensor([task.gold_reward(p, c) for p, c in zip(rows["prompt"], rows["completion_a"])])
    gold_b = torch.tensor([task.gold_reward(p, c) for p, c in zip(rows["prompt"], rows["completion_b"])])
    prefer_a = bradley_terry_labels(gold_a, gold_b, cfg.prefs.tau, cfg.prefs.label_noise, torch.Generator().manual_seed(cfg.stage_seed))
    pick = lambda a, b: [x if p else y for x, y, p in zip(a, b, prefer_a.tolist())]  # noqa: E731
    pairs = datasets.Dataset.from_dict({
        "prompt": rows["prompt"],
        "chosen": pick(rows["completion_a"], rows["completion_b"]),
        "rejected": pick(rows["completion_b"], rows["completion_a"]),
        "chosen_ended": pick(rows["ended_a"], rows["ended_b"]),
        "rejected_ended": pick(rows["ended_b"], rows["ended_a"]),
        "chosen_gold": pick(gold_a.tolist(), gold_b.tolist()),
        "rejected_gold": pick(gold_b.tolist(), gold_a.tolist()),
    })  # fmt: skip
    sampled = len(pairs)
    if cfg.prefs.drop_ties:
        pairs = drop_ties(pairs)
    if len(pairs) == 0:
        raise ValueError(f"all {sampled} sampled pairs are ties (equal gold reward); set prefs.drop_ties=false or raise prefs.n_pairs")
    pairs.save_to_disk(out / "pairs")
    agree = (torch.tensor(pairs["chosen_gold"]) > torch.tensor(pairs["rejected_gold"])).float().mean().item()
    truncated = 1 - (sum(rows["ended_a"]) + sum(rows["ended_b"])) / (2 * sampled)
    return {
        "flops": meter.flops, "pairs": len(pairs), "sampled_pairs": sampled, "label_gold_agreement": agree,
        "truncated_share": truncated,
    }  # fmt: skip


def drop_ties(pairs: datasets.Dataset) -> datasets.Dataset:
    """The pairs whose chosen and rejected completions differ in gold reward."""
    keep = [i for i, (c, r) in enumerate(zip(pairs["chosen_gold"], pairs["rejected_gold"])) if c != r]
    return pairs.select(keep)


def load_preference_dataset(cfg: PreferenceConfig) -> datasets.Dataset:
    """A user's preference set: a `save_to_disk` directory or a hub id, with prompt/chosen/rejected columns.
    Its responses are whole (written or kept by people), so both sides count as ended."""
    source = cfg.dataset
    try:
        pairs = datasets.load_from_disk(source) if Path(source).is_dir() else datasets.load_dataset(source, split="train")
    except Exception as e:  # a hub id that is not there, or no network: one line, not the library's traceback
        raise ConfigError(f"cannot load prefs.dataset={source!r}: {str(e).splitlines()[0]}") from e
    missing = {"prompt", "chosen", "rejected"} - set(pairs.column_names)
    if missing:
        raise ValueError(f"preference data set {source} lacks columns {sorted(missing)}")
    pairs = pairs.select_columns(["prompt", "chosen", "rejected"])
    return pairs.add_column("chosen_ended", [True] * len(pairs)).add_column("rejected_ended", [True] * len(pairs))


def _reward_model(out: Path, cfg: Config, tokenizer, sft: Path, pairs_dir: Path, device) -> dict:
    torch.manual_seed(cfg.stage_seed)
    rm = with_gradient_checkpointing(ScalarHeadModel.from_policy(load_policy(sft)).to(device), cfg.model.gradient_checkpointing)
    meter = _meter()
    meter.watch(rm, "reward_model")
    pairs = datasets.load_from_disk(str(pairs_dir))
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(cfg.stage_seed)).tolist()
    n_heldout = max(1, int(cfg.rm.heldout * len(pairs)))
    heldout, train = pairs.select(order[:n_heldout]), pairs.select(order[n_heldout:])
    steps = cfg.rm.epochs * (len(train) // cfg.rm.batch_size)
    if steps == 0:
        raise ValueError(
            f"{len(train)} preference pairs to train the reward model on, fewer than one rm.batch_size ({cfg.rm.batch_size}) "
            "batch: raise prefs.n_pairs (prefs.drop_ties may have dropped most pairs as ties)"
        )
    optimizer = adamw(rm, cfg.rm.lr)
    schedule = get_cosine_schedule_with_warmup(optimizer, steps // 10, steps)
    shuffle = torch.Generator().manual_seed(cfg.stage_seed + 1)

    def margins(rows) -> torch.Tensor:
        n = len(rows["prompt"])
        batch = make_batch(tokenizer, rows["prompt"] * 2, rows["chosen"] + rows["rejected"], device)
        scores = reward_scores(rm, batch, tokenizer.eos_token_id)  # [2n]: chosen then rejected
        return scores[:n] - scores[n:]

    rm.train()
    for step in (bar := trange(steps, desc="reward model", leave=False, disable=None)):
        epoch_pos = step % (len(train) // cfg.rm.batch_size)
        if epoch_pos == 0:
            perm = torch.randperm(len(train), generator=shuffle).tolist()
        rows = train[perm[epoch_pos * cfg.rm.batch_size : (epoch_pos + 1) * cfg.rm.batch_size]]
        loss = -F.logsigmoid(margins(rows)).mean()  # Bradley-Terry
        loss.backward()
        clip_and_step(rm, optimizer, 1.0)
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    rm.eval()
    with torch.no_grad():
        m = torch.cat([margins(heldout[i : i + 256]) for i in range(0, len(heldout), 256)])
    info = {"flops": meter.flops, "final_loss": loss.item(), "heldout_accuracy": ((m > 0).float() + 0.5 * (m == 0).float()).mean().item()}
    if "chosen_gold" in heldout.column_names:
        gold = torch.tensor(heldout["chosen_gold"]) - torch.tensor(heldout["rejected_gold"])
        distinct = gold != 0  # pairs the gold reward can order at all
        if distinct.any():
            info["heldout_gold_accuracy"] = ((m.cpu() > 0) == (gold > 0))[distinct].float().mean().item()
    rm.save_pretrained(out)
    return info


@dataclass
class Stages:
    sft: Path
    pairs: Path
    reward_model: Path
    manifests: dict[str, dict]

    def hashes(self) -> dict[str, str]:
        return {name: m["key"] for name, m in self.manifests.items()}


def sft_spec(cfg: Config, train_prompts: list[str]) -> dict:
    """What decides the SFT stage (and, through its key, the pairs and the reward model built on it): the task's
    settings but its held-out sizes, the model, the stage seed, SFT's settings, and the train prompts themselves,
    by digest: how they are drawn is code (a generated task's train prompts skip the validation prompts, so they
    change with `task.n_val`), and a key of the config alone would hand one cache entry to two prompt sets."""
    task_spec = {k: v for k, v in asdict(cfg.task).items() if k not in ("n_eval", "n_val") and not (k == "sft_target" and v is None)}
    model_spec = {k: v for k, v in asdict(cfg.model).items() if k != "gradient_checkpointing"}  # changes no weight
    prompts = hashlib.sha256("\n".join(train_prompts).encode()).hexdigest()[:16]
    criterion = ("check_every", "heldout_prompts", "max_steps")  # what training to a target adds; without one, unread
    sft = {k: v for k, v in asdict(cfg.sft).items() if cfg.task.sft_target is not None or k not in criterion}
    held_out = {"eval": {k: getattr(cfg.eval, k) for k in ("temperature", "batch_size", "seed")}} if cfg.task.sft_target is not None else {}
    return {"version": CACHE_VERSION, "task": task_spec, "model": model_spec, "stage_seed": cfg.stage_seed, "sft": sft,
            "train_prompts": prompts} | held_out  # fmt: skip


def prepare_sft(cfg: Config, task: Task, tokenizer, train_prompts: list[str], device: torch.device) -> tuple[Path, dict]:
    """The SFT stage alone, from the cache or built: its directory and manifest."""
    return StageCache(cfg.cache_dir).get_or_build("sft", sft_spec(cfg, train_prompts), lambda out: _sft(out, cfg, task, tokenizer, train_prompts, device))


def prepare_stages(cfg: Config, task: Task, tokenizer, train_prompts: list[str], device: torch.device) -> Stages:
    """Read the three stages from the cache, building the missing ones."""
    cache = StageCache(cfg.cache_dir)
    sft, sft_m = prepare_sft(cfg, task, tokenizer, train_prompts, device)
    pref_spec = {"version": CACHE_VERSION, "sft": sft_m["key"], "prefs": asdict(cfg.prefs)}
    prefs, prefs_m = cache.get_or_build(
        "preferences", pref_spec, lambda out: _preferences(out, cfg, task, tokenizer, sft, train_prompts, device)
    )
    rm_spec = {"version": CACHE_VERSION, "sft": sft_m["key"], "preferences": prefs_m["key"], "rm": asdict(cfg.rm)}
    rm, rm_m = cache.get_or_build("reward_model", rm_spec, lambda out: _reward_model(out, cfg, tokenizer, sft, prefs / "pairs", device))
    return Stages(sft, prefs / "pairs", rm, {"sft": sft_m, "preferences": prefs_m, "reward_model": rm_m})
