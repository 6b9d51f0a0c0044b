"""The command lines of the README and docs/ that train give every algorithm they run at least one step at their stated budget.

Checked against an upper bound on what one step costs, in the meter's own FLOPs per token (bench/meter.py: 2·N
for the weights plus 4·layers·width·length for attention, a backward pass twice a forward): at most
`PASSES` forward-equivalents of every row a step touches, each as long as the longest prompt plus
`max_new_tokens` (PPO's 64 rollouts pass through policy, reference, reward model and critic, then 2 epochs of
actor and critic forward and backward: 4 + 2·2·3 = 16), plus what a trainer computes once before its first
step (DPO: the reference log-probs of every pair, chosen and rejected). A budget above the bound buys a step
for certain; `rlhf-bench model=tiny budget.amount=2e10` (the README's line before this test) is below it."""

import re
import shlex
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bench.config import to_object
from bench.models import attention_dims, build_policy, build_tokenizer, matmul_params
from bench.tasks import build_task, prompt_splits
from tests.conftest import compose_config

ROOT = Path(__file__).resolve().parent.parent
PASSES = 20


def _training_commands() -> list[str]:
    """Every `rlhf-bench ...` line of the bash blocks of the README and docs/*.md that runs the preset models here (no
    hub, GPU or cluster settings), comments and placeholders left out."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    blocks = [block for page in pages for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)]
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    app = [line for line in lines if line == "rlhf-bench" or line.startswith("rlhf-bench ")]
    skip = ("--help", "--cfg", "model=hub", "<", "qwen05b", "smollm2", "launcher=slurm")
    return [line for line in app if not any(s in line for s in skip)]


def _runs(command: str) -> list[list[str]]:
    """The overrides of each algorithm the command runs (the first value of every other swept key)."""
    args = [a for a in shlex.split(command)[1:] if a != "-m" and not a.startswith("hydra")]
    fixed = [a if "," not in a else f"{a.split('=')[0]}={a.split('=')[1].split(',')[0]}" for a in args if not a.startswith("algo=")]
    given = next((a.split("=")[1].split(",") for a in args if a.startswith("algo=")), None)
    swept = OmegaConf.load(ROOT / "conf" / ("comparison/all.yaml" if "+comparison=all" in args else "config.yaml")).hydra.sweeper.params.algo
    return [[f"algo={algo}", *fixed] for algo in given or swept.split(",")]


def _step_bound(cfg) -> float:
    task = build_task(cfg.task)
    tokenizer = build_tokenizer(cfg.model, task.vocabulary)
    prompts = prompt_splits(task, cfg.stage_seed)
    length = max(len(tokenizer(p).input_ids) for p in prompts.train) + cfg.task.max_new_tokens + 1
    model = build_policy(cfg.model, tokenizer)
    layers, width = attention_dims(model)
    per_token = 2 * matmul_params(model) + 4 * layers * width * length
    algo = cfg.algo
    rows = max(getattr(algo, "batch_size", 0) * (2 if algo.name == "dpo" else 1),
               (getattr(algo, "prompts_per_step", None) or cfg.task.n_eval) * getattr(algo, "group_size", 1))  # fmt: skip
    setup = 2 * cfg.prefs.n_pairs * length * per_token if algo.name == "dpo" else 0
    return setup + PASSES * rows * length * per_token


@pytest.mark.parametrize("command", _training_commands())
def test_every_readme_command_buys_each_of_its_algorithms_a_step(command):
    for overrides in _runs(command):
        cfg = to_object(compose_config(*overrides))
        assert cfg.budget.unit.value == "flops"
        bound = _step_bound(cfg)
        assert cfg.budget.amount >= bound, f"{command}: {overrides[0]} may buy no step ({cfg.budget.amount:.3g} < {bound:.3g})"


def test_the_bound_catches_the_line_that_bought_dpo_no_step():
    """DPO at model=tiny with the default 8 192 pairs spent 3.63e10 FLOPs on its reference log-probs (measured):
    a 2e10 budget is below the bound, as it must be, and the bound is above the measured cost."""
    cfg = to_object(compose_config("algo=dpo", "model=tiny", "budget.amount=2e10"))
    assert _step_bound(cfg) > 3.63e10 > cfg.budget.amount
