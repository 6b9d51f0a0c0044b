"""The shared rollout: the KV-cache sampler against `generate`, masks, log-probs."""

import warnings

import torch

from bench.config import ModelConfig
from bench.models import build_policy, build_tokenizer
from bench.rollout import completion_mask_from_ids, encode_prompts, make_batch, sample, token_logprobs
from bench.tasks.arithmetic import Arithmetic, ArithmeticConfig

VOCAB = Arithmetic(ArithmeticConfig(name="arithmetic")).vocabulary
PROMPTS = ["4 7 + 3 8 =", "7 + 3 =", "1 2 + 3 4 =", "9 + 9 9 ="]  # uneven lengths: left padding


def _model():
    torch.manual_seed(0)
    cfg = ModelConfig(preset="tiny")
    tok = build_tokenizer(cfg, VOCAB)
    return build_policy(cfg, tok).eval(), tok


def test_sampler_at_zero_temperature_equals_greedy_generate():
    model, tok = _model()
    ids, mask = encode_prompts(tok, PROMPTS, "cpu")
    greedy = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False,
                            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)[:, ids.shape[1]:]  # fmt: skip
    batch = sample(model, tok, PROMPTS, 6, temperature=1e-6)
    ours = batch.input_ids[:, batch.prompt_len :]
    width = min(ours.shape[1], greedy.shape[1])
    keep = batch.completion_mask[:, :width].bool()
    assert torch.equal(ours[:, :width][keep], greedy[:, :width][keep])


def test_log_probs_of_a_batch_do_not_depend_on_its_padding():
    """The same completion scored alone and inside a left-padded batch gets the same log-probs."""
    model, tok = _model()
    together = make_batch(tok, PROMPTS, ["5 8", "0 1", "6 4", "8 0 1"], "cpu")
    with torch.no_grad():
        lp_all = token_logprobs(model, together)
        for i, (p, c) in enumerate(zip(together.prompts, together.completions)):
            alone = make_batch(tok, [p], [c], "cpu")
            lp = token_logprobs(model, alone)
            n = int(alone.completion_mask.sum())
            torch.testing.assert_close(lp_all[i, :n], lp[0, :n], atol=1e-5, rtol=0)


def test_completion_mask_stops_after_the_first_eos():
    eos = 2
    ids = torch.tensor([[5, 6, eos, 7, eos], [eos, 5, 5, 5, 5], [5, 5, 5, 5, 5]])
    assert completion_mask_from_ids(ids, eos).tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]


def test_sampled_batch_has_consistent_masks_and_texts():
    model, tok = _model()
    torch.manual_seed(1)
    batch = sample(model, tok, PROMPTS * 4, 5)
    comp = batch.input_ids[:, batch.prompt_len :]
    assert (comp[batch.completion_mask == 0] == tok.pad_token_id).all()
    assert torch.equal(batch.attention_mask[:, batch.prompt_len :].float(), batch.completion_mask)
    special = torch.tensor(tok.all_special_ids)
    words = [int((torch.isin(c, special, invert=True) & m.bool()).sum()) for m, c in zip(batch.completion_mask, comp)]
    assert [len(t.split()) for t in batch.completions] == words


def test_chunked_log_probs_and_entropy_equal_the_full_vocabulary_log_softmax_bit_for_bit(monkeypatch):
    """Chunks of 1 to 3 rows (the chunk size forced down) give exactly the unchunked log-softmax's log-probs,
    entropy and gradient (a 49 k vocabulary is `scripts/logprob_memory.py`'s case; here a 1 000-word one); the
    vocabulary head on the completion's positions only (`logits_to_keep`) gives the full pass's logits there."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench import rollout

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2))  # fmt: skip
    ids = torch.randint(3, 1000, (7, 9))
    batch = rollout.Batch(ids, torch.ones_like(ids), torch.ones(7, 5), 4, [""] * 7, [""] * 7, torch.ones(7, dtype=torch.bool))
    logits = model(input_ids=ids).logits[:, 3:-1].float() / 0.7
    full = torch.log_softmax(logits, -1)
    expected_logp = full.gather(-1, ids[:, 4:, None]).squeeze(-1)
    expected_entropy = -(full.exp() * full).sum(-1)
    (expected_grad,) = torch.autograd.grad(expected_logp.sum(), model.lm_head.weight)
    for rows in (1, 2, 3):
        monkeypatch.setattr(rollout, "LOGPROB_CHUNK_BYTES", rows * 4 * 5 * 1000)
        logp, entropy = rollout.token_logprobs(model, batch, 0.7, with_entropy=True)
        assert torch.equal(logp, expected_logp) and torch.equal(entropy, expected_entropy)
        assert not entropy.requires_grad  # a metric: nothing of it is kept for the backward pass
        (grad,) = torch.autograd.grad(logp.sum(), model.lm_head.weight)
        torch.testing.assert_close(grad, expected_grad, atol=1e-6, rtol=0)


def test_choose_takes_each_prompts_row_from_its_candidate_across_widths():
    """Two candidate batches of the same prompts with completions 2 and 3 tokens wide: row i comes from
    candidates[choice[i]], ids, masks, texts and `ended` alike, the narrower one padded."""
    from bench.rollout import choose

    _, tok = _model()
    narrow = make_batch(tok, PROMPTS[:2], ["5", "0"], "cpu")  # a word + EOS: width 2
    wide = make_batch(tok, PROMPTS[:2], ["6 4 1", "8"], "cpu", ended=[False, True])  # width 3
    picked = choose([narrow, wide], torch.tensor([1, 0]), tok.pad_token_id)
    assert narrow.completion_mask.shape[1] == 2 and wide.completion_mask.shape[1] == 3
    assert picked.completions == ["6 4 1", "0"] and picked.ended.tolist() == [False, True]
    assert torch.equal(picked.input_ids[0], wide.input_ids[0]) and torch.equal(picked.completion_mask[0], wide.completion_mask[0])
    width = picked.completion_mask.shape[1]
    assert width == 3 and torch.equal(picked.input_ids[1, : narrow.input_ids.shape[1]], narrow.input_ids[1])
    assert picked.completion_mask[1].tolist() == narrow.completion_mask[1].tolist() + [0.0] * (width - narrow.completion_mask.shape[1])


def test_the_sampler_passes_the_kv_cache_without_a_deprecation_warning():
    """transformers 5.25 warns at every forward call given `past_key_values=` (it is `cache=` now): one warning per
    decoded token in every run's log, from our own call."""
    model, tok = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        sample(model, tok, PROMPTS, 3)
