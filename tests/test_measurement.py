"""Measurement: each test pins one way a number used to be wrong (issue 9, points 1-7)."""

import json
import math

import datasets
import pytest
import torch
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel

from bench import rundir
from bench.config import ConfigError, EvalConfig, ModelConfig, to_object
from bench.evaluator import Evaluator
from bench.models import ScalarHeadModel, build_policy, build_tokenizer, with_gradient_checkpointing
from bench.rollout import last_token_scores, make_batch, reward_scores, sample
from bench.rundir import at_budget
from bench.runner.build import preflight
from bench.tasks.sentiment import Sentiment, SentimentConfig
from tests.conftest import compose_config

TASK = Sentiment(SentimentConfig(name="sentiment"))
PROMPTS = ["review the plot :", "review the music :", "review the cast :", "review the ending :"]


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    cfg = ModelConfig(preset="tiny")
    tok = build_tokenizer(cfg, TASK.vocabulary)
    return build_policy(cfg, tok).eval(), tok


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# -- 1. truncated completions -------------------------------------------------------------
def test_a_truncated_completion_is_scored_at_an_appended_eos():
    """The reward model reads every completion at an EOS: a cut-off one scores what the same text closed by EOS scores."""
    policy, tok = _tiny()
    rm = ScalarHeadModel.from_policy(policy).eval()
    texts = ["good good fine", "bad plot", "great", "dull dull dull dull"]
    with torch.no_grad():
        cut = reward_scores(rm, make_batch(tok, PROMPTS, texts, "cpu", ended=[False] * 4), tok.eos_token_id)
        closed = reward_scores(rm, make_batch(tok, PROMPTS, texts, "cpu"), tok.eos_token_id)
        b = make_batch(tok, PROMPTS, texts, "cpu", ended=[False] * 4)
        at_word = last_token_scores(rm(b.input_ids, b.attention_mask, b.position_ids)[:, b.prompt_len :], b.completion_mask)
    torch.testing.assert_close(cut, closed, rtol=0, atol=1e-6)
    assert not torch.allclose(at_word, closed)  # where the old rule read a cut-off completion: other scores


def test_a_sampled_batch_cut_off_at_max_new_tokens_is_scored_like_the_same_text_closed_by_eos():
    policy, tok = _tiny()
    rm = ScalarHeadModel.from_policy(policy).eval()
    words_or_eos = torch.full((len(tok),), -math.inf)
    words_or_eos[[i for i in range(len(tok)) if i not in (tok.pad_token_id, tok.bos_token_id, tok.unk_token_id)]] = 0
    policy.register_forward_hook(lambda m, a, out: setattr(out, "logits", out.logits + words_or_eos) or out)  # untrained: no specials
    torch.manual_seed(1)
    batch = sample(policy, tok, PROMPTS * 4, max_new_tokens=2)
    assert (~batch.ended).any()
    with torch.no_grad():
        sampled = reward_scores(rm, batch, tok.eos_token_id)
        rebuilt = reward_scores(rm, make_batch(tok, batch.prompts, batch.completions, "cpu"), tok.eos_token_id)
    torch.testing.assert_close(sampled, rebuilt, rtol=0, atol=1e-5)


def test_a_cut_off_preference_sample_gets_no_eos_it_did_not_produce(run_tiny, shared_cache, monkeypatch):
    """With 3 new tokens many samples are cut off: the pairs record it, DPO hands it to its batches, and a
    batch built that way carries no EOS for them."""
    from bench.algos import dpo

    handed = []
    monkeypatch.setattr(dpo, "make_batch", lambda *args: handed.append(list(args[4])) or make_batch(*args))
    summary, _ = run_tiny("algo=dpo", "task.max_new_tokens=3", "task.target_len=2", "budget=steps", "budget.amount=1")
    assert summary["status"] == "finished", summary.get("error")
    assert summary["stages"]["preferences"]["truncated_share"] > 0.05
    pairs = datasets.load_from_disk(f"{shared_cache}/preferences/{summary['stages']['preferences']['hash']}/pairs")
    _, tok = _tiny()
    rows = pairs[:64]
    batch = make_batch(tok, rows["prompt"], rows["chosen"], "cpu", ended=rows["chosen_ended"])
    words = torch.tensor([len(c.split()) for c in rows["chosen"]])
    assert torch.equal(batch.completion_mask.sum(-1).long(), words + torch.tensor(rows["chosen_ended"]).long())
    assert not all(rows["chosen_ended"]) and any(rows["chosen_ended"])
    # at most 256 pairs (256 sampled, ties dropped): the reference pass is one batch of chosen then rejected,
    # each with its own `ended`
    assert len(pairs) == summary["stages"]["preferences"]["pairs"] <= 256
    assert handed[0] == list(pairs["chosen_ended"]) + list(pairs["rejected_ended"])


# -- 2. dropout ---------------------------------------------------------------------------
def test_ppo_first_update_on_a_model_with_dropout_has_ratio_one(run_tiny, tmp_path):
    """GPT-2 config with dropout 0.1 everywhere: one epoch, one minibatch, so π = π_old before the update."""
    _, tok = _tiny()
    config = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.1, embd_pdrop=0.1,
                        attn_pdrop=0.1, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    summary, run_dir = run_tiny(
        "algo=ppo", "algo.epochs=1", "algo.minibatches=1", "model=hub", f"model.name={tmp_path / 'gpt2'}",
        "sft.steps=20", "budget=steps", "budget.amount=1", cache_dir=tmp_path / "cache",
    )  # fmt: skip
    assert summary["status"] == "finished", summary.get("error")
    first = next(r for r in _rows(run_dir) if "train/approx_kl" in r)
    assert first["train/approx_kl"] == 0.0
    assert first["train/clip_frac"] == 0.0


# -- 3. precision -------------------------------------------------------------------------
def test_dpo_step_zero_logit_is_exactly_zero_under_bf16_autocast(run_tiny):
    """Reference and policy log-probs under the same autocast: β·(logp - logp_ref) = 0 for every pair at step 0."""
    summary, run_dir = run_tiny("algo=dpo", "precision=bf16", "budget=steps", "budget.amount=1")
    assert summary["status"] == "finished", summary.get("error")
    first = next(r for r in _rows(run_dir) if "train/loss" in r)
    assert first["train/rewards/chosen"] == 0.0 and first["train/rewards/rejected"] == 0.0
    assert first["train/rewards/margins"] == 0.0
    assert first["train/loss"] == pytest.approx(math.log(2), abs=1e-6)


# -- 4. win rate --------------------------------------------------------------------------
def test_the_policy_is_sampled_independently_of_the_sft_baseline():
    """Scored against itself, the SFT model draws other samples than its baseline (a coupled stream repeats them
    all: win rate exactly ½, the same gold reward); two evaluators, as two trainers get, draw the same ones."""
    policy, tok = _tiny()
    policy.train(False)
    prompts = [f"review the {w} :" for w in ("plot", "music", "cast", "ending")] * 16
    rm = ScalarHeadModel.from_policy(policy).eval()
    evaluators = [Evaluator(EvalConfig(batch_size=32), TASK, tok, prompts, PROMPTS, policy, rm) for _ in range(2)]
    first, second = (e.evaluate(policy) for e in evaluators)
    assert first == second
    assert first["eval/gold_reward"] != evaluators[0].baseline["eval/gold_reward"]
    assert first["eval/win_rate_vs_sft"] != 0.5
    assert abs(first["eval/win_rate_vs_sft"] - 0.5) < 0.15  # the same distribution, drawn twice


def test_the_validation_set_changes_no_test_number():
    """eval/* (test prompts) come from their own streams: the same with any validation set; val/* are scored alike."""
    policy, tok = _tiny()
    rm = ScalarHeadModel.from_policy(policy).eval()
    test = [f"review the {w} :" for w in ("plot", "music", "cast", "ending")] * 8
    runs = [Evaluator(EvalConfig(batch_size=16), TASK, tok, test, val, policy, rm) for val in (PROMPTS, PROMPTS[:2] * 5)]
    (a, b), (base_a, base_b) = [e.evaluate(policy) for e in runs], [e.baseline for e in runs]
    test_keys = [k for k in a if k.startswith("eval/")]
    assert test_keys and {k: a[k] for k in test_keys} == {k: b[k] for k in test_keys}
    assert {k: base_a[k] for k in test_keys} == {k: base_b[k] for k in test_keys}
    assert {k.replace("eval/", "val/") for k in test_keys} == {k for k in a if k.startswith("val/")}
    assert a["val/gold_reward"] != b["val/gold_reward"]
    assert runs[0].samples == runs[1].samples and len(runs[0].samples) == 16  # logged samples: test prompts only
    assert {s["prompt"] for s in runs[0].samples} <= set(test)


# -- 5. one meaning per name --------------------------------------------------------------
def test_dpo_does_not_log_its_pair_log_ratio_as_kl(run_tiny):
    summary, run_dir = run_tiny("algo=dpo", "budget=steps", "budget.amount=2")
    train = [r for r in _rows(run_dir) if "train/loss" in r]
    assert all("train/kl" not in r and "train/pairs_log_ratio" in r for r in train)


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_generation_share_is_the_sampling_time_alone(run_tiny, algo):
    summary, run_dir = run_tiny(f"algo={algo}", "budget=steps", "budget.amount=2")
    row = next(r for r in _rows(run_dir) if "train/loss" in r)
    assert row["perf/phase_s/scoring"] > 0
    assert row["perf/generation_share"] == pytest.approx(row["perf/phase_s/rollout"] / row["perf/step_s"], rel=1e-12)
    assert row["perf/phase_s/rollout"] + row["perf/phase_s/scoring"] + row["perf/phase_s/update"] <= row["perf/step_s"]


# -- 6. GRPO's clip -----------------------------------------------------------------------
def _grpo_policy(run_tiny, name, *overrides):
    summary, run_dir = run_tiny("algo=grpo", "algo.lr=3e-2", "budget=steps", "budget.amount=2", *overrides, name=name)
    assert summary["status"] == "finished", summary.get("error")
    rows = [r for r in _rows(run_dir) if "train/loss" in r]
    return rundir.read_checkpoint(run_dir / "checkpoint.pt")["trainer"]["policy"], rows


def test_clip_higher_changes_the_update_once_minibatches_move_the_ratio(run_tiny):
    """Two minibatches per rollout: the second step sees π ≠ π_old, so ε_high = 0.28 instead of 0.2 changes it.
    With one minibatch the ratio is 1 and ε_high cannot matter: the same weights bit for bit."""
    low, rows = _grpo_policy(run_tiny, "low", "algo.minibatches=2", "algo.eps_high=0.2")
    high, _ = _grpo_policy(run_tiny, "high", "algo.minibatches=2", "algo.eps_high=0.28")
    assert rows[0]["train/clip_frac"] > 0
    assert any(not torch.equal(low[k], high[k]) for k in low)
    one_low, one_rows = _grpo_policy(run_tiny, "one_low", "algo.minibatches=1", "budget.amount=1", "algo.eps_high=0.2")
    one_high, _ = _grpo_policy(run_tiny, "one_high", "algo.minibatches=1", "budget.amount=1", "algo.eps_high=0.28")
    assert one_rows[0]["train/clip_frac"] == 0
    assert all(torch.equal(one_low[k], one_high[k]) for k in one_low)


# -- 7. budget edges ----------------------------------------------------------------------
def test_final_metrics_are_interpolated_at_the_budget():
    """Budget 100: evals at 0 (g = 0), 60 (g = .3), 110 (g = .8): at 100, w = 40/50 = .8, g = .3 + .8·.5 = .7."""
    evals = [{"compute/flops": 0.0, "eval/gold_reward": 0.0, "compute/samples": 0},
             {"compute/flops": 60.0, "eval/gold_reward": 0.3, "compute/samples": 6, "compute/flops_by_model/policy": 50.0},
             {"compute/flops": 110.0, "eval/gold_reward": 0.8, "compute/samples": 11, "compute/flops_by_model/policy": 100.0}]  # fmt: skip
    final = at_budget(evals, "compute/flops", 100.0)
    assert final["compute/flops"] == 100.0 and final["compute/budget_fraction"] == 1.0
    assert final["eval/gold_reward"] == pytest.approx(0.7, abs=1e-12)
    assert final["compute/samples"] == pytest.approx(10.0, abs=1e-12)
    assert final["compute/flops_by_model/policy"] == pytest.approx(90.0, abs=1e-12)
    # eval_every=1: the baseline (where the policy had no counter yet: 0) is the point before; w = 100/110
    first = at_budget([evals[0], evals[2]], "compute/flops", 100.0)
    assert first["compute/flops_by_model/policy"] == pytest.approx(100.0 * 100 / 110, abs=1e-9)
    assert first["eval/gold_reward"] == pytest.approx(0.8 * 100 / 110, abs=1e-12)
    exact = at_budget(evals[:2] + [dict(evals[2], **{"compute/flops": 100.0})], "compute/flops", 100.0)
    assert exact["eval/gold_reward"] == 0.8  # a run that stops on the budget is read as it is


def test_the_sampler_runs_no_decode_step_after_the_last_token():
    """EOS banned, 3 new tokens: the prefill draws token 1, two decode steps draw tokens 2 and 3; nothing more."""
    policy, tok = _tiny()
    calls = []

    def ban_eos(module, args, kwargs, output):
        calls.append(1)
        output.logits[..., tok.eos_token_id] = -math.inf
        return output

    policy.register_forward_hook(ban_eos, with_kwargs=True)
    batch = sample(policy, tok, PROMPTS, max_new_tokens=3)
    assert batch.completion_mask.shape[1] == 3 and not batch.ended.any()
    assert len(calls) == 3


# -- real models: skipping SFT, recomputing activations ---------------------------------------
def test_gradient_checkpointing_changes_no_computed_number_but_is_another_run(run_tiny):
    """Activations recomputed in the backward pass: the same rows bit for bit (the meter counts model FLOPs, not the
    recomputation) but for seconds and memory, the same cached stages; another identity (its seconds and memory
    differ), while a run with it off keeps the identity it had before the key existed."""
    plain, plain_dir = run_tiny("algo=ppo", "budget.amount=1e10", name="plain")
    recomputed, recomputed_dir = run_tiny("algo=ppo", "budget.amount=1e10", "model.gradient_checkpointing=true", name="recomputed")
    assert recomputed["status"] == "finished", recomputed.get("error")
    numbers = lambda d: [{k: v for k, v in r.items() if not k.startswith(("perf/", "memory/", "compute/seconds"))} for r in _rows(d)]  # noqa: E731
    assert numbers(recomputed_dir) == numbers(plain_dir)
    policy, _ = _tiny()
    assert with_gradient_checkpointing(policy, True).is_gradient_checkpointing
    assert with_gradient_checkpointing(ScalarHeadModel.from_policy(policy), True).backbone.is_gradient_checkpointing
    assert not with_gradient_checkpointing(_tiny()[0], False).is_gradient_checkpointing
    assert recomputed["identity"] != plain["identity"] and recomputed["stages"] == plain["stages"]
    config = json.loads((plain_dir / "config.json").read_text())
    del config["model"]["gradient_checkpointing"]  # as a run from before the key wrote it
    assert rundir.identity(config) == plain["identity"]


def test_sft_steps_zero_makes_the_pretrained_model_the_sft_model(run_tiny, tmp_path):
    """sft.steps=0: the SFT stage holds the pretrained weights unchanged, with no SFT compute; refused for a preset."""
    _, tok = _tiny()
    torch.manual_seed(0)
    pretrained = build_policy(ModelConfig(preset="tiny"), tok)
    pretrained.save_pretrained(tmp_path / "pretrained")
    tok.save_pretrained(tmp_path / "pretrained")
    summary, _ = run_tiny("algo=dpo", "model=hub", f"model.name={tmp_path / 'pretrained'}", "sft.steps=0", "budget=steps", "budget.amount=1",
                          cache_dir=tmp_path / "cache")  # fmt: skip
    assert summary["status"] == "finished", summary.get("error")
    assert summary["stages"]["sft"]["flops"] == 0.0
    sft = load_file(tmp_path / "cache" / "sft" / summary["stages"]["sft"]["hash"] / "model.safetensors")
    assert sft.keys() == pretrained.state_dict().keys() and all(torch.equal(v, sft[k]) for k, v in pretrained.state_dict().items())
    with pytest.raises(ConfigError, match="sft.steps=0 uses the pretrained model"):
        preflight(to_object(compose_config("sft.steps=0")))
