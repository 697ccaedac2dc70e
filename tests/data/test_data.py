"""Sources, bad input, save/load, audit and split of `rewardkit.data`, plus the real upstream files."""

import gzip
import io
import json
import os
import sys
from dataclasses import dataclass

import pytest

from conftest import SHARED_DATA
from rewardkit.data.audit import audit_preferences, fleiss_kappa
from rewardkit.data.preferences import load_preferences, save_preferences
from rewardkit.data.records import PreferencePair, prompt_key
from rewardkit.data.sources import read_records
from rewardkit.data.split import prepare_preferences, split_by_prompt
from rewardkit.errors import DataError

PAIR = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}


def jsonl(records):
    return "".join(json.dumps(record) + "\n" for record in records)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------------- sources


def test_jsonl_skips_blank_lines_and_ids_are_stable(tmp_path):
    path = write(tmp_path / "prefs.jsonl", "\n" + jsonl([PAIR]) + "\n" + jsonl([{**PAIR, "chosen": "four"}]))
    first, second = load_preferences(path), load_preferences(path)
    assert [pair.id for pair in first.pairs] == ["prefs-0", "prefs-1"]
    assert first.pairs == second.pairs and first.notes["records"] == 2


def test_jsonl_gz(tmp_path):
    path = tmp_path / "prefs.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl([PAIR]).encode()))
    assert load_preferences(path).pairs[0] == PreferencePair("2+2?", "4", "5", id="prefs-0")


def test_json_array_locates_records_by_line(tmp_path):
    path = write(tmp_path / "prefs.json", json.dumps([PAIR, {**PAIR, "chosen": 3}], indent=2))
    with pytest.raises(DataError, match=r"prefs.json:7: field 'chosen': expected a string"):
        load_preferences(path)


def test_json_object_with_one_list_field_and_json_lines_named_json(tmp_path):
    records = {"version": 1, "data": [PAIR, {**PAIR, "rejected": 5}], "note": "x"}
    wrapped = write(tmp_path / "wrapped.json", json.dumps(records, indent=1))
    with pytest.raises(DataError, match=r"wrapped.json:9: field 'rejected': expected a string"):
        load_preferences(wrapped)
    assert [str(s) for s in load_preferences(wrapped, on_bad_record="skip").skipped] == [
        f"{wrapped}:9: field 'rejected': expected a string or assistant messages, got int"]
    lines = write(tmp_path / "lines.json", jsonl([PAIR, PAIR]))
    assert len(load_preferences(lines).pairs) == 2


def test_parquet_rows_keep_messages_and_are_located_by_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "prefs.parquet"
    messages = [{"role": "user", "content": "Hi"}]
    pq.write_table(pa.Table.from_pylist([
        {"prompt": messages, "chosen": [{"role": "assistant", "content": "Hello"}], "rejected": []},
    ]), path)
    with pytest.raises(DataError, match=r"prefs.parquet row 0: field 'rejected': expected one or more assistant"):
        load_preferences(path)


def test_csv_cells_stay_strings_and_numbers_parse(tmp_path):
    text = 'prompt,chosen,rejected,margin\n"What is 6*7?",42,41,1.5\nHi,Hello,,\nHi,Yo\n'
    path = write(tmp_path / "prefs.csv", text)
    first, empty = load_preferences(path, on_bad_record="skip").pairs
    assert (first.chosen, first.margin) == ("42", 1.5)
    assert (empty.rejected, empty.margin) == ("", None)  # an empty cell: an empty reply (or an absent number)
    with pytest.raises(DataError, match=r"prefs.csv row 2: field 'rejected': missing"):  # a short row
        load_preferences(path)


def test_hub_name_goes_to_datasets_load_dataset(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, split):
        calls.append((name, split))
        return [PAIR, {**PAIR, "chosen": 4}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    result = load_preferences("someone/prefs", split="test", on_bad_record="skip")
    assert calls == [("someone/prefs", "test")]
    assert result.pairs[0].id == "prefs-test-0"
    assert result.skipped[0].location == "someone/prefs[test] row 1"


def test_hub_failure_is_a_data_error(monkeypatch):
    import datasets

    def offline(name, split):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"someone/prefs: cannot load split 'train'.*no network"):
        load_preferences("someone/prefs")


def test_subset_argument_overrides_record_subset(tmp_path):
    path = write(tmp_path / "prefs.jsonl", jsonl([{**PAIR, "subset": "math"}, PAIR]))
    assert [pair.subset for pair in load_preferences(path).pairs] == ["math", None]
    assert [pair.subset for pair in load_preferences(path, subset="src").pairs] == ["src", "src"]


def test_subset_field_reads_each_record_subset_from_that_field(tmp_path):
    records = [{**PAIR, "subset": "math", "topic": "algebra"}, {**PAIR, "topic": 7}, {**PAIR, "subset": "chat"}]
    path = write(tmp_path / "prefs.jsonl", jsonl(records + [{**PAIR, "topic": ["a"]}]))
    loaded = load_preferences(path, subset_field="topic", on_bad_record="skip")
    assert [pair.subset for pair in loaded.pairs] == ["algebra", "7", None]
    assert [str(s) for s in loaded.skipped] == [
        f"{path}:4: field 'topic': expected a string or an integer, got list"]
    with pytest.raises(DataError, match=r"prefs.jsonl:4: field 'topic': expected a string or an integer"):
        load_preferences(path, subset_field="topic")


RB2 = {"id": "7", "subset": "Math", "prompt": "2+2?", "chosen": ["4", "four"], "rejected": ["5", "22", "3"]}


def test_rewardbench2_prompts_are_detected_and_give_every_chosen_x_rejected_pair(tmp_path):
    path = write(tmp_path / "rb2.jsonl", jsonl([RB2, {**RB2, "id": "8", "chosen": [" ", 3]}, {**RB2, "id": 9}]))
    loaded = load_preferences(path, on_bad_record="skip")
    assert [(group.id, group.subset, group.chosen) for group in loaded.groups] == [
        ("7", "Math", ["4", "four"]), ("9", "Math", ["4", "four"])]
    assert [pair.id for pair in loaded.pairs[:4]] == ["7/c0-r0", "7/c0-r1", "7/c0-r2", "7/c1-r0"]
    assert len(loaded.pairs) == 12 and {pair.subset for pair in loaded.pairs} == {"Math"}
    assert [str(s) for s in loaded.skipped] == [f"{path}:2: field 'chosen[1]': expected a string, got int"]
    named = load_preferences(path, format="rewardbench2", on_bad_record="skip", subset_field="id")
    assert [group.subset for group in named.groups] == ["7", "9"] and named.pairs[-1].subset == "9"
    assert load_preferences(write(tmp_path / "pairs.jsonl", jsonl([PAIR]))).groups == []


def test_rewardbench2_empty_completion_is_valid(tmp_path):
    path = write(tmp_path / "rb2.jsonl", jsonl([{**RB2, "chosen": [""]}]))
    assert load_preferences(path).groups[0].chosen == [""]


def test_read_records_yields_raw_records_with_locations(tmp_path):
    path = write(tmp_path / "score.jsonl", jsonl([{"prompt": "p", "response": "r"}]) + "{oops\n")
    records = read_records(path)
    assert next(records) == (f"{path}:1", {"prompt": "p", "response": "r"})
    with pytest.raises(DataError, match=r"score.jsonl:2: malformed JSON"):
        next(records)


# --------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "p", "chosen": "a"', r"prefs.jsonl:2: malformed JSON"),
    ('{"prompt": "p", "rejected": "b"}', r"prefs.jsonl:2: field 'chosen': missing"),
    ('{"prompt": "p", "chosen": ["a"], "rejected": "b"}', r"prefs.jsonl:2: field 'chosen\[0\]': expected a message"),
    ('{"prompt": 3, "chosen": "a", "rejected": "b"}', r"prefs.jsonl:2: field 'prompt': expected a string or a list"),
    ('{"prompt": "p", "chosen": [{"role": "assistant"}], "rejected": "b"}',
     r"prefs.jsonl:2: field 'chosen\[0\].content': missing"),
    ('{"prompt": "p", "chosen": "a", "rejected": "b", "chosen": "c"}', r"prefs.jsonl:2: duplicate key 'chosen'"),
    ('{"prompt": "p", "chosen": "a", "rejected": "b", "margin": NaN}', r"prefs.jsonl:2: NaN is not valid JSON"),
    ('{"prompt": "p", "chosen": "a", "rejected": "b", "margin": 1e999}', r"prefs.jsonl:2: number 1e999 is out of"),
    ('{"prompt": "p", "chosen": "a", "rejected": "b", "margin": 1' + "0" * 400 + "}",
     r"prefs.jsonl:2: field 'margin': an integer of 401 digits is out of float range"),
    ('{"prompt": "p", "chosen": "a", "rejected": "b", "margin": 1' + "0" * 5000 + "}",
     r"prefs.jsonl:2: integer of 5001 digits is too long"),
    ("[" * 100_000, r"prefs.jsonl:2: malformed JSON: nested too deeply"),
    ('{"prompt": "p", "chosen": "a", "rejected": "b", "margin": "wide"}', r"prefs.jsonl:2: field 'margin'"),
    ('[1, 2]', r"prefs.jsonl:2: expected a record \(JSON object\), got list"),
])
def test_bad_record_names_file_line_and_field(tmp_path, line, message):
    path = write(tmp_path / "prefs.jsonl", jsonl([PAIR]) + line + "\n")
    with pytest.raises(DataError, match=message):
        load_preferences(path)
    result = load_preferences(path, on_bad_record="skip")
    assert len(result.pairs) == 1 and result.skipped[0].location == f"{path}:2"


def test_non_utf8_line_is_a_bad_record(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_bytes(jsonl([PAIR]).encode() + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    with pytest.raises(DataError, match=r"prefs.jsonl:2: not valid UTF-8 \(byte 0xe9"):
        load_preferences(path)
    assert len(load_preferences(path, on_bad_record="skip").skipped) == 1


def test_non_utf8_json_array_names_the_line(tmp_path):
    path = tmp_path / "prefs.json"
    path.write_bytes(b'[\n{"prompt": "p",\n "chosen": "caf\xe9"}]')
    with pytest.raises(DataError, match=r"prefs.json:3: not valid UTF-8"):
        load_preferences(path)


def test_malformed_json_array_names_the_line_even_when_skipping(tmp_path):
    path = write(tmp_path / "prefs.json", '[\n  {"prompt": "p", "chosen": "a", "rejected": "b"}\n  {"prompt": "q"}\n]')
    with pytest.raises(DataError, match=r"prefs.json:3: malformed JSON: expected ',' or ']'"):
        load_preferences(path, on_bad_record="skip")


@pytest.mark.parametrize("name, content, message", [
    ("empty.jsonl", "\n\n", r"empty.jsonl: no records"),
    ("empty.json", "[]", r"empty.json: no records"),
    ("blank.json", " \n", r"blank.json: no records"),
    ("empty.csv", "", r"empty.csv: no records"),
    ("notes.txt", "hello", r"notes.txt: unsupported file type"),
])
def test_file_level_errors(tmp_path, name, content, message):
    with pytest.raises(DataError, match=message):
        load_preferences(write(tmp_path / name, content), on_bad_record="skip")


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match=r"missing.jsonl: no such file"):
        load_preferences(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match=r"no such file"):
        load_preferences("./data/missing")
    path = write(tmp_path / "prefs.jsonl", jsonl([PAIR]))
    with pytest.raises(DataError, match=r"prefs.jsonl: unknown format 'alpaca'"):
        load_preferences(path, format="alpaca")


def test_a_bom_is_accepted_in_every_text_reader(tmp_path):
    bom = "\ufeff"
    texts = {"prefs.jsonl": jsonl([PAIR]), "prefs.json": json.dumps([PAIR]), "lines.json": jsonl([PAIR, PAIR]),
             "wrapped.json": json.dumps({"data": [PAIR]}), "prefs.csv": "prompt,chosen,rejected\n2+2?,4,5\n"}
    paths = [write(tmp_path / name, bom + text) for name, text in texts.items()]
    gz = tmp_path / "prefs.jsonl.gz"
    gz.write_bytes(gzip.compress((bom + jsonl([PAIR])).encode()))
    for path in [*paths, gz]:
        assert load_preferences(path).pairs[0].prompt == "2+2?", path


def test_json_array_element_with_a_duplicate_key_is_a_bad_record_and_later_ones_load(tmp_path):
    text = '[\n {"prompt": "p", "chosen": "a", "chosen": "b", "rejected": "c"},\n {"prompt": "q", "chosen": NaN},\n'
    path = write(tmp_path / "prefs.json", text + f" {json.dumps(PAIR)}\n]")
    with pytest.raises(DataError, match=r"prefs.json:2: duplicate key 'chosen'"):
        load_preferences(path)
    loaded = load_preferences(path, on_bad_record="skip")
    assert [pair.id for pair in loaded.pairs] == ["prefs-2"]
    assert [s.location for s in loaded.skipped] == [f"{path}:2", f"{path}:3"]
    assert "NaN is not valid JSON" in loaded.skipped[1].reason


def test_nested_duplicate_key_and_duplicate_wrapper_key(tmp_path):
    nested = {**PAIR, "chosen": [{"role": "assistant", "content": "a"}]}
    line = json.dumps(nested).replace('"content": "a"', '"content": "a", "content": "b"')
    with pytest.raises(DataError, match=r"prefs.jsonl:1: duplicate key 'content'"):
        load_preferences(write(tmp_path / "prefs.jsonl", line + "\n"))
    wrapped = write(tmp_path / "wrapped.json", '{"data": [],\n "data": [' + json.dumps(PAIR) + "]}")
    with pytest.raises(DataError, match=r"wrapped.json:2: duplicate key 'data'"):
        load_preferences(wrapped, on_bad_record="skip")


def test_duplicate_columns_are_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_path = write(tmp_path / "prefs.csv", "prompt,chosen,chosen,rejected\np,a,b,c\n")
    with pytest.raises(DataError, match=r"prefs.csv:1: duplicate column 'chosen'"):
        load_preferences(csv_path, on_bad_record="skip")
    parquet_path = tmp_path / "prefs.parquet"
    columns = [pa.array(["p"]), pa.array(["a"]), pa.array(["b"]), pa.array(["c"])]
    pq.write_table(pa.Table.from_arrays(columns, names=["prompt", "chosen", "chosen", "rejected"]), parquet_path)
    with pytest.raises(DataError, match=r"prefs.parquet: duplicate column 'chosen'"):
        load_preferences(parquet_path)


def test_dash_and_dev_stdin_read_json_lines_from_stdin(monkeypatch):
    for name in ("-", "/dev/stdin"):
        stdin = io.TextIOWrapper(io.BytesIO(("\ufeff" + jsonl([PAIR]) + "\n" + '{"prompt": 1}\n').encode()))
        monkeypatch.setattr(sys, "stdin", stdin)
        loaded = load_preferences(name, on_bad_record="skip")
        assert [pair.id for pair in loaded.pairs] == ["stdin-0"]
        assert [s.location for s in loaded.skipped] == ["<stdin>:3"]


def test_an_existing_path_that_is_not_a_regular_file_is_refused(tmp_path):
    (tmp_path / "prefs.jsonl").mkdir()
    for name in ("prefs.jsonl", "."):
        with pytest.raises(DataError, match=r"is a directory; give a data file"):
            load_preferences(tmp_path / name)
    with pytest.raises(DataError, match=r"is a directory"):
        load_preferences(str(tmp_path))  # a str naming a directory is not a hub name
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"pipe.jsonl: not a file"):
        load_preferences(fifo)


# ----------------------------------------------------------------------------------------------- save and load


def test_save_then_load_round_trips_every_field(tmp_path):
    pairs = [
        PreferencePair("p", "a", "b", id="one", subset="s", margin=1.0, weight=2.0),
        PreferencePair([{"role": "user", "content": "Hi"}], [{"role": "assistant", "content": "Hey"}],
                       [{"role": "assistant", "content": "Bye"}], id="two"),
    ]
    path = tmp_path / "out" / "prefs.jsonl"
    save_preferences(pairs, path)
    assert load_preferences(path).pairs == pairs
    assert [p.name for p in path.parent.iterdir()] == ["prefs.jsonl"]  # no temporary file left behind
    assert "subset" not in json.loads(path.read_text().splitlines()[1])
    with pytest.raises(ValueError, match="plain .jsonl"):
        save_preferences(pairs, tmp_path / "prefs.jsonl.gz")


# ------------------------------------------------------------------------------------------------------- audit


class CharEncoder:
    """One token per character, keeping the first `max_length` tokens; None when the reply alone is too long."""

    max_length = 8

    def length(self, prompt, response):
        return len(prompt_key(prompt)) + len(prompt_key(response))

    def encode(self, prompt, response):
        if len(response) > self.max_length:
            return None
        return [ord(char) for char in (prompt + response)[: self.max_length]]


def pair(prompt, chosen, rejected, subset=None):
    return PreferencePair(prompt, chosen, rejected, id=f"{prompt}:{chosen}>{rejected}", subset=subset)


def test_audit_counts_duplicates_repeats_identical_and_length_baseline():
    pairs = [pair("p", "long", "x"), pair("p", "long", "x"), pair("p", "y", "yy"), pair("q", "same", "same", "s")]
    audit = audit_preferences(pairs)
    assert audit["pairs"] == 4 and audit["duplicate_pairs"] == 1
    assert (audit["repeated_prompts"], audit["pairs_with_repeated_prompts"]) == (1, 3)
    assert audit["identical_pairs"] == 1 and audit["subsets"] == {"(none)": 3, "s": 1}
    assert (audit["chosen_longer"], audit["rejected_longer"], audit["equal_length"]) == (2, 1, 1)
    assert audit["chosen_longer_rate"] == 0.5 and audit["length_unit"] == "chars"
    assert "tokens" not in audit
    json.dumps(audit)


def test_audit_counts_empty_responses_which_load_as_valid(tmp_path):
    blank = [{"role": "assistant", "content": " "}]
    records = [{**PAIR, "chosen": ""}, {**PAIR, "prompt": "", "chosen": blank, "rejected": ""}, PAIR]
    loaded = load_preferences(write(tmp_path / "prefs.jsonl", jsonl(records)))
    assert [pair.prompt for pair in loaded.pairs] == ["2+2?", [], "2+2?"]  # an empty prompt is text too
    audit = audit_preferences(loaded.pairs)
    assert audit["empty_responses"] == 3 and audit["identical_pairs"] == 0
    assert audit_preferences([pair("p", "", "")])["identical_pairs"] == 1  # still flagged


def test_audit_with_encoder_reports_truncation_drops_and_percentiles():
    pairs = [pair("abcdef", "xyz1", "xyz2"), pair("ab", "c", "d"), pair("a", "123456789", "b"),
             pair("", "123456789", "987654321")]
    tokens = audit_preferences(pairs, CharEncoder())["tokens"]
    assert tokens["identical_after_truncation"] == 1  # the first; the last is dropped, not identical
    assert tokens["dropped_pairs"] == 2
    assert tokens["over_length_pairs"] == 3
    assert tokens["length_percentiles"] == {"p50": 9, "p90": 10, "p99": 10, "max": 10}


def test_fleiss_kappa_matches_the_worked_example():
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)  # Wikipedia's example: 10 items, 14 raters
    assert fleiss_kappa([[3, 0], [0, 3]]) == 1.0
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[3, 0], [1, 1]])
    with pytest.raises(ValueError, match="undefined"):
        fleiss_kappa([[3, 0], [3, 0]])


def voted(chosen, votes):
    return PreferencePair("p", chosen, "b", id=chosen, votes=votes)


def test_audit_agreement_counts_every_voted_item_given_the_load_votes():
    pairs = [voted("a", (1, 1, 1)), voted("c", (1, 1, 2))]
    items = [(1, 1, 1), (2, 2, 1), (0, 0, 1), (0, 1, 2)]  # LoadResult.votes: a tie and a split dropped on loading
    agreement = audit_preferences(pairs, votes=items)["agreement"]
    assert agreement["items_with_votes"] == 4
    assert agreement["majority_strength"] == {"3/3": 1, "2/3": 2, "1/3": 1}
    assert (agreement["tie_majority"], agreement["no_majority"]) == (1, 1)
    assert agreement["mean_agreement"] == pytest.approx((1 + 2 / 3 + 2 / 3 + 1 / 3) / 4)
    assert agreement["fleiss_kappa"] == pytest.approx(fleiss_kappa([[3, 0, 0], [1, 2, 0], [1, 0, 2], [1, 1, 1]]))
    assert audit_preferences(pairs)["agreement"]["items_with_votes"] == 2  # without votes=: the pairs' own
    assert audit_preferences([voted("a", (1, 1, 1))])["agreement"]["fleiss_kappa"] is None  # undefined
    assert "agreement" not in audit_preferences([pair("p", "a", "b")])
    json.dumps(audit_preferences(pairs, votes=items))


# ------------------------------------------------------------------------------------------------------- split


def many_prompts(count, pairs_per_prompt=1):
    return [pair(f"prompt {i}", f"good {j}", f"bad {j}") for i in range(count) for j in range(pairs_per_prompt)]


def test_prepare_dedupes_drops_identical_and_caps_per_prompt():
    pairs = many_prompts(4, pairs_per_prompt=5) + [pair("prompt 0", "good 0", "bad 0"), pair("z", "same", "same")]
    split = prepare_preferences(pairs, eval_fraction=0.25, max_pairs_per_prompt=2, seed=3)
    assert split.stats["duplicates_removed"] == 1 and split.stats["identical_dropped"] == 1
    assert split.stats["capped_dropped"] == 12
    assert len(split.train) + len(split.eval) == 8
    assert split == prepare_preferences(pairs, eval_fraction=0.25, max_pairs_per_prompt=2, seed=3)


def test_prepare_splits_by_prompt_near_the_fraction_and_depends_on_seed():
    pairs = many_prompts(200, pairs_per_prompt=2)
    split = prepare_preferences(pairs, eval_fraction=0.1, seed=0)
    train_prompts = {prompt_key(p.prompt) for p in split.train}
    eval_prompts = {prompt_key(p.prompt) for p in split.eval}
    assert not train_prompts & eval_prompts
    assert 38 <= len(split.eval) <= 42 and len(split.train) + len(split.eval) == 400
    assert split.stats["eval_prompts"] == len(eval_prompts)
    other = prepare_preferences(pairs, eval_fraction=0.1, seed=1)
    assert {prompt_key(p.prompt) for p in other.eval} != eval_prompts


def test_prepare_keeps_one_prompt_for_training_and_rejects_bad_fractions():
    split = prepare_preferences(many_prompts(1, pairs_per_prompt=3), eval_fraction=0.5)
    assert len(split.train) == 3 and split.eval == []
    with pytest.raises(ValueError, match="eval_fraction"):
        prepare_preferences([], eval_fraction=1.0)


def test_split_by_prompt_keeps_prompts_whole_and_is_deterministic():
    pairs = many_prompts(100, pairs_per_prompt=3)
    train, held_out = split_by_prompt(pairs, 0.2, seed=4)
    assert not {prompt_key(p.prompt) for p in train} & {prompt_key(p.prompt) for p in held_out}
    assert len(train) + len(held_out) == 300 and 57 <= len(held_out) <= 63
    assert (train, held_out) == split_by_prompt(pairs, 0.2, seed=4)
    assert {p.id for p in held_out} == {p.id for p in split_by_prompt(pairs[::-1], 0.2, seed=4)[1]}  # order-free
    assert held_out != split_by_prompt(pairs, 0.2, seed=5)[1]
    with pytest.raises(ValueError, match="eval_fraction"):
        split_by_prompt(pairs, 1.0, seed=0)


def test_split_by_prompt_uses_a_group_when_records_have_one():
    @dataclass(frozen=True)
    class Rated:
        prompt: str
        group: str | None

    records = [Rated(f"variant {i} of question {i % 10}", f"q{i % 10}") for i in range(100)]
    train, held_out = split_by_prompt(records, 0.3, seed=0)
    assert held_out and not {r.group for r in train} & {r.group for r in held_out}


def test_prepare_splits_exactly_like_split_by_prompt():
    pairs = many_prompts(50, pairs_per_prompt=2)
    split = prepare_preferences(pairs, eval_fraction=0.2, seed=7)
    assert (split.train, split.eval) == split_by_prompt(pairs, 0.2, seed=7)


# ------------------------------------------------------------------------------------------ real upstream files

needs_real_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real upstream data not found at {SHARED_DATA}")


@needs_real_data
def test_real_hh_rlhf_reports_records_without_shared_prefix():
    path = SHARED_DATA / "hh-rlhf-harmless-base-test.jsonl.gz"
    result = load_preferences(path, on_bad_record="skip")
    assert result.notes["records"] == 2312 and result.notes["no_shared_prefix"] == 5
    assert len(result.pairs) + len(result.skipped) == 2312 and len(result.skipped) == 5  # no shared prefix
    assert all(p.prompt[-1]["role"] == "user" and p.chosen[0]["role"] == "assistant" for p in result.pairs)
    audit = audit_preferences(result.pairs)
    assert 0.40 < audit["chosen_longer_rate"] < 0.48  # README: about 44%
    assert audit["empty_responses"] == 4 and audit["identical_pairs"] == 0
    line_87 = next(p for p in result.pairs if p.id == "hh-rlhf-harmless-base-test-86")
    assert line_87.chosen == [{"role": "assistant", "content": ""}]  # an empty reply: kept
    with pytest.raises(DataError, match=r"hh-rlhf-harmless-base-test.jsonl.gz:1255: field 'rejected': no shared"):
        load_preferences(path)


@needs_real_data
def test_real_dpo_en_demo_sharegpt():
    result = load_preferences(SHARED_DATA / "dpo-en-demo.json")
    assert len(result.pairs) == 300 and not result.skipped
    assert sum(p.prompt[0]["role"] == "system" for p in result.pairs) == 80


@needs_real_data
def test_real_oasst_ranked_expands_to_every_ordered_pair():
    result = load_preferences(SHARED_DATA / "oasst-rm-zh.json")
    assert result.notes["records"] == 775
    assert len(result.pairs) == result.notes["expanded_ranked_pairs"] >= 775
    assert audit_preferences(result.pairs)["identical_pairs"] > 0  # upstream repeats an output within a ranking


@needs_real_data
def test_real_pandalm_majority_and_non_string_responses():
    result = load_preferences(SHARED_DATA / "pandalm-testset-v1.json", on_bad_record="skip")
    non_strings = [s for s in result.skipped if "expected a string, got bool" in s.reason]
    assert len(non_strings) == 6
    assert result.notes["ties_dropped"] == 105 and len(result.skipped) == 6  # empty responses are kept
    assert len(result.pairs) + len(result.skipped) + result.notes["ties_dropped"] == 999
    assert {p.subset for p in result.pairs} == {"pandalm"}


@needs_real_data
def test_real_pandalm_agreement_and_tie_options():
    path = SHARED_DATA / "pandalm-testset-v1.json"
    result = load_preferences(path, on_bad_record="skip")
    assert result.notes == {"records": 999, "ties_dropped": 105, "kept_with_2_of_3_votes": 96}
    agreement = audit_preferences(result.pairs, votes=result.votes)["agreement"]
    assert agreement["items_with_votes"] == 993  # 999 less 6 bad records (non-string responses)
    assert agreement["majority_strength"] == {"3/3": 877, "2/3": 116}
    assert (agreement["tie_majority"], agreement["no_majority"]) == (105, 0)
    assert agreement["fleiss_kappa"] == pytest.approx(0.8678, abs=1e-4)
    kept = load_preferences(path, on_bad_record="skip", ties="keep")
    assert sum(p.tie for p in kept.pairs) == 105 and len(kept.pairs) == len(result.pairs) + 105
    unanimous = load_preferences(path, on_bad_record="skip", min_agreement=1.0)
    assert len(unanimous.pairs) == 888 - 96 and unanimous.notes["below_min_agreement"] == 96
