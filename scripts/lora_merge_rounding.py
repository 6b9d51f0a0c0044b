"""How much of a LoRA run's update survives merging the adapters into one bf16 weight, the sampling lever
docs/real-settings.md considered: bf16(W + s·B·A) against bf16(W), per adapted weight of the policy.

    python scripts/lora_merge_rounding.py <run dir of a LoRA run with a checkpoint.pt>

Prints the share of the update's non-zero entries that round away (bf16(W + ΔW) == bf16(W)) and the median over
weights of |ΔW| / |W| (Frobenius). W is the run's SFT stage (its cache), ΔW = (alpha / rank)·B·A from the
checkpoint's adapters."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file


def main(run_dir: Path) -> None:
    config = json.loads((run_dir / "config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    lora = config["model"]["lora"]
    scale = lora["alpha"] / lora["rank"]
    base = load_file(Path(config["cache_dir"]) / "sft" / summary["stages"]["sft"]["hash"] / "model.safetensors")
    checkpoint = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    adapters = checkpoint["trainer"]["policy"]
    lost = nonzero = 0
    relative = []
    for key, a in adapters.items():
        if ".lora_A." not in key:
            continue
        w = base[key.split(".lora_A.")[0] + ".weight"].float()
        delta = scale * adapters[key.replace(".lora_A.", ".lora_B.")].float() @ a.float()
        vanished = ((w + delta).to(torch.bfloat16) == w.to(torch.bfloat16)) & (delta != 0)
        lost, nonzero = lost + int(vanished.sum()), nonzero + int((delta != 0).sum())
        relative.append(float(delta.norm() / w.norm()))
    relative.sort()
    steps = checkpoint["meter"]["steps"]
    print(f"{run_dir} (checkpoint at step {steps}): {len(relative)} adapted weights; "
          f"{lost / nonzero:.3f} of the update's entries round away in bf16(W + ΔW); median |ΔW|/|W| {relative[len(relative) // 2]:.4f}")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
