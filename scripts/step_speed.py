"""Where a PPO or GRPO step's time goes at the small preset, and what each lever for a faster step would save.

    python scripts/step_speed.py [--algos ppo grpo] [--steps 20] [--cache-dir .cache/rlhf-bench]

Builds a run of the default task (sentiment) at the small preset exactly as `rlhf-bench` does (cached stages,
default settings), warms up, and times `--steps` trainer steps with their phases (rollout, scoring, update).
Then, on rollouts of the same trainer, it times each piece of work a lever would remove, interleaved with
the step so that a noisy machine affects both alike:

    old_logprobs_from_sampler   the no-grad forward that recomputes log π_old (PPO; GRPO when the rollout gets
                                several optimiser steps). The sampler saw each token's logits already; the
                                script also reports how far its log-probs are from the recomputed ones.
    foreach_adamw               AdamW's multi-tensor step instead of the per-parameter loop: bit-identical, so
                                taken since bdb3711 (bench/optim.py `adamw`); the saving is against the loop.
    fused_adamw                 AdamW's fused kernel (not bit-identical: the script prints the gap it leaves).

and prints each lever's projected step time and speed-up (step / (step - saving)).

It then bounds the levers outside the passes. Hooks time, over the same steps, what happens inside the models'
forward passes (policy, reference, reward model, critic), inside backward() and inside the optimiser steps: the
passes each algorithm needs. A lever that leaves those passes as they are (so the numbers stay the same) can at
most remove the rest of the step and the one pass that is not needed (old log-probs), so

    bound = step / (needed passes)          (medians over the same steps)

is the largest speed-up such a lever can give. Inside the passes, a lever keeps the numbers only if it runs the
same kernels: the foreach AdamW (taken, so inside the measured passes already), or less per-call cost (Python and
dispatch in the model's modules). The fixed cost of a forward call (a one-token forward of the policy) times the
forward calls per step bounds the latter; the second bound takes it away as well, a limit no implementation
reaches (the kernels of a one-token forward are part of it). Faster kernels (fusion, `torch.compile`, bf16)
change the numbers.

Measured at commit f251e7c on the 2-core CPU (torch 2.13, 2 threads, 20 steps): PPO 362 ms a step (rollout 43,
scoring 63, update 252), GRPO 139 ms (rollout 40, scoring 42, update 57). The foreach AdamW saved 1.009x (PPO)
and 1.008x (GRPO); old log-probs from the sampler would save 1.04x and 1.11x, the fused AdamW 1.07x and 1.04x.
92 % (PPO) and 91 % (GRPO) of a step is inside the passes, so a lever outside them gives at most 1.14x and
1.24x, and 1.26x and 1.51x even if a forward call's fixed cost (1.5-1.7 ms, a one-token forward; 20 and 13
calls a step) were zero as well: the 1.5x asked for is out of reach for PPO at the same numbers, and for GRPO
needs forward calls with no fixed cost at all. The sizes are small (64 sequences of 13 tokens, hidden 128), so
each operator's fixed cost weighs. The sampler's log-probs differ from the recomputed ones by up to 3e-6
(float32, KV cache vs one full pass): not the same numbers, and in bf16 on a GPU a larger gap that would show
up as clipping; the fused AdamW leaves weights 4e-9 apart.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from transformers import DynamicCache

from bench.app import CONF_DIR
from bench.config import to_object
from bench.rollout import Batch, cache_argument, encode_prompts, sample, token_logprobs
from bench.runner.build import build


def built_run(algo: str, cache_dir: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"algo={algo}", f"cache_dir={cache_dir}", "logger.wandb_mode=disabled"])
    return build(to_object(cfg), Path(tempfile.mkdtemp()), OmegaConf.to_container(cfg, resolve=True), None, {"group": ""}, None)


@torch.no_grad()
def sampler_logprobs(model, tokenizer, prompts: list[str], max_new_tokens: int):
    """The own sampling loop (bench.rollout.sample, no EOS handling) keeping log π of each drawn token: (prompt ids, tokens, log-probs)."""
    ids, mask = encode_prompts(tokenizer, prompts, model.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache, tokens, logps = {cache_argument(model): DynamicCache()}, [], []
    model.eval()
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, **cache, use_cache=True).logits[:, -1]
    for _ in range(max_new_tokens):
        logp_all = F.log_softmax(logits.float(), -1)
        token = torch.multinomial(logp_all.exp(), 1).squeeze(-1)
        tokens.append(token)
        logps.append(logp_all.gather(-1, token[:, None]).squeeze(-1))
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        positions = positions[:, -1:] + 1
        logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=positions, **cache, use_cache=True).logits[:, -1]
    model.train()
    return ids, torch.stack(tokens, 1), torch.stack(logps, 1)


class PassClock:
    """Wall time inside the models' forward calls, inside backward() and inside optimiser steps, while `on`."""

    def __init__(self):
        self.on = False
        self._started: dict[str, float] = {}
        self.reset()
        register_optimizer_step_pre_hook(lambda *_: self._start("optimiser"))
        register_optimizer_step_post_hook(lambda *_: self._stop("optimiser"))
        backward = torch.Tensor.backward

        def timed_backward(tensor, *args, **kwargs):
            self._start("backward")
            backward(tensor, *args, **kwargs)
            self._stop("backward")

        torch.Tensor.backward = timed_backward

    def reset(self) -> None:
        self.seconds = {"forward": 0.0, "backward": 0.0, "optimiser": 0.0}
        self.forward_calls = 0

    def watch(self, models: list[torch.nn.Module]) -> None:
        for model in models:
            model.register_forward_pre_hook(lambda *_: self._start("forward"))
            model.register_forward_hook(lambda *_: self._stop("forward"))

    def _start(self, what: str) -> None:
        self._started[what] = time.perf_counter()

    def _stop(self, what: str) -> None:
        if self.on:
            self.seconds[what] += time.perf_counter() - self._started[what]
            self.forward_calls += what == "forward"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["ppo", "grpo"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cache-dir", default=".cache/rlhf-bench")
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}, {args.steps} steps each, small preset, task sentiment, default settings")
    med = statistics.median
    clock = PassClock()
    for algo in args.algos:
        b = built_run(algo, args.cache_dir)
        trainer, ctx = b.trainer, b.trainer.ctx
        trained = [trainer.policy] + ([trainer.critic] if hasattr(trainer, "critic") else [])  # PPO's critic has its own optimiser
        models = [*trained, ctx.reference, ctx.reward_model]
        clock.reset()
        clock.watch(models)
        for _ in range(3):
            trainer.step()
        b.phases.pop()
        policy = trainer.policy
        twins = {kind: copy.deepcopy(policy) for kind in ("single", "foreach", "fused")}
        optimizers = {kind: torch.optim.AdamW(twins[kind].parameters(), lr=1e-5, weight_decay=0.0, **{kind: True} if kind != "single" else {"foreach": False}) for kind in twins}  # fmt: skip
        step_s, passes_s, old_s, adam_s = [], [], [], {kind: [] for kind in optimizers}
        prompts = ctx.train_prompts[:64]
        for _ in range(args.steps):
            clock.on, before = True, sum(clock.seconds.values())
            start = time.perf_counter()
            trainer.step()
            step_s.append(time.perf_counter() - start)
            clock.on = False
            passes_s.append(sum(clock.seconds.values()) - before)
            batch = sample(policy, ctx.tokenizer, prompts, ctx.task.cfg.max_new_tokens)  # a rollout's 64 rows, as both take
            with torch.no_grad():
                start = time.perf_counter()
                token_logprobs(policy, batch)
                old_s.append(time.perf_counter() - start)
            grads = [torch.randn_like(p) * 1e-3 for p in policy.parameters()]
            for kind, optimizer in optimizers.items():
                for p, g in zip(twins[kind].parameters(), grads):
                    p.grad = g.clone()
                start = time.perf_counter()
                optimizer.step()
                adam_s[kind].append(time.perf_counter() - start)
        phases = b.phases.pop()
        step = med(step_s)
        optimiser_steps = ctx.meter.steps / (3 + args.steps) * len(trained)
        savings = {
            "old_logprobs_from_sampler": med(old_s),
            "foreach_adamw": (med(adam_s["single"]) - med(adam_s["foreach"])) * optimiser_steps,
            "fused_adamw": (med(adam_s["foreach"]) - med(adam_s["fused"])) * optimiser_steps,  # against the trainers' foreach
        }
        print(f"\n{algo}: {step * 1e3:.1f} ms per step (median); phases per step: "
              + ", ".join(f"{k.rsplit('/', 1)[-1]} {v / args.steps * 1e3:.1f} ms" for k, v in phases.items() if k.startswith("perf/phase_s")))  # fmt: skip
        taken = savings.pop("foreach_adamw")
        print(f"  {'foreach_adamw (taken)':28s} saved {taken * 1e3:5.1f} ms: {(step + taken) / step:.3f}x (per-parameter loop / this step)")
        for lever, saved in savings.items():
            print(f"  {lever:28s} saves {saved * 1e3:6.1f} ms: {step / (step - saved):.3f}x")
        gap = max((a - b).abs().max().item() for a, b in zip(twins["single"].parameters(), twins["fused"].parameters()))
        print(f"  fused vs per-parameter (= foreach) AdamW after {args.steps} steps: max |Δ weight| {gap:.1e}")
        # how far the sampler's log-probs are from the recomputed ones (the cost of using them for π_old)
        prompt_ids, completion, logp_sampler = sampler_logprobs(policy, ctx.tokenizer, prompts, ctx.task.cfg.max_new_tokens)
        print(f"  sampler vs recomputed log π_old: max |Δ| {_recomputed_gap(policy, ctx.tokenizer, prompts, prompt_ids, completion, logp_sampler):.2e}")
        # the bound on every lever that leaves the passes as they are: medians of the same steps, as `step` is
        per_step = {k: v / args.steps for k, v in clock.seconds.items()}  # means: the split of the passes
        passes = med(passes_s)
        calls = clock.forward_calls / args.steps
        fixed = _one_token_forward_s(policy)
        print(f"  inside the passes per step: forward {per_step['forward'] * 1e3:.1f} ms ({calls:.1f} calls, of which a one-token call's"
              f" fixed cost {fixed * 1e3:.2f} ms each: {fixed * calls * 1e3:.1f} ms), backward {per_step['backward'] * 1e3:.1f} ms,"
              f" optimiser {per_step['optimiser'] * 1e3:.1f} ms (means); median {passes * 1e3:.1f} ms, {passes / step:.0%} of the step")  # fmt: skip
        needed = passes - savings["old_logprobs_from_sampler"]
        free = needed - fixed * (calls - 1)  # the old log-probs' call went with its pass
        print(f"  bound for levers outside the passes, step / (passes - old log-probs): {step / needed:.3f}x;"
              f" with forward calls of no fixed cost as well: {step / free:.3f}x")  # fmt: skip


def _one_token_forward_s(model) -> float:
    """Median wall time of a no-grad forward of one token: the per-call cost of a pass, whatever its size."""
    ids = torch.zeros((1, 1), dtype=torch.long, device=model.device)
    times = []
    with torch.no_grad():
        for _ in range(50):
            start = time.perf_counter()
            model(input_ids=ids)
            times.append(time.perf_counter() - start)
    return statistics.median(times[10:])


def _recomputed_gap(policy, tokenizer, prompts, prompt_ids, completion, logp_sampler) -> float:
    _, prompt_mask = encode_prompts(tokenizer, prompts, policy.device)
    ids = torch.cat([prompt_ids, completion], 1)
    attention = torch.cat([prompt_mask, torch.ones_like(completion)], 1)
    n = len(prompts)
    batch = Batch(ids, attention, torch.ones_like(completion).float(), prompt_ids.shape[1], prompts, [""] * n, torch.zeros(n, dtype=torch.bool))
    with torch.no_grad():
        return (token_logprobs(policy, batch) - logp_sampler).abs().max().item()


if __name__ == "__main__":
    main()
