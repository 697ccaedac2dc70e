"""Judges behind one interface: a local Hugging Face chat model, or any OpenAI-compatible endpoint (`endpoint.py`).

    judge = LocalJudge("smollm2-135m")                            # the bundled SmolLM2-135M-Instruct (GGUF)
    judge.compare([messages], labels=("A", "B"))                  # [Verdict(probabilities={"A": .7, "B": .3}, ...)]
    judge.generate([messages], max_new_tokens=128)                # ["a critique ...", Failure("...")]

A verdict's probabilities are read from the next token after the chat template, P(label) over the labels' tokens
(with and without a leading space) renormalized over the labels; `label_mass` is the share of the whole
next-token distribution those tokens hold (how well the judge keeps to the answer format). A request that cannot
be answered is a `Failure` with its error, never a made-up verdict.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from rewardkit.data.records import Message
from rewardkit.errors import ModelError
from rewardkit.precision import DTYPES


@dataclass(frozen=True)
class Verdict:
    """The judge's answer to one comparison: a probability per label (summing to 1) and the most probable label.
    `source` "logprobs" (read from token probabilities) or "text" (parsed from the answer: probability 1)."""

    probabilities: dict[str, float]
    source: Literal["logprobs", "text"]
    label_mass: float | None = None

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)

    def to_dict(self) -> dict:
        return {"probabilities": self.probabilities, "source": self.source, "label_mass": self.label_mass}

    @classmethod
    def from_dict(cls, record: dict) -> Verdict:
        return cls(probabilities=record["probabilities"], source=record["source"], label_mass=record["label_mass"])


@dataclass(frozen=True)
class Failure:
    """A request that kept failing: its last error, and how many attempts were made."""

    error: str
    attempts: int = 1


class Judge(Protocol):
    """What `rewardkit.judge.run` needs from a judge. `id` names it in cache keys and outputs; `batch_size` is how
    many requests one `compare` / `generate` call should get (a batch is cached once it returns)."""

    id: str
    batch_size: int

    def compare(self, chats: Sequence[list[Message]], labels: Sequence[str]) -> list[Verdict | Failure]: ...

    def generate(self, chats: Sequence[list[Message]], *, max_new_tokens: int) -> list[str | Failure]: ...

    def count_tokens(self, chat: list[Message]) -> int: ...


def verdict_from_probabilities(mass: dict[str, float], source: Literal["logprobs", "text"]) -> Verdict:
    """`mass` (label -> probability, not normalized) as a Verdict; all zero is a ValueError."""
    total = sum(mass.values())
    if not total > 0 or not math.isfinite(total):
        raise ValueError(f"no probability on any label {list(mass)}")
    return Verdict({label: value / total for label, value in mass.items()}, source, total)


def label_token_ids(tokenizer, label: str) -> list[int]:
    """Token ids that start answer `label`: the label alone and after a space, where each is one token."""
    ids = {tuple(tokenizer.encode(text, add_special_tokens=False)) for text in (label, f" {label}")}
    single = sorted(tokens[0] for tokens in ids if len(tokens) == 1)
    if not single:
        raise ModelError(f"the judge's tokenizer has no single token for the label {label!r}")
    return single


class LocalJudge:
    """A Hugging Face causal chat model (built-in name, directory, .gguf or cached hub id) on this machine.

    Comparisons run `batch_size` chats per forward pass (left-padded; the verdict is read after each chat's last
    token); a chat longer than `max_length` tokens is a Failure. Generation (Constitutional AI) is greedy."""

    def __init__(self, backbone: str = "smollm2-135m", *, batch_size: int = 8, max_length: int = 2048,
                 precision: Literal["bf16", "fp32"] = "fp32", device: str | None = None) -> None:
        from transformers import AutoTokenizer  # lazy: the endpoint judge needs none of transformers

        from rewardkit.models.backbones import resolve_backbone

        self.source = resolve_backbone(backbone)
        self.id, self.precision = f"hf:{backbone}:{precision}", precision
        self.batch_size, self.max_length = batch_size, max_length
        self.tokenizer = AutoTokenizer.from_pretrained(self.source[0], gguf_file=self.source[1])
        if self.tokenizer.chat_template is None:
            raise ModelError(f"judge {backbone} has no chat template: a judge must be a chat model")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    @functools.cached_property
    def model(self):
        """The weights, loaded on first use (a dry run needs only the tokenizer)."""
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(self.source[0], gguf_file=self.source[1],
                                                     dtype=DTYPES[self.precision])
        return model.to(self.device).eval()

    def encode(self, chat: list[Message]) -> list[int]:
        return self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True,
                                                  return_dict=False)

    def count_tokens(self, chat: list[Message]) -> int:
        return len(self.encode(chat))

    def compare(self, chats: Sequence[list[Message]], labels: Sequence[str]) -> list[Verdict | Failure]:
        ids = {label: label_token_ids(self.tokenizer, label) for label in labels}
        encoded = [self.encode(chat) for chat in chats]
        fitting = [i for i, tokens in enumerate(encoded) if len(tokens) <= self.max_length]
        results: list[Verdict | Failure] = [
            Failure(f"the judge's input is {len(tokens)} tokens, more than max_length {self.max_length}")
            for tokens in encoded]
        for start in range(0, len(fitting), self.batch_size):
            batch = fitting[start:start + self.batch_size]
            probabilities = self.next_token_probabilities([encoded[i] for i in batch])
            for row, i in zip(probabilities, batch, strict=True):
                results[i] = verdict_from_probabilities(
                    {label: float(row[token_ids].sum()) for label, token_ids in ids.items()}, "logprobs")
        return results

    @torch.no_grad()
    def next_token_probabilities(self, sequences: list[list[int]]) -> torch.Tensor:
        """(b, vocab) float32 probabilities of the token after each sequence (left-padded, positions counted from
        each sequence's first real token, as `generate` does)."""
        width = max(map(len, sequences))
        input_ids = torch.full((len(sequences), width), self.tokenizer.pad_token_id)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, tokens in enumerate(sequences):
            input_ids[row, width - len(tokens):] = torch.tensor(tokens)
            attention_mask[row, width - len(tokens):] = 1
        position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
        logits = self.model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device),
                            position_ids=position_ids.to(self.device), logits_to_keep=1).logits  # (b, 1, vocab)
        return torch.softmax(logits[:, -1].float(), dim=-1).cpu()

    @torch.no_grad()
    def generate(self, chats: Sequence[list[Message]], *, max_new_tokens: int) -> list[str | Failure]:
        results: list[str | Failure] = []
        for chat in chats:
            tokens = self.encode(chat)
            if len(tokens) + max_new_tokens > self.max_length:
                results.append(Failure(f"the judge's input is {len(tokens)} tokens: with {max_new_tokens} new "
                                       f"ones it is more than max_length {self.max_length}"))
                continue
            output = self.model.generate(torch.tensor([tokens], device=self.device), do_sample=False,
                                         max_new_tokens=max_new_tokens, pad_token_id=self.tokenizer.pad_token_id)
            results.append(self.tokenizer.decode(output[0, len(tokens):], skip_special_tokens=True).strip())
        return results
