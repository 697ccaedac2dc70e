"""Sampling from a local Hugging Face causal LM: a prompt's samples in one batch, decoded with the KV cache.

The policy is a built-in backbone name (default "smollm2-135m", the bundled SmolLM2-135M-Instruct GGUF), a local
model directory or a .gguf file, resolved like reward-model backbones (`resolve_backbone`). Prompts go through the
tokenizer's chat template (a plain prompt is one user turn).

A prompt's samples are drawn in chunks of `batch_size` rows of the same prompt (so no padding), chunk k holding
sample indices k*batch_size ..; each chunk's random stream is seeded from (seed, prompt_id, first index), so a
sample depends on nothing else: a resumed run draws what an uninterrupted one would, and one prompt's samples do
not change when other prompts are added or removed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from rewardkit.data.records import Text
from rewardkit.errors import ConfigError, ModelError
from rewardkit.models.backbones import resolve_backbone
from rewardkit.precision import DTYPES, resolve_precision
from rewardkit.sampling.prompts import PromptRecord


@dataclass(frozen=True)
class SamplingParams:
    """What defines the distribution besides the policy; temperature 0 is greedy decoding."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], not {self.top_p}")
        if self.temperature < 0 or self.max_new_tokens < 1:
            raise ConfigError("temperature must be 0 or more and max_new_tokens 1 or more")


@dataclass(frozen=True)
class Completion:
    response: str
    tokens: int
    finish_reason: str  # "stop" | "length"


def derived_seed(seed: int, *parts: object, bits: int = 63) -> int:
    """A seed for one random stream, from the run's seed and what names the stream (prompt id, sample index)."""
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % (1 << bits)


def policy_precision(precision: str, policy: str) -> str:
    """bf16 or fp32 for `policy`: auto is fp32 for a GGUF policy (transformers keeps its weights packed and computes
    in fp32, so bf16 only adds casts), else as `resolve_precision` says."""
    if precision == "auto" and resolve_backbone(policy)[1] is not None:
        return "fp32"
    return resolve_precision(precision)


def chat_messages(prompt: Text) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


class LocalSampler:
    """Draws completions from a local causal LM; `description` is the pool's `sampler` record."""

    concurrency = 1

    def __init__(self, policy: str, params: SamplingParams, *, precision: str = "fp32", batch_size: int = 8) -> None:
        self.source = resolve_backbone(policy)  # the model loads on first use: a refused pool costs no load
        self.policy, self.params, self.precision, self.batch_size = policy, params, precision, batch_size
        self.description = {"kind": "local", "model": policy, "temperature": params.temperature,
                            "top_p": params.top_p, "max_new_tokens": params.max_new_tokens, "seed": params.seed,
                            "precision": precision}

    @cached_property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        path, gguf_file = self.source
        return AutoTokenizer.from_pretrained(path, gguf_file=gguf_file)

    @cached_property
    def model(self) -> PreTrainedModel:
        path, gguf_file = self.source
        model = AutoModelForCausalLM.from_pretrained(path, gguf_file=gguf_file, dtype=DTYPES[self.precision])
        return model.to("cuda" if torch.cuda.is_available() else "cpu").eval()

    @cached_property
    def stop_ids(self) -> list[int]:
        """The ids that end a reply: the generation config's EOS ids, else the tokenizer's EOS."""
        eos = self.model.generation_config.eos_token_id
        ids = [eos] if isinstance(eos, int) else list(eos or [])
        if not ids and self.tokenizer.eos_token_id is not None:
            ids = [self.tokenizer.eos_token_id]
        if not ids:
            raise ModelError(f"policy {self.policy} has no EOS token: it could never stop a reply")
        return ids

    async def sample(self, prompt: PromptRecord, indices: Sequence[int], n: int) -> dict[int, Completion]:
        """Completions for the sample `indices` of a prompt sampled `n` times: every chunk of the n holding one of
        them is drawn whole, as an uninterrupted run draws it."""
        input_ids = self.prompt_ids(prompt.prompt)
        wanted = set(indices)
        completions = {}
        for start in sorted({index - index % self.batch_size for index in wanted}):
            chunk = range(start, min(start + self.batch_size, n))
            drawn = self.generate(input_ids, len(chunk), derived_seed(self.params.seed, prompt.prompt_id, start))
            completions |= {index: c for index, c in zip(chunk, drawn, strict=True) if index in wanted}
        return completions

    async def aclose(self) -> None:
        """Nothing to release: the model stays loaded for the caller."""

    def prompt_ids(self, prompt: Text) -> torch.Tensor:
        """(1, prompt_len) token ids of the prompt with the generation prompt, or the plain text without a template."""
        if self.tokenizer.chat_template:
            encoded = self.tokenizer.apply_chat_template(chat_messages(prompt), add_generation_prompt=True,
                                                         return_tensors="pt", return_dict=True)
            return encoded["input_ids"]
        if not isinstance(prompt, str):
            raise ModelError(f"policy {self.policy} has no chat template to render a conversation with")
        return self.tokenizer(prompt, return_tensors="pt")["input_ids"]

    @torch.inference_mode()
    def generate(self, input_ids: torch.Tensor, rows: int, seed: int) -> list[Completion]:
        """`rows` samples of one prompt in one batch, the random stream seeded by `seed`."""
        batch = input_ids.repeat(rows, 1).to(self.model.device)
        greedy = self.params.temperature == 0
        options = {} if greedy else {"temperature": self.params.temperature, "top_p": self.params.top_p, "top_k": 0}
        device = self.model.device
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            output = self.model.generate(
                batch, attention_mask=torch.ones_like(batch), do_sample=not greedy,
                max_new_tokens=self.params.max_new_tokens, eos_token_id=self.stop_ids,
                pad_token_id=self.stop_ids[0], use_cache=True, **options)
        return [self.completion(row) for row in output[:, input_ids.shape[1]:].tolist()]

    def completion(self, generated: list[int]) -> Completion:
        """The generated ids up to and including the first stop token (the rest is padding)."""
        end = next((i for i, token in enumerate(generated) if token in self.stop_ids), None)
        kept = generated if end is None else generated[: end + 1]
        return Completion(self.tokenizer.decode(kept, skip_special_tokens=True), len(kept),
                          "length" if end is None else "stop")

