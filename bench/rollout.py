"""What every algorithm shares: batches of prompt + completion, sampling, log-probs, scores.

Layout of a `Batch` (prompts left-padded, completions right-padded):

    input_ids   [B, P + C]   <pad> <pad> p1 p2 p3 | c1 c2 <eos> <pad>
    attention   [B, P + C]     0     0   1  1  1  |  1  1   1     0
    completion_mask [B, C]                        |  1  1   1     0

The EOS a completion ends with is one of its actions (it is scored and trained on);
positions after it are masked. Position ids come from the attention mask, so
left padding does not shift positions. A completion cut off at `max_new_tokens` has
no EOS (`Batch.ended` is False): it is trained on as it was sampled, never given an
EOS it did not produce.

Scoring truncated completions. The reward model is trained at the EOS that closes
every completion of its pairs, and its score is read there; read at a word token, a
position it never trained on, the cached sentiment reward model scored truncated
samples 1.56 higher on average and its correlation with the gold reward fell from
0.77 to 0.43 (issue 9's figures, on policies trained under that rule;
`scripts/truncation_scores.py` measures both rules on any run's samples). So
`reward_scores` appends the EOS to a completion that lacks it, for the reward model's
forward pass only: every completion is scored as the model was
trained, and the text is judged for what it says (the gold reward sees the same text,
and a task that dislikes long answers says so in its gold reward). TRL's alternative,
scoring at the last token minus a `missing_eos_penalty`, would keep the untrained
position and add a constant to tune.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from bench import distributed


class EpochSampler:
    """Indices 0..n-1 in a fresh random order each epoch; its state is part of a checkpoint."""

    def __init__(self, n: int, seed: int):
        self.n = n
        self.generator = torch.Generator().manual_seed(seed)
        self.queue: list[int] = []
        self.taken = 0

    def epochs(self) -> dict[str, float]:
        """The trainer's `data()`: the examples an epoch passes over, and the epochs made so far."""
        return {"examples": self.n, "epochs": self.taken / self.n}

    def take(self, k: int) -> list[int]:
        """This process's k of the next k·P indices (P processes of a data-parallel run: bench/distributed.py),
        so P processes taking k see what one process taking k·P sees."""
        world, rank = distributed.world(), distributed.rank()
        self.taken += k * world
        out: list[int] = []
        while len(out) < k * world:
            if not self.queue:
                self.queue = torch.randperm(self.n, generator=self.generator).tolist()
            out.append(self.queue.pop(0))
        return out[rank * k : (rank + 1) * k]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "queue": list(self.queue), "taken": self.taken}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.queue, self.taken = list(state["queue"]), state["taken"]


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, P + C]
    attention_mask: torch.Tensor  # [B, P + C]
    completion_mask: torch.Tensor  # [B, C] float
    prompt_len: int  # P
    prompts: list[str]
    completions: list[str]
    ended: torch.Tensor  # [B] bool: the completion closed with its own EOS (False: cut off at max_new_tokens)

    @property
    def position_ids(self) -> torch.Tensor:
        return (self.attention_mask.cumsum(-1) - 1).clamp(min=0)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, idx: torch.Tensor) -> "Batch":
        rows = idx.tolist()
        return Batch(
            self.input_ids[idx], self.attention_mask[idx], self.completion_mask[idx], self.prompt_len,
            [self.prompts[i] for i in rows], [self.completions[i] for i in rows], self.ended[idx],
        )  # fmt: skip

    def closed_with_eos(self, eos_token_id: int) -> "Batch":
        """The same batch with an EOS appended to every completion that lacks one ([B, P + C + 1])."""
        B = len(self)
        extra = torch.full((B, 1), eos_token_id, dtype=self.input_ids.dtype, device=self.input_ids.device)  # masked where unused
        input_ids = torch.cat([self.input_ids, extra], 1)
        completion_mask = torch.cat([self.completion_mask, torch.zeros_like(self.completion_mask[:, :1])], 1)
        length = self.completion_mask.sum(-1).long()  # [B]
        rows = torch.arange(B, device=input_ids.device)[~self.ended]
        input_ids[rows, self.prompt_len + length[~self.ended]] = eos_token_id
        completion_mask[rows, length[~self.ended]] = 1
        attention_mask = torch.cat([self.attention_mask[:, : self.prompt_len], completion_mask.long()], 1)
        ended = torch.ones_like(self.ended)
        return Batch(input_ids, attention_mask, completion_mask, self.prompt_len, self.prompts, self.completions, ended)


def choose(candidates: list[Batch], choice: torch.Tensor, pad_token_id: int) -> Batch:
    """Row i of `candidates[choice[i]]`: each prompt's chosen completion, in one batch. The candidates hold
    the same prompts, encoded alike; their completions are padded to the widest first."""
    width = max(c.completion_mask.shape[1] for c in candidates)

    def padded(c: Batch) -> tuple[torch.Tensor, ...]:
        extra = width - c.completion_mask.shape[1]
        return F.pad(c.input_ids, (0, extra), value=pad_token_id), F.pad(c.attention_mask, (0, extra)), F.pad(c.completion_mask, (0, extra))

    ids, attention, mask = (torch.stack(t) for t in zip(*map(padded, candidates)))  # [N, B, ...]
    ended = torch.stack([c.ended for c in candidates])  # [N, B]
    rows = torch.arange(len(choice), device=choice.device)
    completions = [candidates[n].completions[i] for i, n in enumerate(choice.tolist())]
    return Batch(ids[choice, rows], attention[choice, rows], mask[choice, rows], candidates[0].prompt_len,
                 list(candidates[0].prompts), completions, ended[choice, rows])  # fmt: skip


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(prompts, padding=True, return_tensors="pt", add_special_tokens=False)
    return enc.input_ids.to(device), enc.attention_mask.to(device)


def completion_mask_from_ids(completion_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1 up to and including the first EOS (works when pad == eos, as for many hub models)."""
    is_eos = (completion_ids == eos_token_id).long()
    after_eos = (is_eos.cumsum(-1) - is_eos) > 0
    return (~after_eos).float()


def make_batch(tokenizer, prompts: list[str], completions: list[str], device, ended: list[bool] | None = None) -> Batch:
    """A batch of given completions (demonstrations, preference pairs), each closed by EOS unless
    `ended` says it was cut off (a sampled completion that never produced one)."""
    ended = [True] * len(completions) if ended is None else list(ended)
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, device)
    eos = [tokenizer.eos_token_id]
    tokenizer_right = [tokenizer(c, add_special_tokens=False).input_ids + (eos if e else []) for c, e in zip(completions, ended)]
    width = max(len(ids) for ids in tokenizer_right)
    comp = torch.full((len(prompts), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width))
    for i, ids in enumerate(tokenizer_right):
        comp[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
    comp, mask = comp.to(device), mask.to(device)
    return Batch(
        torch.cat([prompt_ids, comp], 1), torch.cat([prompt_mask, mask.long()], 1), mask,
        prompt_ids.shape[1], list(prompts), list(completions), torch.tensor(ended, device=device),
    )  # fmt: skip


def cache_argument(model: PreTrainedModel) -> str:
    """The name `forward` takes the KV cache by: transformers 5.25 renamed `past_key_values` to `cache`, and
    warns at every call made with the old name (one warning per decoded token in every run's log)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@torch.no_grad()
def sample(model: PreTrainedModel, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float = 1.0) -> Batch:
    """Sample one completion per prompt: prefill, then one token at a time through the KV cache.

    Plain ancestral sampling at `temperature` (no top-k, no top-p), so the log-probs the
    losses use are the probabilities the tokens were drawn with. A hand-written loop
    rather than `generate`: it took 0.70-0.92 of `generate`'s time on a 2-core CPU at
    these sizes (`scripts/bench_generation.py`); `tests/test_rollout.py` checks that the
    loop and greedy `generate` agree token for token.
    """
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, model.device)
    was_training = model.training
    model.eval()
    mask, positions = prompt_mask, (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    cache = {cache_argument(model): DynamicCache()}
    # the vocabulary head on the last prompt position only: the others predict nothing anyone draws
    logits = model(input_ids=prompt_ids, attention_mask=mask, position_ids=positions, **cache, use_cache=True, logits_to_keep=1).logits[:, -1]
    done = torch.zeros(len(prompts), dtype=torch.bool, device=model.device)
    tokens = []
    for _ in range(max_new_tokens):
        token = torch.multinomial(F.softmax(logits.float() / temperature, -1), 1).squeeze(-1)  # [B]
        token = torch.where(done, tokenizer.pad_token_id, token)
        tokens.append(token)
        done |= token == tokenizer.eos_token_id
        if done.all() or len(tokens) == max_new_tokens:  # no forward pass for a token nobody will draw
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        positions = positions[:, -1:] + 1
        logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=positions, **cache, use_cache=True).logits[:, -1]
    model.train(was_training)
    completion_ids = torch.stack(tokens, 1)  # [B, C]
    completion_mask = completion_mask_from_ids(completion_ids, tokenizer.eos_token_id)
    completion_ids = torch.where(completion_mask.bool(), completion_ids, tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
    return Batch(
        torch.cat([prompt_ids, completion_ids], 1), torch.cat([prompt_mask, completion_mask.long()], 1), completion_mask,
        prompt_ids.shape[1], list(prompts), texts, done,
    )  # fmt: skip


LOGPROB_CHUNK_BYTES = 64 * 2**20
"""How many bytes of float32 [rows, C, V] log-probabilities `token_logprobs` holds at once."""


def token_logprobs(model: PreTrainedModel, batch: Batch, temperature: float = 1.0, with_entropy: bool = False):
    """log π(c_t | prompt, c_<t) for every completion position: [B, C] (and the entropy, [B, C], a metric: no gradient).

    The float32 log-softmax over the vocabulary is taken a chunk of rows at a time (`LOGPROB_CHUNK_BYTES`)
    and the entropy in the same chunk, so outside autograd the memory beyond the model's own logits is
    one chunk, not the [B, C, V] log-softmax plus its exp() for the entropy (at a 49 k vocabulary and
    64 × 512 tokens, 6.4 GB each). Under autograd the log-softmax of every chunk is kept for the backward
    pass, as it must be. Per row it is the very computation of the unchunked form, so the values are
    identical to it bit for bit (`scripts/logprob_memory.py` measures the memory).

    The vocabulary head runs on the last C + 1 positions only (`logits_to_keep`, as TRL does): the prompt's
    positions predict no completion token, and on SmolLM2 the head is 21 % of the matmul weights. The kept
    rows' logits are the full pass's bit for bit (tests/test_rollout.py); the meter counts the head's rows.
    """
    completion_len = batch.input_ids.shape[1] - batch.prompt_len
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                   logits_to_keep=completion_len + 1).logits  # fmt: skip
    logits = logits[:, :-1]  # [B, C, V] in the model's dtype: position t predicts token t+1
    targets = batch.input_ids[:, batch.prompt_len :, None]  # [B, C, 1]
    rows = max(1, LOGPROB_CHUNK_BYTES // (4 * logits.shape[1] * logits.shape[2]))
    logp, entropy = [], []
    for start in range(0, logits.shape[0], rows):
        logp_all = F.log_softmax(logits[start : start + rows].float() / temperature, -1)  # [rows, C, V]
        logp.append(logp_all.gather(-1, targets[start : start + rows]).squeeze(-1))
        if with_entropy:
            with torch.no_grad():
                entropy.append(-(logp_all.exp() * logp_all).sum(-1))
    if not with_entropy:
        return torch.cat(logp)
    return torch.cat(logp), torch.cat(entropy)


def sequence_values(model, batch: Batch) -> torch.Tensor:
    """A critic's V(s_t) for each completion token t, read at the token before it: [B, C]."""
    values = model(batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids)
    return values[:, batch.prompt_len - 1 : -1].float()


def last_token_scores(values: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Pick each row's value at its last completion token: [B, C] -> [B]."""
    last = completion_mask.sum(-1).long().clamp(min=1) - 1
    return values.gather(-1, last[:, None]).squeeze(-1)


def reward_scores(model, batch: Batch, eos_token_id: int) -> torch.Tensor:
    """Reward-model score of each completion: the head's value at the EOS that closes it, appended
    where the completion was cut off (the module docstring says why). [B]"""
    if not batch.ended.all():
        batch = batch.closed_with_eos(eos_token_id)
    values = model(batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids)
    values = values[:, batch.prompt_len :].float()  # [B, C]: value after reading token t
    return last_token_scores(values, batch.completion_mask)
