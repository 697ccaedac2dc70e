"""The scoring spec: the one object that turns (prompt, response) into token ids and says which token is scored.

Training, `rewardkit score`, evaluation and serving all render text through `ScoringSpec.encode_batch`, so the
same pair becomes the same ids everywhere. The spec is saved as `scoring_spec.json` beside the model weights.

Layout of one encoded pair::

    prefix_tokens + prompt_ids[-k:] + separator_tokens + response_ids + suffix_tokens

The prompt is cut from the left when the pair is longer than `max_length`. A pair whose response alone does not
fit is, with `long_responses="drop"` (the default), dropped (`encode_batch` returns None for it) and counted by the
caller; with `"truncate"` it keeps the end of its prompt (at most half the room) and the start of its response, the
response's tail cut as RewardBench does, and is flagged (`EncodedPair.truncated`). `long_responses` and a wider
`max_length` are run-time choices (`rewardkit.models.backbones.windowed_spec`): `long_responses` is never saved.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rewardkit.errors import ConfigError, DataError, ModelError
from rewardkit.io import write_text_atomic

SPEC_FILE = "scoring_spec.json"


ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


LongResponses = Literal["drop", "truncate"]


class Normalization(BaseModel):
    """Reward statistics on a reference set, used to report z-scored rewards."""

    model_config = ConfigDict(extra="forbid")
    mean: float
    std: float = Field(gt=0)
    n: int = Field(ge=1, description="Number of responses the statistics were computed on.")


class ScoringSpec(BaseModel):
    """Everything needed to turn (prompt, response) into a reward, saved with every model."""

    model_config = ConfigDict(extra="forbid")
    backbone: str = Field(description="Where the backbone weights came from (hub id, path or built-in name).")
    format: Literal["chat_template", "plain"] = Field(
        description="chat_template: render messages with `chat_template`; plain: role-prefixed text."
    )
    chat_template: str | None = Field(
        None, description="The Jinja chat template, copied so it travels with the model.")
    prefix_tokens: list[str] = Field(
        default_factory=list, description="Special tokens before the prompt (BOS, [CLS]).")
    separator_tokens: list[str] = Field(
        default_factory=list, description="Special tokens between prompt and response.")
    suffix_tokens: list[str] = Field(
        default_factory=list, description="Special tokens after the response (EOS, [SEP]).")
    token_type_ids: bool = Field(False, description="Mark prompt tokens 0 and response tokens 1 (BERT-style).")
    pad_token: str = Field(description="Padding token; never part of a rendered pair.")
    pooling: Literal["last", "first"] = Field(
        description="last: the last real token (found from the attention mask); first: the first token ([CLS])."
    )
    max_length: int = Field(gt=0, description="Maximum tokens per pair; the prompt is cut from the left to fit.")
    truncation: Literal["prompt_left"] = "prompt_left"
    long_responses: LongResponses = Field("drop", exclude=True, description=(
        "A response alone over max_length: drop the pair, or truncate (cut the response's tail); not saved."))
    normalization: Normalization | None = None
    clip: tuple[float, float] | None = Field(None, description="Clip normalized rewards to this range.")
    temperature: float | None = Field(None, gt=0, description="Calibration temperature fitted by `rewardkit eval`.")
    task: Literal["pairwise", "listwise", "pointwise", "process"] = Field(
        "pairwise", description="The family the model was trained as (see `rewardkit.tasks`).")
    loss: str | None = Field(None, description="The loss it was trained with; bce: outputs are logits of P(label).")
    attributes: list[str] | None = Field(
        None, description="Names of the model's outputs (one head per attribute); None: one scalar reward.")
    attribute_weights: list[float] | None = Field(
        None, description="Default weights of the attributes in the scalar reward (aligned with `attributes`).")
    step_separator: str | None = Field(
        None, description="Process reward models: the one token that ends each step; each is scored there.")

    @model_validator(mode="after")
    def weights_match_attributes(self) -> ScoringSpec:
        if self.attribute_weights is not None and len(self.attribute_weights) != len(self.attributes or []):
            raise ValueError("attribute_weights needs one weight per attribute")
        return self

    def save(self, directory: str | Path) -> None:
        write_text_atomic(Path(directory) / SPEC_FILE, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> ScoringSpec:
        """The spec saved in `directory`; a missing or invalid file is a ModelError naming it (one line)."""
        path = Path(directory) / SPEC_FILE
        if not path.is_file():
            raise ModelError(
                f"{directory} has no {SPEC_FILE}: it is not a rewardkit model. Train one with `rewardkit train`."
            )
        try:
            return cls.model_validate(read_model_json(path))
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(the whole file)'}: {e['msg']}"
                                 for e in err.errors())
            raise ModelError(f"{path} is not a valid scoring spec: {problems}") from None

    def render(self, tokenizer, prompt, response) -> tuple[str, str]:
        """Render one (prompt, response) into the prompt text and the response text."""
        prompt_messages, response_messages = as_messages(prompt, "user"), as_messages(response, "assistant")
        if self.format == "plain":
            return render_plain(prompt_messages), render_plain(response_messages, leading_role=False)
        kwargs = {"chat_template": self.chat_template, "tokenize": False}
        head = (
            tokenizer.apply_chat_template(prompt_messages, add_generation_prompt=True, **kwargs)
            if prompt_messages
            else ""
        )
        full = tokenizer.apply_chat_template(prompt_messages + response_messages, **kwargs)
        if not full.startswith(head):
            raise ModelError("the chat template renders the prompt differently once a response follows it")
        return head, full[len(head) :]

    def encode_batch(self, tokenizer, prompts: Sequence, responses: Sequence) -> list[EncodedPair | None]:
        """Token ids for each (prompt, response); where the response alone exceeds `max_length`, None
        (`long_responses="drop"`) or the pair with the response's tail cut (`"truncate"`)."""
        check_pairs(prompts, responses)
        rendered = [self.render(tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
        prompt_ids, response_ids = (
            (self.tokenize(tokenizer, texts) for texts in zip(*rendered, strict=True)) if rendered else ([], [])
        )
        truncate = self.long_responses == "truncate"
        pairs = zip(prompt_ids, response_ids, strict=True)
        return [self.assemble(tokenizer, p, r, truncate=truncate) for p, r in pairs]

    def tokenize(self, tokenizer, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of rendered texts. In plain format, special-token strings inside user text stay text (the
        special tokens come only from the spec); a chat template's own markers are special tokens by design."""
        split = self.format == "plain"
        return tokenizer(list(texts), add_special_tokens=False, split_special_tokens=split)["input_ids"]

    def encode(self, tokenizer, prompt, response) -> EncodedPair | None:
        return self.encode_batch(tokenizer, [prompt], [response])[0]

    def encode_steps(
        self, tokenizer, prompts: Sequence, solutions: Sequence[Sequence[str]]
    ) -> list[EncodedPair | None]:
        """Token ids of solutions split into steps, each step followed by the `step_separator` token, whose
        positions are `step_positions`; None where the solution alone exceeds `max_length` (a solution is never
        truncated, whatever `long_responses` says: its last steps would lose their labels).

        The separator is inserted by id between separately tokenized steps, so it can never merge with the text
        around it (the way "\\n\\n" does in many BPE vocabularies); a step that itself contains the separator text
        is an error. The ids end at the last separator: a plain last-token scorer then reads the final step."""
        separator = self.step_separator
        if separator is None:
            raise ModelError("this spec has no step_separator: it is not a process reward model")
        check_pairs(prompts, solutions, second="solutions")
        for n, steps in enumerate(solutions):
            require_list(steps, f"solutions[{n}]", "one text per step")
        separator_id = single_token_id(tokenizer, separator)
        rendered = [
            self.render(tokenizer, p, separator.join(steps) + separator)
            for p, steps in zip(prompts, solutions, strict=True)
        ]
        prompt_ids = self.tokenize(tokenizer, [head for head, _ in rendered]) if rendered else []
        encoded = []
        for n, ((_, body), steps, ids) in enumerate(zip(rendered, solutions, prompt_ids, strict=True)):
            segments = body.split(separator)[:-1]  # the text after the last separator (template end) is dropped
            if len(segments) != len(steps):
                raise DataError(f"solution {n}: a step contains the step separator {separator!r}")
            response_ids = [i for segment in self.tokenize(tokenizer, segments) for i in [*segment, separator_id]]
            pair = self.assemble(tokenizer, ids, response_ids, suffix=False)
            if pair is not None:
                positions = tuple(
                    i for i, token in enumerate(pair.input_ids) if token == separator_id and i >= pair.prompt_length
                )
                if len(positions) != len(steps):  # the known failure: labels silently attached to no token
                    raise DataError(f"solution {n}: {len(positions)} separator tokens for {len(steps)} steps")
                pair = EncodedPair(pair.input_ids, pair.prompt_length, positions)
            encoded.append(pair)
        return encoded

    def assemble(
        self, tokenizer, prompt_ids: list[int], response_ids: list[int], *, suffix: bool = True,
        truncate: bool = False,
    ) -> EncodedPair | None:
        """Join the parts with the special tokens, cutting the prompt from the left to fit `max_length`; a response
        that alone does not fit gives None, or with `truncate` keeps its start (the prompt its end, at most half the
        room)."""
        prefix, separator, suffix_ids = (tokenizer.convert_tokens_to_ids(t) for t in self.special_token_lists())
        suffix_ids = suffix_ids if suffix else []
        room = self.max_length - len(prefix) - len(separator) - len(suffix_ids)
        truncated = len(response_ids) > room
        if truncated and (not truncate or room < 1):
            return None
        prompt_budget = min(len(prompt_ids), room // 2) if truncated else room - len(response_ids)
        kept_response = response_ids[: room - prompt_budget]
        head = prefix + prompt_ids[max(0, len(prompt_ids) - prompt_budget) :] + separator
        return EncodedPair(input_ids=head + kept_response + suffix_ids, prompt_length=len(head), truncated=truncated)

    def special_token_lists(self) -> tuple[list[str], list[str], list[str]]:
        return self.prefix_tokens, self.separator_tokens, self.suffix_tokens

    def untruncated_length(self, tokenizer, prompt, response) -> int:
        """Tokens the pair would take without truncation."""
        prompt_text, response_text = self.render(tokenizer, prompt, response)
        specials = sum(len(t) for t in self.special_token_lists())
        return specials + sum(len(ids) for ids in self.tokenize(tokenizer, [prompt_text, response_text]))

    def normalize(self, reward: float) -> float:
        """Z-score a raw reward with the stored statistics (then clip, when a clip range is set)."""
        if self.normalization is None:
            raise ModelError("this model has no normalization statistics; score without normalize")
        z = (reward - self.normalization.mean) / self.normalization.std
        return min(max(z, self.clip[0]), self.clip[1]) if self.clip else z

    def fingerprint(self) -> str:
        """A short hash of the spec, to check that two parties render text the same way."""
        rendering = self.model_dump() | ({"long_responses": "truncate"} if self.long_responses == "truncate" else {})
        return hashlib.sha256(json.dumps(rendering, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EncodedPair:
    input_ids: list[int]
    prompt_length: int  # tokens before the response (prefix, kept prompt, separator)
    step_positions: tuple[int, ...] | None = None  # process rewards: the separator token ending each step
    truncated: bool = False  # the response's tail was cut to fit (`long_responses="truncate"`)

    @property
    def response_length(self) -> int:
        """Tokens from the response on (the response and any suffix tokens)."""
        return len(self.input_ids) - self.prompt_length

    def token_type_ids(self) -> list[int]:
        return [0] * self.prompt_length + [1] * (len(self.input_ids) - self.prompt_length)


class SpecEncoder:
    """A spec bound to its tokenizer: the `PairEncoder` that `rewardkit.data.audit_preferences` uses."""

    def __init__(self, spec: ScoringSpec, tokenizer) -> None:
        self.spec, self.tokenizer, self.max_length = spec, tokenizer, spec.max_length

    def length(self, prompt, response) -> int:
        return self.spec.untruncated_length(self.tokenizer, prompt, response)

    def encode(self, prompt, response) -> list[int] | None:
        encoded = self.spec.encode(self.tokenizer, prompt, response)
        return None if encoded is None else encoded.input_ids


def check_long_responses(value: str) -> None:
    """`value` must be a `LongResponses` choice (a ConfigError otherwise)."""
    if value not in get_args(LongResponses):
        raise ConfigError(f"long pairs must be one of {list(get_args(LongResponses))}, not {value!r}")


def check_pairs(prompts, responses, *, second: str = "responses") -> None:
    """Refuse what would silently be scored wrong: a bare text (its characters would be the items), anything that
    is not a list, or lists of different lengths."""
    for value, name in ((prompts, "prompts"), (responses, second)):
        require_list(value, name, "one entry per pair; for one pair, wrap it in a list")
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} {second}: pass one per prompt")


def require_at_least(option: str, value: int, minimum: int) -> None:
    """A count option below `minimum` (a batch size under 1, negative resamples) is a ConfigError naming it."""
    if value < minimum:
        raise ConfigError(f"{option} must be at least {minimum}, got {value}")


def require_list(value, name: str, expected: str) -> None:
    """`value` must be an ordered collection (list, tuple, array), not a text, a mapping, a set or an iterator."""
    if isinstance(value, (str, bytes, Mapping, Set)) or not isinstance(value, Collection):
        raise TypeError(f"{name} must be a list ({expected}), not {type(value).__name__}")


def read_model_json(path: Path):
    """The JSON in a model file; damaged JSON is a ModelError naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{path} is damaged (not valid JSON: {err}): re-export or retrain the model") from None


def single_token_id(tokenizer, token: str) -> int:
    """The id of a token that is one entry of the vocabulary (an added special token, or a plain one)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id or tokenizer.convert_ids_to_tokens(token_id) != token:
        raise ModelError(f"step separator {token!r} is not a single token of this tokenizer's vocabulary")
    return token_id


def as_messages(text, role: str) -> list[dict]:
    """Plain text becomes one message with `role`; a message list is returned as it is."""
    if isinstance(text, str):
        return [{"role": role, "content": text}]
    return [{"role": m["role"], "content": m["content"]} for m in text]


def render_plain(messages: list[dict], leading_role: bool = True) -> str:
    """Role-prefixed text ("User: ...\\n\\nAssistant:") for backbones without a chat template.

    A lone message rendered without its role (the response) is its bare content.
    """
    if not messages:
        return ""
    if not leading_role and len(messages) == 1:
        return messages[0]["content"]
    turns = [f"{ROLE_NAMES.get(m['role'], m['role'])}: {m['content']}" for m in messages]
    return "\n\n".join(turns) + ("\n\nAssistant:" if leading_role and messages[-1]["role"] != "assistant" else "")


def spec_for_tokenizer(
    tokenizer,
    *,
    backbone: str,
    is_encoder: bool,
    max_length: int,
    format: Literal["auto", "chat_template", "plain"] = "auto",
    token_types: bool = True,
) -> ScoringSpec:
    """The natural spec for a backbone: [CLS] prompt [SEP] response [SEP] for encoders (token types when the model
    has them); for decoders the chat template when the tokenizer has one (else plain text), the BOS the tokenizer
    adds unless the template writes it itself, and EOS in plain format."""
    if format == "auto":
        format = "chat_template" if tokenizer.chat_template and not is_encoder else "plain"
    if format == "chat_template" and not tokenizer.chat_template:
        raise ModelError(f"{backbone} has no chat template; use format: plain")
    if is_encoder:
        cls, sep = tokenizer.cls_token, tokenizer.sep_token
        layout = {
            "prefix_tokens": [cls], "separator_tokens": [sep], "suffix_tokens": [sep], "token_type_ids": token_types
        }
        pooling = "first"
    else:
        adds_bos = tokenizer.bos_token is not None and tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
        if adds_bos and format == "chat_template":
            sample = tokenizer.apply_chat_template([{"role": "user", "content": "a"}], tokenize=False)
            adds_bos = not sample.startswith(tokenizer.bos_token)
        eos = [tokenizer.eos_token] if format == "plain" and tokenizer.eos_token else []
        layout = {"prefix_tokens": [tokenizer.bos_token] if adds_bos else [], "suffix_tokens": eos}
        pooling = "last"
    return ScoringSpec(
        backbone=backbone,
        format=format,
        chat_template=tokenizer.chat_template if format == "chat_template" else None,
        pad_token=tokenizer.pad_token,
        pooling=pooling,
        max_length=max_length,
        **layout,
    )
