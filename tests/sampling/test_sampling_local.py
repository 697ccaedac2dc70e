"""`rewardkit sample` with a local policy: the tiny Llama of conftest.py, saved to disk like a real model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import assert_refused, write_jsonl
from rewardkit.cli.app import app
from rewardkit.sampling.local import LocalSampler, SamplingParams, policy_precision
from rewardkit.sampling.pool import read_pool
from rewardkit.sampling.prompts import load_prompts
from rewardkit.sampling.run import sample_pool

runner = CliRunner()
OPTIONS = ["--n", "5", "--max-new-tokens", "6", "--batch-size", "2", "--precision", "fp32", "--no-progress"]


@pytest.fixture
def prompts(tmp_path) -> Path:
    return write_jsonl(tmp_path / "prompts.jsonl", [
        {"prompt": "what is the good answer?", "reference": "good"},
        {"prompt": [{"role": "system", "content": "be rude"}, {"role": "user", "content": "tea?"}],
         "prompt_id": "chat"},
        {"prompt": "what is the good answer?", "reference": "good"},  # repeated: sampled once
    ])


def sample_cli(policy: Path, prompts: Path, output: Path, *extra: str):
    return runner.invoke(app, ["sample", "--policy", str(policy), "--prompts", str(prompts), "--output", str(output),
                               *OPTIONS, *extra])


def keyed(path: Path) -> dict:
    return {sample.key: sample for sample in read_pool(path)}


def test_sample_writes_n_per_prompt_with_the_sampler_and_extras(llama_dir, prompts, tmp_path):
    output = tmp_path / "pool.jsonl"
    result = sample_cli(llama_dir, prompts, output)
    assert result.exit_code == 0, result.output
    assert "sampled 10 responses" in result.stdout and "1 prompt records repeated" in result.stderr
    pool = read_pool(output)
    assert sorted(s.key for s in pool if s.prompt_id == "chat") == [("chat", i) for i in range(5)]
    assert pool[0].sampler == {"kind": "local", "model": str(llama_dir), "temperature": 1.0, "top_p": 1.0,
                               "max_new_tokens": 6, "seed": 0, "precision": "fp32"}
    assert all(1 <= s.tokens <= 6 for s in pool) and all(s.tokens == 6 for s in pool if s.finish_reason == "length")
    assert {s.extra.get("reference") for s in pool} == {"good", None}
    assert len({s.response for s in pool}) > 1  # samples, not copies


def test_a_stop_token_ends_the_reply_and_is_counted(llama_dir, tmp_path):
    sampler = LocalSampler(str(llama_dir), SamplingParams(max_new_tokens=4))
    eos = sampler.stop_ids[0]
    assert sampler.completion([5, 6, eos, eos]) == sampler.completion([5, 6, eos, 7])
    stopped, cut = sampler.completion([5, 6, eos, eos]), sampler.completion([5, 6, 7, 8])
    assert (stopped.tokens, stopped.finish_reason) == (3, "stop")
    assert (cut.tokens, cut.finish_reason) == (4, "length")


def test_samples_depend_only_on_seed_prompt_and_index(llama_dir, prompts, tmp_path):
    """Sampling one prompt, then the rest (a resume) draws what one run draws; another seed draws other text."""
    whole, parts, other = tmp_path / "whole.jsonl", tmp_path / "parts.jsonl", tmp_path / "other.jsonl"
    assert sample_cli(llama_dir, prompts, whole).exit_code == 0
    assert sample_cli(llama_dir, prompts, parts, "--limit", "1").exit_code == 0
    assert len(read_pool(parts)) == 5
    resumed = sample_cli(llama_dir, prompts, parts)
    assert resumed.exit_code == 0 and "sampled 5 responses" in resumed.stdout and "5 already there" in resumed.stdout
    assert keyed(parts) == keyed(whole)
    assert sample_cli(llama_dir, prompts, other, "--seed", "1").exit_code == 0
    assert [s.response for s in keyed(other).values()] != [s.response for s in keyed(whole).values()]


def test_a_partly_written_prompt_is_completed_with_the_same_samples(llama_dir, prompts, tmp_path):
    whole, partial = tmp_path / "whole.jsonl", tmp_path / "partial.jsonl"
    assert sample_cli(llama_dir, prompts, whole).exit_code == 0
    lines = whole.read_text().splitlines(keepends=True)
    partial.write_text("".join(lines[:3]) + lines[3][:10])  # 3 whole samples of a prompt and a torn fourth
    result = sample_cli(llama_dir, prompts, partial)
    assert result.exit_code == 0 and "torn last line" in result.stderr
    assert keyed(partial) == keyed(whole)


def test_a_larger_n_extends_the_pool(llama_dir, prompts, tmp_path):
    output = tmp_path / "pool.jsonl"
    assert sample_cli(llama_dir, prompts, output).exit_code == 0
    result = runner.invoke(app, ["sample", "--policy", str(llama_dir), "--prompts", str(prompts), "--output",
                                 str(output), *OPTIONS[2:], "--n", "7"])
    assert result.exit_code == 0 and "sampled 4 responses" in result.stdout
    assert sorted(keyed(output)) == sorted((p, i) for p in {k[0] for k in keyed(output)} for i in range(7))


@pytest.mark.parametrize("change", [["--temperature", "0.5"], ["--top-p", "0.9"], ["--max-new-tokens", "7"],
                                    ["--seed", "3"]])
def test_other_sampling_parameters_refuse_to_mix_pools(llama_dir, prompts, tmp_path, change):
    output = tmp_path / "pool.jsonl"
    assert sample_cli(llama_dir, prompts, output).exit_code == 0
    before = output.read_bytes()
    assert_refused(sample_cli(llama_dir, prompts, output, *change), str(output), change[0][2:].replace("-", "_"))
    assert output.read_bytes() == before


def test_greedy_samples_are_all_the_same(llama_dir, prompts, tmp_path):
    prompt_set = load_prompts(prompts, limit=1)
    sampler = LocalSampler(str(llama_dir), SamplingParams(temperature=0, max_new_tokens=5), batch_size=3)
    sample_pool(prompt_set, sampler, tmp_path / "pool.jsonl", n=4, progress=False)
    assert len({s.response for s in read_pool(tmp_path / "pool.jsonl")}) == 1


def test_endpoint_and_policy_options_do_not_mix(llama_dir, prompts, tmp_path):
    output = tmp_path / "pool.jsonl"
    assert_refused(sample_cli(llama_dir, prompts, output, "--model", "m"), "--model", not_written=(output,))
    assert_refused(sample_cli(llama_dir, prompts, output, "--endpoint", "http://127.0.0.1:1/v1", "--model", "m"),
                   "--endpoint", not_written=(output,))


def test_sigkill_then_rerun_gives_the_uninterrupted_pool(llama_dir, tmp_path):
    """kill -9 a run mid-way, tear its last line, rerun: every (prompt_id, sample_index) once, the same samples as
    a run never interrupted."""
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"question {i} about tea"} for i in range(40)])
    killed, whole = tmp_path / "killed.jsonl", tmp_path / "whole.jsonl"
    command = [sys.executable, "-m", "rewardkit.cli", "sample", "--policy", str(llama_dir), "--prompts", str(prompts),
               *OPTIONS[:2], "--max-new-tokens", "24", *OPTIONS[4:]]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([*command, "--output", str(killed)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (killed.exists() and killed.read_bytes().count(b"\n") >= 10):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no samples written"
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = killed.read_bytes()
    assert written.count(b"\n") < 40 * 5, "the run finished before the kill"
    killed.write_bytes(written + b'{"prompt_id": "torn')
    subprocess.run([*command, "--output", str(killed)], env=env, check=True, capture_output=True)
    subprocess.run([*command, "--output", str(whole)], env=env, check=True, capture_output=True)
    pool = read_pool(killed)  # refuses duplicates and torn lines
    assert len(pool) == 40 * 5
    assert keyed(killed) == keyed(whole)
    assert json.loads(written.splitlines()[0]) == keyed(whole)[pool[0].key].to_dict()


def test_bf16_is_recorded_in_the_sampler(llama_dir, prompts, tmp_path):
    output = tmp_path / "pool.jsonl"
    result = sample_cli(llama_dir, prompts, output, "--precision", "bf16", "--limit", "1")
    assert result.exit_code == 0, result.output
    assert {s.sampler["precision"] for s in read_pool(output)} == {"bf16"}


def test_auto_precision_is_fp32_for_a_gguf_policy(llama_dir, tmp_path, monkeypatch):
    gguf = tmp_path / "policy.gguf"
    gguf.write_bytes(b"")  # resolved by name only
    monkeypatch.setenv("REWARDKIT_AUTO_PRECISION", "bf16")
    assert policy_precision("auto", str(gguf)) == "fp32"
    assert policy_precision("bf16", str(gguf)) == "bf16"
    assert policy_precision("auto", str(llama_dir)) == "bf16"
