"""Tiny backbones built in code (offline, CPU, seconds): a 2-layer Llama with a ChatML template and a 2-layer BERT.

Each fixture saves a backbone directory (random weights, no score head) that `RewardModel.from_backbone` loads
through the same path a real hub model takes.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
import threading
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from rewardkit.data.records import PreferencePair
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import Normalization

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<pad>", "<unk>", "<s>", "<|im_start|>", "<|im_end|>", "[CLS]", "[SEP]"]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def build_tokenizer(**special) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (about 300 tokens) trained in memory on a small corpus."""
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    corpus = [string.printable * 3, "the good answer is helpful and the bad answer is rude " * 20]
    raw.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", **special)


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama backbone with a ChatML template whose EOS (<|im_end|>) also ends every turn."""
    directory = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = build_tokenizer(bos_token="<s>", eos_token="<|im_end|>", pad_token="<pad>")
    tokenizer.chat_template = CHATML
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory) -> Path:
    """A 2-layer BERT encoder: [CLS] prompt [SEP] response [SEP], first-token pooling."""
    directory = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = build_tokenizer(cls_token="[CLS]", sep_token="[SEP]", pad_token="<pad>")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id)
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def toy_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    """Learnable pairs: the chosen reply says 'good', the rejected one 'bad'; prompts are distinct."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        topic = " ".join(rng.choice(["cats", "dogs", "tea", "rain", "maps"]) for _ in range(rng.randint(1, 6)))
        pairs.append(PreferencePair(prompt=f"question {i} about {topic}?", chosen=f"a good helpful answer {i % 7}",
                                    rejected=f"a bad rude answer {i % 5}", id=f"toy-{i}", subset=f"s{i % 2}"))
    return pairs


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def toy_data(tmp_path) -> Path:
    return write_jsonl(tmp_path / "toy.jsonl", [p.to_dict() for p in toy_pairs(48)])


# ---- the scoring service: helpers shared by test_serve.py and test_client.py ----------------------------------
KEY = "test-key"
PROMPTS = ["Is tea good?", "Name a colour.", "What is rain?"]
RESPONSES = ["yes, tea is a good helpful drink", "red", "water falling from clouds"]


def save_tiny_model(backbone: Path, directory: Path, seed: int = 0, normalization: Normalization | None = None, *,
                    max_length: int = 64) -> Path:
    """An untrained reward model on a tiny backbone (a seeded score head), saved as a model directory."""
    torch.manual_seed(seed)
    rm = RewardModel.from_backbone(str(backbone), max_length=max_length)
    rm.spec = rm.spec.model_copy(update={"normalization": normalization})
    rm.save_pretrained(directory)
    return directory


@contextmanager
def running_server(app) -> Iterator[tuple[str, uvicorn.Server]]:
    """uvicorn in a thread on an OS-chosen loopback port; yields (base URL, server) once /health is ready."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the server thread died"
            time.sleep(0.01)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        wait_until_ready(url)
        yield url, server
    finally:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive(), "the server did not stop"


def wait_until_ready(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{url}/health").status_code != 200:
        assert time.monotonic() < deadline, "the server never became ready"
        time.sleep(0.02)


@asynccontextmanager
async def asgi_client(app, headers: dict | None = None, ready: bool = True):
    """An in-process client with the app's lifespan running (workers started, warm-up done when `ready`)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
            while ready and (await client.get("/health")).status_code != 200:
                await asyncio.sleep(0.01)
            yield client


# ---- the bad-input corpus (tests/bad_input): one harness for every refusal -----------------------------------------
def assert_refused(result, *needles: str, exit_code: int = 1, not_written: tuple[Path, ...] = ()) -> str:
    """A refused command: `exit_code`, exactly one `error:` line on stderr that contains every needle (what and
    where), no traceback anywhere, nothing on stdout that looks like a result, and none of `not_written` created.
    Returns the error line."""
    assert result.exit_code == exit_code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    assert "error:" not in result.stdout and not result.stdout.strip().startswith(("{", "[")), result.stdout
    for path in not_written:
        assert not Path(path).exists(), f"{path} was written"
    return errors[0]


def assert_usage_error(result, *needles: str, not_written: tuple[Path, ...] = ()) -> None:
    """click's usage error (a bound or a choice): exit code 2, the usage and exactly one `Error:` line on stderr
    that contains every needle, nothing on stdout, no traceback, none of `not_written` created."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output and not result.stdout.strip(), result.output
    assert result.stderr.startswith("Usage: "), result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert all(needle in line for needle in needles), (needles, line)
    assert not any(Path(path).exists() for path in not_written)
