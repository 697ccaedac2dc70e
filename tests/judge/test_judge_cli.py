"""`rewardkit judge` end to end with a tiny local judge: dry run, --against, Constitutional AI, and a run killed
with SIGKILL that resumes with nothing asked twice and nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from typer.testing import CliRunner

from conftest import assert_refused, toy_pairs, write_jsonl
from rewardkit.cli.app import app
from rewardkit.data.preferences import load_preferences

runner = CliRunner()


def judge_cli(*args: str):
    return runner.invoke(app, ["judge", "--no-progress", "--precision", "fp32", *args])


def test_dry_run_counts_and_writes_nothing(tmp_path, llama_dir, toy_data):
    result = judge_cli("--input", str(toy_data), "--output", str(tmp_path / "out.jsonl"), "--judge", str(llama_dir),
                       "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: 96 calls (0 of 96 comparisons already cached)" in result.stdout
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.jsonl.cache.jsonl").exists()


def test_against_reports_the_judges_quality_and_writes_trainable_pairs(tmp_path, llama_dir):
    data = write_jsonl(tmp_path / "labelled.jsonl", [p.to_dict() for p in toy_pairs(10)])
    out, report = tmp_path / "judged.jsonl", tmp_path / "report.json"
    result = judge_cli("--against", str(data), "--output", str(out), "--judge", str(llama_dir),
                       "--principle", "helpfulness", "--report", str(report))
    assert result.exit_code == 0, result.output
    summary = json.loads(report.read_text())
    assert summary["judged"] == 10 and summary["calls"] == 20 and summary["failed"] == 0
    quality = summary["quality"]
    assert quality["agreement"]["n"] == 10 and 0 <= quality["agreement"]["rate"] <= 1
    assert set(quality["position"]) == {"first_slot_win_rate", "verdicts", "consistency_rate", "items"}
    assert len(load_preferences(out).pairs) == 10
    again = judge_cli("--against", str(data), "--output", str(out), "--judge", str(llama_dir),
                      "--principle", "helpfulness", "--report", str(report))
    assert again.exit_code == 0 and json.loads(report.read_text())["calls"] == 0


def test_revise_emits_revision_over_original_pairs(tmp_path, llama_dir):
    data = write_jsonl(tmp_path / "drafts.jsonl", [{"prompt": "Say hi.", "response": "go away", "id": "d"}])
    out = tmp_path / "revised.jsonl"
    result = judge_cli("--input", str(data), "--output", str(out), "--judge", str(llama_dir), "--revise",
                       "--principle", "respect", "--max-new-tokens", "6", "--report", str(tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["critiques"] == 1 and summary["revisions"] == 1
    assert summary["pairs"] + summary["unchanged"] == 1


def test_input_and_against_are_one_or_the_other(tmp_path, toy_data):
    result = judge_cli("--output", str(tmp_path / "o.jsonl"))
    assert_refused(result, "--input FILE", "--against FILE")
    result = judge_cli("--input", str(toy_data), "--output", str(tmp_path / "o.jsonl"), "--model", "m")
    assert_refused(result, "--model names an endpoint's model")


def test_a_run_killed_with_sigkill_resumes_with_nothing_judged_twice_and_nothing_lost(tmp_path, llama_dir):
    data = write_jsonl(tmp_path / "pairs.jsonl", [p.to_dict() for p in toy_pairs(60)])
    out, cache, report = tmp_path / "out.jsonl", tmp_path / "cache.jsonl", tmp_path / "report.json"
    command = [sys.executable, "-m", "rewardkit.cli", "judge", "--input", str(data), "--output", str(out),
               "--judge", str(llama_dir), "--batch-size", "1", "--cache", str(cache), "--no-progress",
               "--precision", "fp32", "--report", str(report)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (cache.exists() and cache.read_bytes().count(b"\n") >= 10):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL and not out.exists()
    answered = [json.loads(line) for line in cache.read_bytes().split(b"\n")[:-1]]
    assert 10 <= len(answered) < 120

    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(report.read_text())
    entries = [json.loads(line) for line in cache.read_text().splitlines()]
    keys = [entry["key"] for entry in entries]
    assert len(keys) == len(set(keys)) == 120  # every request answered once, none twice
    assert entries[:len(answered)] == answered  # what the killed run stored was kept, not asked again
    assert summary["calls"] == 120 - len(answered) and summary["cached"] == len(answered)
    assert summary["failed"] == 0 and len(load_preferences(out).pairs) == 60
