"""The before/after samples of a result set: the SFT model's completion at compute 0 and the trained policy's at the
last evaluation, for the same prompt, from the run of the lowest stage seed and seed."""

import json

import pandas as pd

from bench.results.samples import before_after, samples_markdown, samples_table


def _write_samples(run_dir, evaluations):
    run_dir.mkdir(parents=True)
    lines = [{"compute/flops": flops, "compute/steps": steps, "prompt": prompt, "completion": completion, "gold_reward": gold}
             for flops, steps, rows in evaluations for prompt, completion, gold in rows]  # fmt: skip
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_the_same_prompt_before_training_and_at_the_last_evaluation(tmp_path):
    _write_samples(tmp_path / "a", [
        (0.0, 0, [("p1", "meh", 0.1), ("p2", "bad", -0.5)]),
        (5.0, 3, [("p1", "good", 0.4), ("p2", "fine", 0.2)]),
        (9.0, 6, [("p2", "great", 0.8), ("p1", "great good", 0.9)]),  # the prompt order of an evaluation is not relied on
    ])  # fmt: skip
    assert before_after(tmp_path / "a") == {
        "prompt": "p1",
        "before": "meh",
        "before_gold": 0.1,
        "after": "great good",
        "after_gold": 0.9,
        "after_steps": 6,
    }
    _write_samples(tmp_path / "b", [(0.0, 0, [("p1", "meh", 0.1)])])  # killed before a second evaluation
    assert before_after(tmp_path / "b") is None
    assert before_after(tmp_path / "missing") is None


def test_one_row_per_group_from_its_lowest_stage_seed_and_seed_named_by_its_settings(tmp_path):
    for name, completion in (("ss0_s1", "zero"), ("ss1_s0", "one"), ("fp32", "float")):
        _write_samples(tmp_path / name, [(0.0, 0, [("p", "sft", 0.0)]), (1.0, 2, [("p", completion, 0.5)])])
    bf16, fp32 = {"precision": "bf16"}, {"precision": "fp32"}
    runs = pd.DataFrame([
        {"task": "t", "algo": "ppo", "group": "g", "settings": bf16, "stage_seed": 1, "seed": 0, "status": "finished", "run_dir": str(tmp_path / "ss1_s0")},
        {"task": "t", "algo": "ppo", "group": "g", "settings": bf16, "stage_seed": 0, "seed": 1, "status": "finished", "run_dir": str(tmp_path / "ss0_s1")},
        {"task": "t", "algo": "ppo", "group": "h", "settings": fp32, "stage_seed": 0, "seed": 1, "status": "finished", "run_dir": str(tmp_path / "fp32")},
        {"task": "t", "algo": "dpo", "group": "i", "settings": {}, "stage_seed": 0, "seed": 0, "status": "diverged", "run_dir": str(tmp_path / "ss0_s1")},
    ])  # fmt: skip
    table = samples_table(runs)
    assert table[["label", "after"]].values.tolist() == [
        ["ppo precision=bf16", "zero"],
        ["ppo precision=fp32", "float"],
    ]  # no row: a diverged group
    assert samples_markdown(table) == [
        "- t, prompt `p`",
        "  - the SFT model (gold 0.000): sft",
        "  - **ppo precision=bf16** at step 2 (gold 0.500): zero",
        "  - **ppo precision=fp32** at step 2 (gold 0.500): float",
    ]
    table.loc[0, "before_gold"] = float("nan")  # a failed judge: its block is shown, not dropped
    assert "  - the SFT model (gold nan): sft" in samples_markdown(table)
