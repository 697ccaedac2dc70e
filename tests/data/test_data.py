"""Sources, bad input, save/load, audit and split of `rewardkit.data`, plus the real upstream files."""

import gzip
import json
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
    path = write(tmp_path / "prefs.json", json.dumps([PAIR, {**PAIR, "chosen": ""}], indent=2))
    with pytest.raises(DataError, match=r"prefs.json:7: field 'chosen': empty response"):
        load_preferences(path)


def test_json_object_with_one_list_field_and_json_lines_named_json(tmp_path):
    wrapped = write(tmp_path / "wrapped.json", json.dumps({"version": 1, "data": [PAIR, {**PAIR, "rejected": 5}]}))
    with pytest.raises(DataError, match=r"wrapped.json data\[1\]: field 'rejected': expected a string"):
        load_preferences(wrapped)
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
    with pytest.raises(DataError, match=r"prefs.parquet row 0: field 'rejected': empty response"):
        load_preferences(path)


def test_csv_cells_stay_strings_and_numbers_parse(tmp_path):
    path = write(tmp_path / "prefs.csv", 'prompt,chosen,rejected,margin\n"What is 6*7?",42,41,1.5\nHi,Hello,,\n')
    (pair,) = load_preferences(path, on_bad_record="skip").pairs
    assert (pair.chosen, pair.margin) == ("42", 1.5)
    with pytest.raises(DataError, match=r"prefs.csv row 1: field 'rejected': empty response"):
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
    path = write(tmp_path / "rb2.jsonl", jsonl([RB2, {**RB2, "id": "8", "chosen": [" "]}, {**RB2, "id": 9}]))
    loaded = load_preferences(path, on_bad_record="skip")
    assert [(group.id, group.subset, group.chosen) for group in loaded.groups] == [
        ("7", "Math", ["4", "four"]), ("9", "Math", ["4", "four"])]
    assert [pair.id for pair in loaded.pairs[:4]] == ["7/c0-r0", "7/c0-r1", "7/c0-r2", "7/c1-r0"]
    assert len(loaded.pairs) == 12 and {pair.subset for pair in loaded.pairs} == {"Math"}
    assert [str(s) for s in loaded.skipped] == [f"{path}:2: field 'chosen': every completion must be non-blank text"]
    named = load_preferences(path, format="rewardbench2", on_bad_record="skip", subset_field="id")
    assert [group.subset for group in named.groups] == ["7", "9"] and named.pairs[-1].subset == "9"
    assert load_preferences(write(tmp_path / "pairs.jsonl", jsonl([PAIR]))).groups == []


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
    ('{"prompt": "p", "chosen": " \\n ", "rejected": "b"}', r"prefs.jsonl:2: field 'chosen': empty response"),
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
    assert len(result.pairs) + len(result.skipped) == 2312 and len(result.skipped) == 9  # 5 no prefix, 4 empty
    assert all(p.prompt[-1]["role"] == "user" and p.chosen[0]["role"] == "assistant" for p in result.pairs)
    assert 0.40 < audit_preferences(result.pairs)["chosen_longer_rate"] < 0.48  # README: about 44%
    with pytest.raises(DataError, match=r"hh-rlhf-harmless-base-test.jsonl.gz:87: field 'chosen': empty response"):
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
    assert result.notes["ties_dropped"] == 103
    assert len(result.pairs) + len(result.skipped) + result.notes["ties_dropped"] == 999
    assert {p.subset for p in result.pairs} == {"pandalm"}


@needs_real_data
def test_real_pandalm_agreement_and_tie_options():
    path = SHARED_DATA / "pandalm-testset-v1.json"
    result = load_preferences(path, on_bad_record="skip")
    assert result.notes == {"records": 999, "ties_dropped": 103, "kept_with_2_of_3_votes": 94}
    agreement = audit_preferences(result.pairs, votes=result.votes)["agreement"]
    assert agreement["items_with_votes"] == 939  # 999 less 60 bad records (empty or non-string responses)
    assert agreement["majority_strength"] == {"3/3": 826, "2/3": 113}
    assert (agreement["tie_majority"], agreement["no_majority"]) == (103, 0)
    assert agreement["fleiss_kappa"] == pytest.approx(0.8645, abs=1e-4)
    kept = load_preferences(path, on_bad_record="skip", ties="keep")
    assert sum(p.tie for p in kept.pairs) == 103 and len(kept.pairs) == len(result.pairs) + 103
    unanimous = load_preferences(path, on_bad_record="skip", min_agreement=1.0)
    assert len(unanimous.pairs) == 836 - 94 and unanimous.notes["below_min_agreement"] == 94
