"""scripts/gpu_check.py on the CPU at tiny sizes (fp32): the script the GPU checks run is itself always tested."""

import importlib.util
import math
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("gpu_check", Path(__file__).parents[1] / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)

TINY_LLAMA = dict(vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=128, max_position_embeddings=128, tie_word_embeddings=True)  # fmt: skip


def test_mfu_is_the_meters_flops_per_second_over_the_peak():
    out = gpu_check.mfu("cpu", pairs=2, seq_len=32, steps=2, model_kwargs=TINY_LLAMA, peak_flops=1e12)
    assert out["tokens_per_step"] == 128
    assert out["mfu"] == pytest.approx(out["flops_per_s"] / 1e12) and out["flops_per_s"] > 0
    # the meter's count of a forward + backward of the policy on 128 tokens: 6 · matmul parameters · tokens + attention
    matmul_params = 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128  # q, o; k, v (2 KV heads of 16); gate, up, down
    assert out["flops_per_s"] * out["s_per_step"] >= 6 * (2 * matmul_params + 512 * 64) * 128


def test_decode_times_every_sampler_on_smollm2():
    out = gpu_check.decode("cpu", batch=2, new_tokens=4, rounds=1)
    assert set(out) == {"own_loop", "generate", "generate_static_compiled"} and all(
        v > 0 and math.isfinite(v) for v in out.values()
    )


def test_every_algorithm_check_reports_its_steps_and_peak_memory(tmp_path):
    tiny = [
        "model=tiny",
        "task.n_train=200",
        "task.n_eval=8",
        "task.n_val=8",
        "sft.steps=20",
        "prefs.n_pairs=64",
    ]  # SmolLM2: test_real_model
    out = gpu_check.algorithms("cpu", steps=1, cache_dir=str(tmp_path), algos=["dpo", "grpo"], setting=tiny)
    for row in out.values():
        assert row["status"] == "finished", row["error"]
        assert row["steps"] >= 1 and row["s_per_step"] > 0 and row["memory/peak_bytes/update"] > 0


# -- on a GPU (`python -m pytest -m gpu`; deselected by default: CI and this project's machines have none) --------


@pytest.mark.gpu
def test_every_algorithm_runs_in_bf16_on_cuda_with_the_allocators_peak_memory(tmp_path):
    out = gpu_check.algorithms("cuda", steps=2, cache_dir=str(tmp_path))
    for algo, row in out.items():
        assert row["status"] == "finished", (algo, row["error"])
        assert row["steps"] >= 2 and 0 < row["memory/peak_bytes/update"] < 139 * 2**30, algo


@pytest.mark.gpu
def test_every_sampler_decodes_on_cuda():
    out = gpu_check.decode("cuda", batch=16, new_tokens=32, rounds=2)
    assert all(v > 0 and math.isfinite(v) for v in out.values())


@pytest.mark.gpu
def test_dpo_update_at_half_a_billion_parameters_reports_its_utilisation():
    out = gpu_check.mfu("cuda", pairs=4, seq_len=512, steps=3)
    assert 4.5e8 < out["params"] < 5.5e8 and 0 < out["mfu"] < 1
