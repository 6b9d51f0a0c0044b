"""How much of a LoRA run's update survives merging the adapters into one bf16 weight, the sampling lever
docs/real-settings.md considered: bf16(W + s·B·A) against bf16(W), per adapted weight of the policy.

    python scripts/lora_merge_rounding.py <run dir of a LoRA run with a checkpoint.pt>

Prints the share of the update's non-zero entries that round away (bf16(W + ΔW) == W), the share of the update's
squared norm they hold, and the median over weights of |ΔW| / |W| (Frobenius). W is the run's SFT stage (its
cache) as a bf16 run stores the frozen base (bench/models.py `frozen_matmuls_in`): on bf16's grid, so an entry of
ΔW under half a unit in the last place of W is dropped outright, at every merge. ΔW = (alpha / rank)·B·A from the
checkpoint's adapters."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from bench.rundir import read_checkpoint


def main(run_dir: Path) -> None:
    config = json.loads((run_dir / "config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    lora = config["model"]["lora"]
    scale = lora["alpha"] / lora["rank"]
    base = load_file(Path(config["cache_dir"]) / "sft" / summary["stages"]["sft"]["hash"] / "model.safetensors")
    checkpoint = read_checkpoint(run_dir / "checkpoint.pt")
    adapters = checkpoint["trainer"]["policy"]
    if not any(".lora_A." in key for key in adapters):
        sys.exit(f"{run_dir}: its checkpoint holds no LoRA adapters (model.lora.rank=0?)")
    lost = nonzero = 0
    lost_norm = total_norm = 0.0
    relative = []
    for key, a in adapters.items():
        if ".lora_A." not in key:
            continue
        w = base[key.split(".lora_A.")[0] + ".weight"].to(torch.bfloat16).float()
        delta = scale * adapters[key.replace(".lora_A.", ".lora_B.")].float() @ a.float()
        vanished = ((w + delta).to(torch.bfloat16).float() == w) & (delta != 0)
        lost, nonzero = lost + int(vanished.sum()), nonzero + int((delta != 0).sum())
        lost_norm, total_norm = lost_norm + float(delta[vanished].square().sum()), total_norm + float(delta.square().sum())
        relative.append(float(delta.norm() / w.norm()))
    if nonzero == 0:
        sys.exit(f"{run_dir}: its adapters are still zero (a checkpoint before the first step)")
    relative.sort()
    steps = checkpoint["meter"]["steps"]
    print(f"{run_dir} (checkpoint at step {steps}): {len(relative)} adapted weights; "
          f"{lost / nonzero:.3f} of the update's entries round away in bf16(W + ΔW), {lost_norm / total_norm:.3f} of its "
          f"squared norm; median |ΔW|/|W| {relative[len(relative) // 2]:.4f}")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
