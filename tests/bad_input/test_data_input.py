"""Hostile data input through the CLI: each kind is refused with one located `error:` line (or, where the input is
valid after all, accepted), never a traceback, a silent last value or a half-written output."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import assert_refused, assert_usage_error
from rewardkit.cli.app import app

runner = CliRunner()
PAIR = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}
GOOD = json.dumps(PAIR)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def audit(*args: str | Path, input: str | None = None):
    return runner.invoke(app, ["data", "audit", *map(str, args)], input=input)


def prepare(source: str | Path, output_dir: Path, *args: str, input: str | None = None):
    return runner.invoke(app, ["data", "prepare", str(source), "--output-dir", str(output_dir), *args], input=input)


def train(config: Path, output_dir: Path, *args: str):
    return runner.invoke(app, ["train", "--config", str(config), "--output-dir", str(output_dir), *args])


def outputs(directory: Path) -> tuple[Path, ...]:
    return directory / "train.jsonl", directory / "eval.jsonl", directory / "prepare.json"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---- one bad record: refused naming FILE:LINE and what is wrong, by every command that reads records ------------

BAD_LINES = {
    "malformed JSON": ('{"prompt": "p", "chosen": "a"', "malformed JSON: Expecting ',' delimiter"),
    "duplicate key": ('{"prompt": "p", "chosen": "a", "rejected": "b", "chosen": "c"}', "duplicate key 'chosen'"),
    "nested duplicate key": ('{"prompt": [{"role": "user", "role": "system", "content": "x"}], "chosen": "a", '
                             '"rejected": "b"}', "duplicate key 'role'"),
    "NaN": ('{"prompt": "p", "chosen": "a", "rejected": "b", "margin": NaN}', "NaN is not valid JSON"),
    "Infinity": ('{"prompt": "p", "chosen": "a", "rejected": "b", "weight": Infinity}', "Infinity is not valid JSON"),
    "-Infinity": ('{"prompt": "p", "chosen": "a", "rejected": "b", "margin": -Infinity}',
                  "-Infinity is not valid JSON"),
    "overflowing float": ('{"prompt": "p", "chosen": "a", "rejected": "b", "margin": 1e400}',
                          "number 1e400 is out of range"),
    "integer beyond float range": ('{"prompt": "p", "chosen": "a", "rejected": "b", "margin": 1' + "0" * 400 + "}",
                                   "field 'margin': an integer of 401 digits is out of float range"),
    "integer too long to read": ('{"prompt": "p", "chosen": "a", "rejected": "b", "id": 1' + "0" * 5000 + "}",
                                 "integer of 5001 digits is too long"),
    "nesting too deep": ("[" * 50_000 + "]" * 50_000, "malformed JSON: nested too deeply"),
    "non-string chosen": ('{"prompt": "p", "chosen": 42, "rejected": "b"}',
                          "field 'chosen': expected a string or assistant messages, got int"),
    "unknown role": ('{"prompt": [{"role": "robot", "content": "x"}], "chosen": "a", "rejected": "b"}',
                     "field 'prompt[0].role': unknown role 'robot'"),
    "message without content": ('{"prompt": "p", "chosen": [{"role": "assistant"}], "rejected": "b"}',
                                "field 'chosen[0].content': missing"),
    "user message as a reply": ('{"prompt": "p", "chosen": [{"role": "user", "content": "a"}], "rejected": "b"}',
                                "field 'chosen': a response holds only assistant messages"),
    "empty message list as a reply": ('{"prompt": "p", "chosen": [], "rejected": "b"}',
                                      "field 'chosen': expected one or more assistant messages, got an empty list"),
    "missing field": ('{"prompt": "p", "chosen": "a"}', "field 'rejected': missing"),
    "null field": ('{"prompt": null, "chosen": "a", "rejected": "b"}', "field 'prompt': missing"),
    "top-level list": ("[1, 2]", "expected a record (JSON object), got list"),
    "top-level string": ('"just text"', "expected a record (JSON object), got str"),
}


@pytest.mark.parametrize("line, message", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_a_bad_record_is_refused_with_its_line(tmp_path, line, message):
    path = write(tmp_path / "prefs.jsonl", f"{GOOD}\n{line}\n")
    assert_refused(audit(path), "prefs.jsonl:2: ", message)
    assert_refused(prepare(path, tmp_path / "out"), "prefs.jsonl:2: ", message, not_written=outputs(tmp_path / "out"))


@pytest.mark.parametrize("line, message", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_with_skip_the_same_record_is_counted_and_the_rest_loads(tmp_path, line, message):
    path = write(tmp_path / "prefs.jsonl", f"{GOOD}\n{line}\n")
    result = audit(path, "--on-bad-record", "skip")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["pairs"] == 1 and report["notes"]["records"] == 2
    (skipped,) = report["skipped"]
    assert skipped.startswith(f"{path}:2: ") and message in skipped


def test_prepare_with_skip_writes_the_good_pairs_and_lists_the_skip(tmp_path):
    path = write(tmp_path / "prefs.jsonl", f"{GOOD}\n{BAD_LINES['duplicate key'][0]}\n")
    result = prepare(path, tmp_path / "out", "--on-bad-record", "skip")
    assert result.exit_code == 0, result.output
    assert [record["chosen"] for record in read_jsonl(tmp_path / "out" / "train.jsonl")] == ["4"]
    prepared = json.loads((tmp_path / "out" / "prepare.json").read_text())
    assert prepared["skipped"] == [f"{path}:2: duplicate key 'chosen' (JSON would keep only its last value)"]


def test_a_duplicate_key_in_a_json_array_is_a_bad_record_at_its_line(tmp_path):
    path = write(tmp_path / "prefs.json", f'[\n{GOOD},\n{{"prompt": "p", "prompt": "q", "chosen": "a", '
                                          f'"rejected": "b"}}\n]')
    assert_refused(audit(path), "prefs.json:3: ", "duplicate key 'prompt'")
    result = audit(path, "--on-bad-record", "skip")
    assert result.exit_code == 0 and json.loads(result.stdout)["pairs"] == 1


def test_a_malformed_json_array_is_refused_even_when_skipping(tmp_path):
    path = write(tmp_path / "prefs.json", f'[\n{GOOD}\n{GOOD}\n]')
    assert_refused(audit(path, "--on-bad-record", "skip"), "prefs.json:3: ", "malformed JSON: expected ',' or ']'")


def test_a_duplicate_key_in_an_object_wrapped_json_is_located(tmp_path):
    path = write(tmp_path / "wrapped.json", f'{{"data": [\n{GOOD},\n{{"prompt": "p", "chosen": "a", "rejected": "b", '
                                            f'"rejected": "c"}}]}}')
    assert_refused(audit(path), "wrapped.json:3: ", "duplicate key 'rejected'")


def test_csv_duplicate_column_is_refused(tmp_path):
    path = write(tmp_path / "prefs.csv", "prompt,chosen,rejected,chosen\np,a,b,c\n")
    assert_refused(audit(path, "--on-bad-record", "skip"), "prefs.csv:1: ", "duplicate column 'chosen'")


def test_invalid_utf8_is_a_bad_record(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_bytes(b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    assert_refused(audit(path), "prefs.jsonl:1: ", "not valid UTF-8 (byte 0xe9")


# ---- whole-source problems: refused even with --on-bad-record skip ------------------------------------------------


def test_a_truncated_gz_is_refused(tmp_path):
    path = tmp_path / "prefs.jsonl.gz"
    path.write_bytes(gzip.compress((GOOD + "\n").encode() * 200)[:-12])
    assert_refused(prepare(path, tmp_path / "out", "--on-bad-record", "skip"), "prefs.jsonl.gz: cannot read",
                   "end-of-stream marker", not_written=outputs(tmp_path / "out"))


@pytest.mark.parametrize("name, text", [("empty.jsonl", ""), ("blank.jsonl", "\n \n"), ("empty.json", ""),
                                        ("array.json", "[]"), ("empty.csv", "prompt,chosen,rejected\n")])
def test_an_empty_file_is_refused(tmp_path, name, text):
    path = write(tmp_path / name, text)
    assert_refused(prepare(path, tmp_path / "out", "--on-bad-record", "skip"), f"{name}: no records",
                   not_written=outputs(tmp_path / "out"))


def test_a_directory_is_not_taken_for_a_hub_name(tmp_path):
    (tmp_path / "prefs").mkdir()
    assert_refused(audit(tmp_path / "prefs"), "prefs: is a directory; give a data file")
    (tmp_path / "data.jsonl").mkdir()
    assert_refused(prepare(tmp_path / "data.jsonl", tmp_path / "out"), "data.jsonl: is a directory",
                   not_written=outputs(tmp_path / "out"))


def test_a_named_pipe_is_not_read(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    assert_refused(audit(fifo), "pipe.jsonl: not a file")


def test_a_missing_file_and_an_unsupported_type(tmp_path):
    assert_refused(audit(tmp_path / "missing.jsonl"), "missing.jsonl: no such file")
    assert_refused(audit(write(tmp_path / "notes.txt", GOOD)), "notes.txt: unsupported file type")


@pytest.mark.parametrize("option, value", [("--format", "alpaca"), ("--on-bad-record", "ignore")])
def test_an_unknown_choice_is_a_usage_error(tmp_path, option, value):
    path = write(tmp_path / "prefs.jsonl", GOOD + "\n")
    assert_usage_error(prepare(path, tmp_path / "out", option, value), f"'{option}'", f"'{value}' is not one of",
                       not_written=outputs(tmp_path / "out"))


def test_an_undetectable_layout_names_the_formats(tmp_path):
    path = write(tmp_path / "prefs.jsonl", '{"question": "q", "answer": "a"}\n')
    assert_refused(audit(path), "prefs.jsonl:1: ", "cannot detect the format", "pass format=")


# ---- input that is valid after all --------------------------------------------------------------------------------


@pytest.mark.parametrize("name, text", [
    ("prefs.jsonl", GOOD + "\n"), ("prefs.json", f"[{GOOD}]"), ("wrapped.json", f'{{"data": [{GOOD}]}}'),
    ("prefs.csv", "prompt,chosen,rejected\n2+2?,4,5\n"),
])
def test_a_utf8_bom_is_accepted(tmp_path, name, text):
    result = prepare(write(tmp_path / name, "\ufeff" + text), tmp_path / "out", "--eval-fraction", "0")
    assert result.exit_code == 0, result.output
    assert read_jsonl(tmp_path / "out" / "train.jsonl") == [{**PAIR, "id": f"{name.split('.')[0]}-0"}]


def test_dash_reads_json_lines_from_stdin(tmp_path):
    result = audit("-", input=f"\ufeff{GOOD}\n\n{json.dumps({**PAIR, 'chosen': 'four'})}\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pairs"] == 2
    result = prepare("-", tmp_path / "out", "--eval-fraction", "0", input=GOOD + "\n")
    assert result.exit_code == 0 and read_jsonl(tmp_path / "out" / "train.jsonl")[0]["id"] == "stdin-0"


def test_a_bad_record_on_stdin_is_located_by_line():
    assert_refused(audit("-", input=f"{GOOD}\n{{\"prompt\": \"p\"}}\n"), "<stdin>:2: ", "field 'chosen': missing")


def test_empty_replies_are_valid_pairs_and_counted(tmp_path):
    records = [{**PAIR, "chosen": ""}, {**PAIR, "prompt": "", "rejected": " "}, PAIR]
    path = write(tmp_path / "prefs.jsonl", "".join(json.dumps(record) + "\n" for record in records))
    result = audit(path)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["pairs"], report["empty_responses"], report["skipped"]) == (3, 2, [])
    result = prepare(path, tmp_path / "out", "--eval-fraction", "0")
    assert result.exit_code == 0 and len(read_jsonl(tmp_path / "out" / "train.jsonl")) == 3


# ---- training configs -----------------------------------------------------------------------------------------------


def config_file(tmp_path: Path, optim: str) -> Path:
    return write(tmp_path / "c.yaml", f"data:\n  train:\n    - {{path: prefs.jsonl}}\noptim:\n{optim}")


def test_a_yaml_key_given_twice_is_refused_with_its_line(tmp_path):
    config = config_file(tmp_path, "  lr: 1.0e-5\n  warmup_ratio: 0.1\n  lr: 3.0e-5\n")
    assert_refused(train(config, tmp_path / "run"), "c.yaml:7: ", "duplicate key 'lr' (first given on line 5)",
                   not_written=(tmp_path / "run",))


def test_an_unknown_config_key_is_refused(tmp_path):
    config = config_file(tmp_path, "  lrr: 1.0e-5\n")
    assert_refused(train(config, tmp_path / "run"), "c.yaml", "optim.lrr: Extra inputs are not permitted",
                   not_written=(tmp_path / "run",))


def test_malformed_yaml_and_a_malformed_override_are_one_line(tmp_path):
    config = config_file(tmp_path, "  lr: [1.0e-5\n")
    assert_refused(train(config, tmp_path / "run"), "cannot read config", "c.yaml:6: ", "while parsing a flow",
                   not_written=(tmp_path / "run",))
    config = config_file(tmp_path, "  lr: 1.0e-5\n")
    assert_refused(train(config, tmp_path / "run", "--set", "optim.lr={a: 1, a: 2}"),
                   "override 'optim.lr={a: 1, a: 2}': duplicate key 'a'", not_written=(tmp_path / "run",))
