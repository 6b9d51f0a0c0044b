"""The simulated annotator: Bradley-Terry label frequencies, label noise, and the ties it skips."""

import datasets
import torch

from bench.models import build_tokenizer
from bench.stages import bradley_terry_labels, drop_ties, prepare_stages
from bench.tasks import build_task, prompt_splits
from tests.conftest import tiny_config

N = 40_000
# 4 standard errors of a frequency near 0.5 at N draws: a failure is a real bias, not noise
TOL = 4 * (0.25 / N) ** 0.5


def _freq(diff: float, tau: float, noise: float, seed: int = 0) -> float:
    r_a = torch.full((N,), diff)
    labels = bradley_terry_labels(r_a, torch.zeros(N), tau, noise, torch.Generator().manual_seed(seed))
    return labels.float().mean().item()


def test_label_frequency_matches_bradley_terry():
    """P(a ≻ b) = σ(Δ/τ): Δ = 0.1, τ = 0.1 -> σ(1) = 0.731059; Δ = -0.2, τ = 0.5 -> σ(-0.4) = 0.401312; Δ = 0 -> 0.5."""
    assert abs(_freq(0.1, 0.1, 0.0) - 0.731059) < TOL
    assert abs(_freq(-0.2, 0.5, 0.0) - 0.401312) < TOL
    assert abs(_freq(0.0, 1.0, 0.0) - 0.5) < TOL


def test_label_noise_flips_the_expected_fraction():
    """Noise ε mixes: P = (1 - ε)·p + ε·(1 - p). A sure preference (p ≈ 1) with ε = 0.2 -> 0.8; p = 0.731, ε = 0.1 -> 0.684953."""
    assert abs(_freq(10.0, 0.1, 0.2) - 0.8) < TOL
    assert abs(_freq(0.1, 0.1, 0.1) - 0.684953) < TOL


def test_labels_are_reproducible_from_the_generator():
    assert _freq(0.05, 0.1, 0.1, seed=3) == _freq(0.05, 0.1, 0.1, seed=3)


def test_drop_ties_keeps_exactly_the_pairs_whose_gold_rewards_differ():
    pairs = datasets.Dataset.from_dict({
        "prompt": list("abcde"), "chosen": list("ABCDE"), "rejected": list("vwxyz"),
        "chosen_gold": [1.0, 0.0, 0.5, 0.5, -0.2], "rejected_gold": [0.0, 0.0, 0.5, 0.4, -0.2],
    })  # fmt: skip
    assert drop_ties(pairs)["prompt"] == ["a", "d"]


def test_the_arithmetic_stage_drops_its_coin_flip_pairs(shared_cache):
    """Two wrong (or two right) answers tie; with drop_ties the stage keeps exactly the other pairs, in order."""
    built = {}
    for drop in (True, False):
        # a reward-model batch of 2: the tiny SFT model's pairs are nearly all ties (tests/conftest.py)
        cfg, _ = tiny_config(shared_cache, "task=arithmetic", f"prefs.drop_ties={drop}", "rm.batch_size=2")
        task = build_task(cfg.task)
        stages = prepare_stages(cfg, task, build_tokenizer(cfg.model, task.vocabulary), prompt_splits(task, 0).train, torch.device("cpu"))
        built[drop] = (datasets.load_from_disk(str(stages.pairs)), stages.manifests["preferences"]["info"])
    (kept, info), (everything, _) = built[True], built[False]
    differ = [r for r in everything if r["chosen_gold"] != r["rejected_gold"]]
    assert 0 < len(differ) < len(everything) == info["sampled_pairs"]  # ties exist on this task, and not only ties
    assert kept.to_list() == differ and info["pairs"] == len(kept)
