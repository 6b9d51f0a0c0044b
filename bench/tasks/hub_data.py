"""Tasks whose prompts and demonstrations come from a data set and whose gold reward comes from a judge.

The task shape is the generated tasks' (prompts, demonstrations, a gold reward, an optional checker), so
the pipeline is the same: SFT on the data set's chosen responses, pairs sampled from the SFT model and
labelled by the simulated annotator with the judge, the learned reward model as the proxy, the evaluator
scoring `eval/gold_reward` with the judge (Gao et al. 2022; AlpacaFarm). Each source is read in its own
schema, from a hub id or a `save_to_disk` directory (`task.dataset`):

    hh_rlhf         chosen / rejected: whole "\\n\\nHuman: … \\n\\nAssistant: …" transcripts; the prompt is
                    the chosen transcript up to its last "\\n\\nAssistant:", the demonstration what follows.
                    Splits train / test.
    tldr            prompt / chosen / rejected strings (a post and its summaries). Splits train / test.
    ultrafeedback   prompt (string) and chosen / rejected message lists (the binarized set); the prompt is a
                    user turn through the chat template, the demonstration the chosen assistant turn.
                    Splits train_prefs / test_prefs.
    gsm8k           question / answer ("… #### 72"); verifiable: `math-verify` checks the final number,
                    the gold reward is 1 or 0. Splits train / test (hub subset `main`).

Training prompts come from the train split, test and validation prompts (disjoint, fixed by the stage
seed) from the test split. The judge of a preference source (`task.gold_model`) is a sequence-classification
reward model, a hub id or a `save_pretrained` directory, reading prompt + completion as one text.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import datasets
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from bench.config import ConfigError, TaskConfig
from bench.tasks import register_task

HH_ASSISTANT = "\n\nAssistant:"


@dataclass
class DatasetTaskConfig(TaskConfig):
    dataset: str = ""
    """A hub id or a `save_to_disk` directory in the source's own schema."""
    subset: str | None = None
    """The hub data set's configuration name, where it has several (GSM8K: `main`)."""
    max_new_tokens: int = 64

    def __post_init__(self) -> None:
        if not self.dataset:
            raise ConfigError(f"task {self.name} reads its prompts from a data set: set task.dataset=<hub id or save_to_disk directory>")


@dataclass
class JudgedTaskConfig(DatasetTaskConfig):
    gold_model: str | None = None
    """The judge: a sequence-classification reward model (hub id or `save_pretrained` directory)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.gold_model:
            raise ConfigError(f"task {self.name} has no gold judge: set task.gold_model=<a sequence-classification reward model, hub id or directory>")


class GoldJudge:
    """A sequence-classification reward model standing in for the hidden truth: its logit on prompt + completion."""

    def __init__(self, name: str, device: torch.device):
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name)
            # float32 on every device, so the hidden truth scores the same on a GPU as here
            self.device = device
            self.model = AutoModelForSequenceClassification.from_pretrained(name, dtype=torch.float32).to(self.device).eval()
        except Exception as e:
            raise ConfigError(f"cannot load task.gold_model={name!r}: {str(e).splitlines()[0]}") from e
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        # the longest text it reads (tokenizers often leave model_max_length unset, a huge sentinel)
        self.max_length = min(self.tokenizer.model_max_length, getattr(self.model.config, "max_position_embeddings", 512))

    @torch.no_grad()
    def __call__(self, prompt: str, completion: str) -> float:
        enc = self.tokenizer(prompt + completion, return_tensors="pt", truncation=True, max_length=self.max_length).to(self.device)
        return self.model(**enc).logits[0, 0].float().item()


@functools.lru_cache(maxsize=4)
def _load_source(dataset: str, subset: str | None) -> datasets.DatasetDict:
    """Read once per process: preflight and the run both need the splits."""
    try:
        return datasets.load_from_disk(dataset) if Path(dataset).is_dir() else datasets.load_dataset(dataset, subset)
    except Exception as e:
        raise ConfigError(f"cannot load task.dataset={dataset!r}: {str(e).splitlines()[0]}") from e


def judge_device() -> torch.device:
    """The GPU this process works on when there is one (a 0.6 B judge on the CPU would be most of a GPU run's wall
    time), by index: `hydra/launcher=local_jobs` gives each job its GPU (bench/jobs.py) and joblib hands a worker
    process job after job, so a judge loaded for one job's GPU must not be the next job's."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


@functools.lru_cache(maxsize=1)
def _judge(name: str, device: torch.device) -> GoldJudge:
    """Loaded once per job: preflight checks it loads, the run scores with it (a worker's next job on another GPU
    loads its own, and the last one's is let go)."""
    return GoldJudge(name, device)


class DatasetTask:
    """The shared part: splits, demonstrations by prompt, the judge. A source defines SPLITS and `pairs(rows)`."""

    has_checker = False
    vocabulary: list[str] = []  # real text: a pretrained tokenizer only
    best_gold_reward = float("nan")  # a reward model has no known ceiling
    chat = False
    SPLITS = ("train", "test")

    def __init__(self, cfg: DatasetTaskConfig):
        self.cfg = cfg

    @cached_property
    def data(self) -> dict[str, dict[str, str]]:
        """Per split: prompt -> chosen response, in the data set's order (the first of repeated prompts)."""
        source = _load_source(self.cfg.dataset, self.cfg.subset)
        missing = [s for s in self.SPLITS if s not in source]
        if missing:
            raise ConfigError(f"task {self.cfg.name}: task.dataset {self.cfg.dataset!r} has no split {', '.join(missing)} (it has {', '.join(source)})")
        out = {}
        for name, split in zip(("train", "test"), self.SPLITS):
            out[name] = {}
            for prompt, chosen in self.pairs(source[split]):
                out[name].setdefault(prompt, chosen)
        return out

    def pairs(self, rows: datasets.Dataset) -> list[tuple[str, str]]:
        raise NotImplementedError

    def prompts(self, split: str) -> list[str]:
        """The distinct prompts of `train` or `test`, in the data set's order (`prompt_splits` shuffles them)."""
        return list(self.data[split])

    def sample_prompt(self, rng: random.Random) -> str:
        raise NotImplementedError(f"task {self.cfg.name} takes its prompts from its data set (`prompts`)")

    def demonstration(self, prompt: str, rng: random.Random) -> str:
        return self.response(prompt)

    @cached_property
    def responses(self) -> dict[str, str]:
        """Every split's prompt -> response, and each chat-rendered prompt once it has been looked up."""
        return {p: r for split in self.data.values() for p, r in split.items()}

    def response(self, prompt: str) -> str:
        """The data set's response to `prompt` (the raw prompt, or the same rendered through a chat template).
        A rendered prompt is searched for once and remembered: rewards ask for it at every sample."""
        if prompt not in self.responses:
            self.responses[prompt] = next(r for split in self.data.values() for raw, r in split.items() if raw in prompt)
        return self.responses[prompt]

    def correct(self, prompt: str, completion: str) -> bool:
        raise NotImplementedError(f"{self.cfg.name} has no exact check (has_checker is False)")


class JudgedTask(DatasetTask):
    """A preference source: the gold reward is the judge's score."""

    @property
    def judge(self) -> GoldJudge:
        return _judge(self.cfg.gold_model, judge_device())

    def gold_reward(self, prompt: str, completion: str) -> float:
        return self.judge(prompt, completion)


class HHRLHF(JudgedTask):
    def pairs(self, rows: datasets.Dataset) -> list[tuple[str, str]]:
        out = []
        for chosen in rows["chosen"]:
            cut = chosen.rfind(HH_ASSISTANT) + len(HH_ASSISTANT)
            out.append((chosen[:cut], chosen[cut:].lstrip(" ")))
        return out


class TLDR(JudgedTask):
    def pairs(self, rows: datasets.Dataset) -> list[tuple[str, str]]:
        return list(zip(rows["prompt"], (c.lstrip(" ") for c in rows["chosen"])))


class UltraFeedback(JudgedTask):
    chat = True
    SPLITS = ("train_prefs", "test_prefs")

    def pairs(self, rows: datasets.Dataset) -> list[tuple[str, str]]:
        return [(prompt, next(m["content"] for m in reversed(chosen) if m["role"] == "assistant")) for prompt, chosen in zip(rows["prompt"], rows["chosen"])]


class GSM8K(DatasetTask):
    """Grade-school maths (`question` / `answer`, the answer's reasoning ending in `#### <number>`): a verifiable
    task. The demonstration is the reference reasoning; a completion is correct when `math-verify` finds the
    reference number in it (its last answer), and the gold reward is 1 or 0."""

    has_checker = True
    chat = True
    best_gold_reward = 1.0

    def pairs(self, rows: datasets.Dataset) -> list[tuple[str, str]]:
        return list(zip(rows["question"], rows["answer"]))

    @cached_property
    def verifier(self):
        try:
            from math_verify import parse, verify
        except ImportError as e:
            raise ConfigError("task gsm8k checks answers with math-verify: pip install 'rlhf-bench[real]'") from e
        return parse, verify

    def correct(self, prompt: str, completion: str) -> bool:
        parse, verify = self.verifier
        reference = self.response(prompt).rsplit("####", 1)[-1].strip().replace(",", "")
        return bool(verify(parse(reference), parse(completion)))

    def gold_reward(self, prompt: str, completion: str) -> float:
        return float(self.correct(prompt, completion))


register_task("hh_rlhf", JudgedTaskConfig, HHRLHF)
register_task("tldr", JudgedTaskConfig, TLDR)
register_task("ultrafeedback", JudgedTaskConfig, UltraFeedback)
register_task("gsm8k", DatasetTaskConfig, GSM8K)
