"""Items in (pairs, rankings, a sample pool, Label Studio, Argilla) and answers out (pairs that train as they are)."""

from __future__ import annotations

import json

import pytest

from annotate.helpers import pair_records, write_jsonl
from rewardkit.annotate.export import export_pairs
from rewardkit.annotate.formats import Item, load_gold, load_items
from rewardkit.annotate.rounds import add_items_from, export_answers
from rewardkit.annotate.store import AnnotationStore, Answer
from rewardkit.data.preferences import load_preferences
from rewardkit.errors import DataError


def test_pairs_become_items_with_chosen_as_response_1(tmp_path):
    loaded = load_items(write_jsonl(tmp_path / "pairs.jsonl", pair_records(3)))
    assert [(i.id, i.prompt, i.responses) for i in loaded.items][0] == ("p0", "question 0?",
                                                                          ("good answer 0", "bad answer 0"))


def test_a_ranking_expands_to_every_pair(tmp_path):
    path = write_jsonl(tmp_path / "ranked.jsonl", [{"instruction": "rank", "output": ["best", "mid", "worst"]}])
    texts = [tuple(side[0]["content"] for side in i.responses) for i in load_items(path).items]
    assert texts == [("best", "mid"), ("best", "worst"), ("mid", "worst")]  # the importer's messages


def test_a_sample_pool_is_paired_off_within_each_prompt(tmp_path):
    pool = [{"prompt_id": "q1", "prompt": "Hi?", "sample_index": k, "response": f"r{k}", "tokens": 3,
             "finish_reason": "stop", "sampler": {"temperature": 1.0}} for k in (2, 0, 1)]
    pool += [{"prompt_id": "q2", "prompt": "Yo?", "sample_index": k, "response": f"s{k}", "tokens": 2,
              "finish_reason": "length", "sampler": {"temperature": 1.0}} for k in range(2)]
    loaded = load_items(write_jsonl(tmp_path / "pool.jsonl", pool))
    assert [(i.id, i.responses) for i in loaded.items] == [("q1:0-1", ("r0", "r1")), ("q2:0-1", ("s0", "s1"))]
    assert loaded.notes == {"prompts": 2, "pairs": 2, "unpaired_samples": 1}


def test_a_bad_pool_line_is_located(tmp_path):
    good = {"prompt_id": "q", "prompt": "x", "sample_index": 0, "response": "a", "tokens": 1,
            "finish_reason": "stop", "sampler": {}}
    path = write_jsonl(tmp_path / "pool.jsonl", [good, good | {"sample_index": "1"}])
    with pytest.raises(DataError, match=r"pool.jsonl:2: field 'sample_index'"):
        load_items(path)
    with pytest.raises(DataError, match=r"duplicated \(prompt_id, sample_index\)"):
        load_items(write_jsonl(tmp_path / "twice.jsonl", [good, good]))


def test_label_studio_and_argilla_records_import(tmp_path):
    tasks = [{"id": 7, "data": {"prompt": "Q?", "answer1": "one", "answer2": "two"}, "annotations": []}]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    (item,) = load_items(tmp_path / "ls.json").items
    assert (item.id, item.prompt, item.responses) == ("7", "Q?", ("one", "two"))
    records = [{"id": "r1", "fields": {"prompt": "Q?", "response_1": "one", "response_2": "two"},
                "responses": {"ranking": []}}]
    (item,) = load_items(write_jsonl(tmp_path / "argilla.jsonl", records)).items
    assert (item.id, item.responses) == ("r1", ("one", "two"))
    (tmp_path / "bad.json").write_text(json.dumps([{"data": {"prompt": "Q?", "answer1": "one"}}]))
    with pytest.raises(DataError, match=r"bad.json:1: field 'data.answer2': missing"):
        load_items(tmp_path / "bad.json")


def votes_answers(item_id: str, choices: list[tuple[str, bool, int | None]]) -> list[Answer]:
    return [Answer(f"u{k}", item_id, choice, strength, "", swapped, 1.0)
            for k, (choice, swapped, strength) in enumerate(choices)]


def test_export_orients_each_pair_by_its_majority():
    items = [Item("x", "q", ("one", "two")), Item("y", "q", ("one", "two")), Item("z", "q", ("one", "two")),
             Item("w", "q", ("one", "two")), Item("g", "q", ("one", "two"), gold=1), Item("u", "q", ("1", "2"))]
    answers = (votes_answers("x", [("a", True, 3), ("b", False, 2), ("a", False, None)])  # votes 2, 2, 1
               + votes_answers("y", [("tie", False, None), ("tie", True, None), ("a", False, 1)])
               + votes_answers("z", [("a", False, None), ("b", False, None)])  # 1 vs 1: no majority
               + votes_answers("w", [("cant_tell", False, None), ("skip", False, None)])
               + votes_answers("g", [("a", False, None)]))
    records, notes = export_pairs(items, answers)
    by_id = {r["id"]: r for r in records}
    assert by_id["x"]["chosen"] == "two" and by_id["x"]["votes"] == [1, 1, 2]
    assert by_id["x"]["agreement"] == pytest.approx(2 / 3) and by_id["x"]["preference_strength"] == 2  # mean(3, 2)
    assert by_id["y"]["tie"] is True and by_id["y"]["votes"] == [0, 0, 1] and "preference_strength" not in by_id["y"]
    assert dict(notes) == {"exported": 1, "ties": 1, "no_majority": 1, "unlabelled": 2, "gold_left_out": 1}


def test_exported_pairs_load_as_training_data(tmp_path):
    store = AnnotationStore(tmp_path / "r.sqlite")
    add_items_from(store, write_jsonl(tmp_path / "pairs.jsonl", pair_records(4)))
    for name in ("ana", "bo"):
        store.add_annotator(name)
        while (assigned := store.current(name, 2)) is not None:  # each picks the side showing the good answer
            store.answer(name, assigned.item.id, "a" if assigned.left.startswith("good") else "b", strength=3)
    assert export_answers(store, tmp_path / "out.jsonl") == {"exported": 4}
    result = load_preferences(tmp_path / "out.jsonl", ties="keep", weight_by_agreement=True)
    assert [p.votes for p in result.pairs] == [(1, 1)] * 4
    assert all(p.chosen.startswith("good") and p.margin == 1.0 and p.weight == 1.0 for p in result.pairs)


def test_label_studio_and_argilla_exports_load_back_as_the_same_items(tmp_path):
    store = AnnotationStore(tmp_path / "r.sqlite")
    add_items_from(store, write_jsonl(tmp_path / "pairs.jsonl", pair_records(3)))
    store.add_annotator("ana")
    store.answer("ana", store.current("ana", 1).item.id, "tie")
    for format, name in (("label-studio", "ls.json"), ("argilla", "ar.json")):
        export_answers(store, tmp_path / name, format)
        assert load_items(tmp_path / name).items == store.items()
    task = json.loads((tmp_path / "ls.json").read_text())[0]
    assert task["annotations"][0]["result"][0]["value"] == {"choices": ["tie"]}
    record = json.loads((tmp_path / "ar.json").read_text())[0]
    assert [r["rank"] for r in record["responses"]["ranking"][0]["value"]] == [1, 1]


def test_gold_pairs_know_their_answer(tmp_path):
    path = write_jsonl(tmp_path / "gold.jsonl", [{"id": "g", "prompt": "q", "chosen": "a", "rejected": "b"},
                                                 {"id": "t", "prompt": "q", "chosen": "a", "rejected": "b",
                                                  "tie": True}])
    assert [i.gold for i in load_gold(path)] == [1, 0]
