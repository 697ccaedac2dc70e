"""The reward model: a Hugging Face sequence classifier with one output, its tokenizer and its scoring spec.

    rm = RewardModel.from_pretrained("runs/demo/model")
    rm.score(["What is 2+2?"], ["4"])                      # -> [1.73]
    rm.score_messages([[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]])

A saved model is a stock Hugging Face directory (`AutoModelForSequenceClassification.from_pretrained` loads it and
gives the same logits) plus `scoring_spec.json`.
"""

from __future__ import annotations

import math
import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from rewardkit.errors import DataError, ModelError
from rewardkit.models.backbones import (
    four_bit_config,
    head_parameter_names,
    init_score_head,
    position_limit,
    rebuild_from_state_dict,
    resolve_backbone,
    tokenizer_and_spec,
    windowed_spec,
)
from rewardkit.models.packing import collate_packed, pack_sequences
from rewardkit.models.spec import (
    EncodedPair,
    LongResponses,
    ScoringSpec,
    check_pairs,
    require_at_least,
    require_list,
)
from rewardkit.models.templates import chat_template_for
from rewardkit.precision import Precision, resolve_dtype

SCORING_BATCH_SIZE = 16  # rows per forward pass when scoring: the fastest in fp32 and bf16 on the CPUs measured


class RewardModel(nn.Module):
    """Scores (prompt, response) pairs; `forward` maps token ids to one fp32 reward per row."""

    def __init__(self, model: PreTrainedModel, tokenizer, spec: ScoringSpec) -> None:
        super().__init__()
        self.model, self.tokenizer, self.spec = model, tokenizer, spec
        self.pad_token_id = tokenizer.convert_tokens_to_ids(spec.pad_token)

    # ---- loading and saving -------------------------------------------------------------------------------------
    @classmethod
    def from_backbone(
        cls,
        backbone: str,
        *,
        max_length: int = 512,
        format: str = "auto",
        trust_remote_code: bool = False,
        dtype: torch.dtype = torch.float32,
        quantize_4bit: bool = False,
        attributes: Sequence[str] | None = None,
        step_separator: str | None = None,
        token_types: bool = False,
    ) -> RewardModel:
        """A new reward model on a pretrained backbone, with a small freshly initialized score head.

        `token_types` feeds BERT-style token type ids (prompt 0, reply 1) to an encoder that has them; off by
        default, so the exported model scores the same in consumers that pass none (TRL, vLLM).

        `attributes` gives one output per named attribute (a multi-attribute head); `step_separator` makes a
        process reward model scored at the end of each step (added to the vocabulary as a special token when
        it is not one token already). `quantize_4bit` loads the frozen backbone in 4-bit NF4 for QLoRA
        (bitsandbytes, CUDA only).
        """
        source = resolve_backbone(backbone)
        tokenizer, spec = tokenizer_and_spec(backbone, source, max_length=max_length, format=format,
                                             trust_remote_code=trust_remote_code, token_types=token_types)
        if step_separator is not None:
            if spec.pooling != "last":
                raise ModelError("a process reward model needs a decoder backbone: an encoder's step tokens would "
                                 "see the later steps")
            if step_separator not in tokenizer.get_vocab():
                tokenizer.add_special_tokens({"additional_special_tokens": [step_separator]})
        spec = spec.model_copy(update={"attributes": list(attributes) if attributes else None,
                                       "step_separator": step_separator})
        path, gguf_file = source
        kwargs = {"gguf_file": gguf_file, "trust_remote_code": trust_remote_code}
        if quantize_4bit:
            kwargs["quantization_config"] = four_bit_config()
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(attributes or [None]),
                                                                   dtype=dtype, **kwargs)
        if gguf_file:  # a GGUF-loaded model refuses save_pretrained: rebuild it from its config and weights
            model = rebuild_from_state_dict(model)
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
        model.config.pad_token_id = tokenizer.pad_token_id
        init_score_head(model)
        return cls(model, tokenizer, spec)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, trust_remote_code: bool = False,
                        precision: Precision = "fp32") -> RewardModel:
        """Load a trained reward model; a missing (freshly initialized) score head or damaged weights are a
        ModelError naming the directory.

        `precision` bf16 loads bf16 weights (half the memory; fast where the hardware has bf16 matmuls), `auto`
        picks it where the hardware is fast at it (`rewardkit.precision`); rewards are fp32 either way."""
        dtype = resolve_dtype(precision)
        spec = ScoringSpec.load(directory)
        try:
            tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as err:  # json.JSONDecodeError is a ValueError
            raise ModelError(f"{directory}: the tokenizer files cannot be read ({one_line(err)}); re-export or "
                             "retrain the model") from None
        try:
            model, info = AutoModelForSequenceClassification.from_pretrained(
                directory, dtype=dtype, trust_remote_code=trust_remote_code, output_loading_info=True
            )
        except SafetensorError as err:
            raise ModelError(f"{directory}: the weights file (model.safetensors) is damaged ({err}); re-export "
                             "or retrain the model") from None
        except OSError as err:  # transformers' "no file named model.safetensors ... found"
            raise ModelError(f"{directory}: no weights to load ({one_line(err)})") from None
        limit = position_limit(model.config)
        if limit is not None and spec.max_length > limit:
            raise ModelError(f"{directory}: its scoring spec's max_length {spec.max_length} is more than the model's "
                             f"position embeddings hold ({limit} tokens); set it to {limit} or less")
        head = head_parameter_names(model)
        missing = [k for k in info["missing_keys"] if k in head]
        if missing:
            raise ModelError(f"{directory}: the score head ({', '.join(missing)}) is missing; "
                             "this is not a trained reward model")
        return cls(model.eval(), tokenizer, spec)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write a stock Hugging Face directory (safetensors) plus the scoring spec, replacing `directory` whole.

        The saved tokenizer's chat template renders conversations as the spec does (`rewardkit.models.templates`),
        and the config says `problem_type: regression` with the outputs named (`id2label`), so that consumers
        that never call rewardkit (TRL, vLLM) get the same ids and raw rewards."""
        directory = Path(directory)
        self.tokenizer.chat_template = self.consumer_template()
        self.name_outputs()
        staging = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        self.model.save_pretrained(staging, safe_serialization=True)
        self.tokenizer.save_pretrained(staging)
        self.spec.save(staging)
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)

    @property
    def _no_split_modules(self) -> list[str] | None:
        """The backbone's transformer blocks: what accelerate's FSDP plugin wraps one by one."""
        return getattr(self.model, "_no_split_modules", None)

    @property
    def precision(self) -> str:
        """'bf16' or 'fp32': the dtype the weights are held (and matmuls run) in."""
        return "bf16" if next(self.parameters()).dtype == torch.bfloat16 else "fp32"

    def consumer_template(self) -> str | None:
        """The chat template that renders as the spec does; None (with a warning) where no template can, so a
        consumer fails loudly instead of scoring other text. Training never stops at the save for it."""
        try:
            return chat_template_for(self.spec, self.tokenizer)
        except ModelError as err:
            warnings.warn(f"saving without a chat template: {err}", stacklevel=3)
            return None

    def windowed(self, *, max_length: int | None = None, long_responses: LongResponses | None = None) -> RewardModel:
        """This model (its weights shared) scoring with another window, up to the backbone's position limit, and
        another rule for over-long responses (`rewardkit.models.backbones.windowed_spec`); the saved spec is
        untouched. None keeps the spec's own; asking for nothing new returns this model itself."""
        if max_length is None and long_responses in (None, self.spec.long_responses):
            return self
        spec = windowed_spec(self.spec, self.model.config, max_length=max_length, long_responses=long_responses)
        return RewardModel(self.model, self.tokenizer, spec)

    def name_outputs(self) -> None:
        """Mark the config a regression with one named output per attribute ("reward" for a scalar model)."""
        names = self.spec.attributes or ["reward"]
        self.model.config.problem_type = "regression"
        self.model.config.id2label = dict(enumerate(names))
        self.model.config.label2id = {name: i for i, name in enumerate(names)}

    # ---- computing rewards --------------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids=None, position_ids=None,
                score_index: torch.Tensor | None = None) -> torch.Tensor:
        """Rewards in fp32 for a padded batch (b, t): (b,) at each row's last real token (padding on either side),
        or (b, k) at `score_index` (prefix-shared rows from `rewardkit.models.packing`, or the steps of process
        rewards).
        A multi-attribute model adds a last dimension, one value per attribute: (b, A) or (b, k, A)."""
        if self.spec.pooling == "first":
            assert score_index is None and bool(attention_mask[:, 0].all()), (
                "first-token pooling scores one right-padded row at a time (no score_index)")
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).logits
            return self.one_value_per_row(logits.float())
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        backbone = getattr(self.model, self.model.base_model_prefix)
        hidden = backbone(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=position_ids).last_hidden_state
        index = last_token_index(attention_mask).unsqueeze(1) if score_index is None else score_index  # (b, k)
        scored = hidden.gather(1, index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))  # (b, k, d)
        rewards = self.one_value_per_row(self.model.score(scored).float())  # (b, k) or (b, k, A)
        return rewards.squeeze(1) if score_index is None else rewards

    def one_value_per_row(self, logits: torch.Tensor) -> torch.Tensor:
        """Drop the attribute dimension of a single-output model."""
        return logits.squeeze(-1) if self.num_attributes == 1 else logits

    @property
    def num_attributes(self) -> int:
        return self.model.config.num_labels

    def attribute_weight_vector(self, weights: dict[str, float] | None = None) -> list[float]:
        """Weights combining the attributes into the scalar reward: `weights` by name (missing ones 0), else the
        spec's defaults, else the mean."""
        names = self.spec.attributes or ["reward"]
        if weights is not None:
            unknown = set(weights) - set(names)
            if unknown:
                raise ModelError(f"unknown attributes {sorted(unknown)}; this model has {names}")
            return [float(weights.get(name, 0.0)) for name in names]
        return self.spec.attribute_weights or [1.0 / len(names)] * len(names)

    def collate(self, encoded: Sequence[EncodedPair]) -> dict[str, torch.Tensor]:
        """Right-pad encoded pairs into a batch."""
        width = max(len(e.input_ids) for e in encoded)
        input_ids = torch.full((len(encoded), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, e in enumerate(encoded):
            input_ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
            attention_mask[row, : len(e.input_ids)] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.spec.token_type_ids:
            types = torch.zeros_like(input_ids)
            for row, e in enumerate(encoded):
                types[row, : len(e.input_ids)] = torch.tensor(e.token_type_ids())
            batch["token_type_ids"] = types
        return batch

    def score(self, prompts: Sequence, responses: Sequence, *, batch_size: int = SCORING_BATCH_SIZE,
              normalize: bool = False, attribute_weights: dict[str, float] | None = None) -> list[float]:
        """Rewards for (prompt, response) pairs: two lists of equal length, each entry text or chat messages.

        A pair whose response alone does not fit `max_length` gets NaN (never a made-up number). A multi-attribute
        model returns the weighted sum of its attributes (`attribute_weights` by name, else the spec's weights).
        """
        self.refuse_process_model("score")
        encoded = self.spec.encode_batch(self.tokenizer, prompts, responses)
        rewards = self.score_encoded(encoded, batch_size=batch_size, attribute_weights=attribute_weights)
        return [self.spec.normalize(r) if normalize and math.isfinite(r) else r for r in rewards]

    def score_attributes(self, prompts: Sequence, responses: Sequence, *,
                         batch_size: int = SCORING_BATCH_SIZE) -> list[dict[str, float] | None]:
        """Each attribute's value for (prompt, response) pairs, by name; None where the response does not fit."""
        self.refuse_process_model("score_attributes")
        encoded = self.spec.encode_batch(self.tokenizer, prompts, responses)
        outputs = self.outputs_encoded(encoded, batch_size=batch_size)
        names = self.spec.attributes or ["reward"]
        return [None if row is None else dict(zip(names, row, strict=True)) for row in outputs]

    def score_steps(self, prompts: Sequence, solutions: Sequence[Sequence[str]], *,
                    batch_size: int = 8) -> list[list[float] | None]:
        """Process reward models: P(the solution is still right after step i) for every step, from the logit at
        the separator ending it; None where a solution does not fit `max_length`."""
        encoded = self.spec.encode_steps(self.tokenizer, prompts, solutions)
        return self.step_probabilities(encoded, batch_size=batch_size)

    @torch.no_grad()
    def step_probabilities(self, encoded: Sequence[EncodedPair | None], *,
                           batch_size: int = 8) -> list[list[float] | None]:
        require_at_least("batch_size", batch_size, 1)
        self.eval()
        probabilities: list[list[float] | None] = [None] * len(encoded)
        kept = sorted((i for i, e in enumerate(encoded) if e is not None), key=lambda i: -len(encoded[i].input_ids))
        device = next(self.parameters()).device
        for start in range(0, len(kept), batch_size):
            rows = kept[start : start + batch_size]
            batch, index = self.collate_steps([encoded[i] for i in rows])
            logits = self(**to_device(batch, device), score_index=index.to(device))  # (b, k)
            for row, i in enumerate(rows):
                probabilities[i] = torch.sigmoid(logits[row, : len(encoded[i].step_positions)]).tolist()
        return probabilities

    def collate_steps(self, encoded: Sequence[EncodedPair]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """A right-padded batch and its (b, k_max) step positions (short rows repeat their last position)."""
        width = max(len(e.step_positions) for e in encoded)
        index = torch.tensor([[*e.step_positions, *[e.step_positions[-1]] * (width - len(e.step_positions))]
                              for e in encoded])
        return self.collate(encoded), index

    def refuse_process_model(self, method: str) -> None:
        if self.spec.task == "process":
            raise ModelError(f"{method}: a process reward model scores solutions split into steps; use score_steps")

    @torch.no_grad()
    def score_encoded(self, encoded: Sequence[EncodedPair | None], *, batch_size: int = SCORING_BATCH_SIZE,
                      on_batch: Callable[[int], None] | None = None,
                      attribute_weights: dict[str, float] | None = None) -> list[float]:
        """Rewards for encoded pairs (NaN where None): the scalar, or the attributes' weighted sum."""
        return self.combine(self.outputs_encoded(encoded, batch_size=batch_size, on_batch=on_batch), attribute_weights)

    def combine(self, outputs: Sequence[list[float] | None], attribute_weights: dict[str, float] | None = None
                ) -> list[float]:
        """The scalar reward of each row of `outputs_encoded`: its attributes' weighted sum (NaN where None)."""
        weights = self.attribute_weight_vector(attribute_weights)
        return [math.nan if row is None else sum(w * v for w, v in zip(weights, row, strict=True)) for row in outputs]

    @torch.no_grad()
    def outputs_encoded(self, encoded: Sequence[EncodedPair | None], *, batch_size: int = SCORING_BATCH_SIZE,
                        on_batch: Callable[[int], None] | None = None) -> list[list[float] | None]:
        """Every output (one per attribute) of encoded pairs (None where None), in batches of similar length,
        longest first (`length_chunks`: up to `batch_size` rows, padding bounded). Identical encodings are computed
        once.

        `on_batch(n)` is called after each batch of n rows (for progress bars)."""
        require_at_least("batch_size", batch_size, 1)
        self.eval()
        rewards: list = [None] * len(encoded)
        first_of: dict[tuple, int] = {}
        for i, e in enumerate(encoded):
            if e is not None:
                first_of.setdefault((e.prompt_length, *e.input_ids), i)
        kept = sorted(first_of.values(), key=lambda i: -len(encoded[i].input_ids))
        device = next(self.parameters()).device
        for rows in length_chunks(kept, [len(encoded[i].input_ids) for i in kept], batch_size):
            batch = to_device(self.collate([encoded[i] for i in rows]), device)
            for i, reward in zip(rows, self(**batch).reshape(len(rows), -1).tolist(), strict=True):
                rewards[i] = reward
            if on_batch is not None:
                on_batch(len(rows))
        for i, e in enumerate(encoded):
            if e is not None:
                rewards[i] = rewards[first_of[(e.prompt_length, *e.input_ids)]]
        return rewards

    @torch.no_grad()
    def score_candidates(self, prompts: Sequence, candidates: Sequence[Sequence], *, rows_per_batch: int = 4,
                         share_prefix: bool | None = None) -> list[list[float]]:
        """Rewards of several candidate responses per prompt (best-of-N), NaN where one does not fit.

        A decoder packs each prompt's candidates into one row and computes the prompt once
        (`rewardkit.models.packing`); the scores equal scoring each pair alone. `share_prefix=False` forces
        independent scoring."""
        self.refuse_process_model("score_candidates")
        require_at_least("rows_per_batch", rows_per_batch, 1)
        check_pairs(prompts, candidates, second="candidates")
        for n, group in enumerate(candidates):
            require_list(group, f"candidates[{n}]", f"the candidate responses to prompts[{n}]")
        flat = [(p, r) for p, group in zip(prompts, candidates, strict=True) for r in group]
        encoded = self.spec.encode_batch(self.tokenizer, [p for p, _ in flat], [r for _, r in flat])
        if not (self.spec.pooling == "last" if share_prefix is None else share_prefix):
            return regroup(self.score_encoded(encoded), candidates)
        self.eval()
        rewards = [math.nan] * len(encoded)
        groups, start = [], 0
        for group in candidates:
            groups.append([i for i in range(start, start + len(group)) if encoded[i] is not None])
            start += len(group)
        rows = sorted((g for g in groups if g), key=lambda g: -sum(len(encoded[i].input_ids) for i in g))
        device = next(self.parameters()).device
        for first in range(0, len(rows), rows_per_batch):
            chunk = rows[first : first + rows_per_batch]
            packed = [pack_sequences([encoded[i].input_ids for i in g]) for g in chunk]
            batch = collate_packed(packed, self.pad_token_id)
            scores = self(**to_device(batch, device))  # (b, k_max), or (b, k_max, A)
            if scores.ndim == 3:
                scores = scores @ torch.tensor(self.attribute_weight_vector(), device=device)
            for row, g in enumerate(chunk):
                for column, i in enumerate(g):
                    rewards[i] = scores[row, column].item()
        return regroup(rewards, candidates)

    def preference_probability(self, reward_a: float, reward_b: float) -> float:
        """P(a preferred over b) = sigmoid((reward_a - reward_b) / T), with the temperature fitted by
        `rewardkit eval --fit-temperature` (T = 1 when none was fitted)."""
        return torch.sigmoid(torch.tensor((reward_a - reward_b) / (self.spec.temperature or 1.0))).item()

    def score_messages(self, conversations: Sequence[list[dict]], **kwargs) -> list[float]:
        """Rewards for whole conversations; the last message (an assistant turn) is the scored response."""
        require_list(conversations, "conversations", "one list of messages per conversation")
        for n, conversation in enumerate(conversations):
            require_list(conversation, f"conversations[{n}]", "its messages")
            if not conversation or conversation[-1].get("role") != "assistant":
                raise DataError(f"conversation {n} must end with an assistant message")
        return self.score([c[:-1] for c in conversations], [c[-1:] for c in conversations], **kwargs)


MAX_PADDING = 0.25  # padded tokens per real token a batch may add before the next row opens a new batch


def length_chunks(rows: Sequence[int], lengths: Sequence[int], batch_size: int,
                  max_padding: float = MAX_PADDING) -> list[list[int]]:
    """`rows` (sorted longest first, `lengths` theirs) cut into batches of at most `batch_size` rows whose padding
    to the first (longest) row stays within `max_padding` of their real tokens: a short row waits for rows like it
    rather than being padded to a long one (mixed lengths in a served batch made batching slower than one row at a
    time)."""
    chunks: list[list[int]] = []
    width = real = 0
    for row, length in zip(rows, lengths, strict=True):
        chunk = chunks[-1] if chunks else []
        if chunk and len(chunk) < batch_size and width * (len(chunk) + 1) <= (1 + max_padding) * (real + length):
            chunk.append(row)
            real += length
        else:
            chunks.append([row])
            width = real = length
    return chunks


def regroup(flat: list[float], groups: Sequence[Sequence]) -> list[list[float]]:
    """Split a flat list back into the sizes of `groups`."""
    out, start = [], 0
    for group in groups:
        out.append(flat[start : start + len(group)])
        start += len(group)
    return out


def to_device(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """A collated batch (`RewardModel.collate`, `collate_steps`, `packing.collate_packed`) moved to `device`."""
    return {name: tensor.to(device) for name, tensor in batch.items()}


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token in each row, read from the mask (works for left and right padding)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (positions * attention_mask.long()).argmax(-1)


def one_line(error: Exception) -> str:
    """An exception's message on one line (library errors often span several)."""
    return " ".join(str(error).split())
