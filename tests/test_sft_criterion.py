"""SFT to its criterion: the stage trains until its held-out quality reaches `task.sft_target`, so every stage
seed's SFT model starts the algorithms from the same place."""

import pytest

from bench.models import build_tokenizer, load_policy
from bench.stages import heldout_quality, prepare_sft, sft_spec
from bench.tasks import build_task, prompt_splits
from tests.conftest import tiny_config

TARGET = -0.23
"""Tiny preset, sentiment, 500 train prompts: the held-out gold reward rises from -0.29 at step 20 to -0.18 at 300
(scripts/sft_criterion.py model=tiny task=sentiment ... task.sft_target=1e9), about 0.02 every 20 steps near here."""
BAND = 0.05


@pytest.mark.parametrize("stage_seed", [0, 1])
def test_sft_stops_at_the_first_check_at_its_target(tmp_path, stage_seed):
    cfg, _ = tiny_config(tmp_path, "task=sentiment", f"task.sft_target={TARGET}", "sft.max_steps=300", "sft.check_every=20",
                         "sft.heldout_prompts=64", f"stage_seed={stage_seed}")  # fmt: skip
    task = build_task(cfg.task)
    tokenizer = build_tokenizer(cfg.model, task.vocabulary)
    prompts = prompt_splits(task, stage_seed)
    path, manifest = prepare_sft(cfg, task, tokenizer, prompts.train, "cpu")
    info = manifest["info"]
    curve = info["quality_curve"]
    assert info["reached"] and info["steps"] == curve[-1][0] < 300 and info["steps"] % 20 == 0
    assert all(q < TARGET for _, q in curve[:-1])  # the first check at the target ends it
    assert TARGET <= info["heldout_quality"] < TARGET + BAND
    test = heldout_quality(load_policy(path), tokenizer, task, prompts.test, cfg.eval)
    assert abs(test - TARGET) < BAND, test  # on prompts it never saw, the same place


def test_the_criterion_is_part_of_the_stage_key_only_where_a_target_is_set(tmp_path):
    """Without a target the SFT key is what it was (the cache of every published run stays valid); with one, the
    target, the cap and the measurement's settings key it."""
    plain, _ = tiny_config(tmp_path)
    other_check, _ = tiny_config(tmp_path, "sft.check_every=5")
    targeted, _ = tiny_config(tmp_path, f"task.sft_target={TARGET}")
    targeted_other_check, _ = tiny_config(tmp_path, f"task.sft_target={TARGET}", "sft.check_every=5")
    prompts = ["1 2 3"]
    assert sft_spec(plain, prompts) == sft_spec(other_check, prompts)
    assert "sft_target" not in sft_spec(plain, prompts)["task"] and "max_steps" not in sft_spec(plain, prompts)["sft"]
    assert len({str(sft_spec(c, prompts)) for c in (plain, targeted, targeted_other_check)}) == 3
