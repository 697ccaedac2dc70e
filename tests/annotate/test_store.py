"""The store: side randomization kept, overlap, skip, undo, gold, tokens, resume, concurrent writers."""

from __future__ import annotations

import threading

import pytest

from annotate.helpers import items, store_fixture  # noqa: F401  (the store fixture)
from rewardkit.annotate.formats import Item
from rewardkit.annotate.store import AnnotationStore, AnswerRefused
from rewardkit.errors import ConfigError, DataError


def answer_all(store: AnnotationStore, annotator: str, overlap: int, choice: str = "a") -> list[str]:
    done = []
    while (assigned := store.current(annotator, overlap)) is not None:
        store.answer(annotator, assigned.item.id, choice)
        done.append(assigned.item.id)
    return done


def test_sides_are_drawn_per_annotator_and_item_and_kept(tmp_path):
    store = AnnotationStore(tmp_path / "r.sqlite")
    store.add_items(items(40))
    store.add_annotator("ana"), store.add_annotator("bo")
    seen = {}
    for name in ("ana", "bo"):
        while (assigned := store.current(name, 2)) is not None:
            assert store.current(name, 2) == assigned  # asking again shows the same item, same sides
            seen[name, assigned.item.id] = assigned.swapped
            store.answer(name, assigned.item.id, "a")
    assert len(seen) == 80 and 0 < sum(seen.values()) < 80  # both orientations occur
    assert any(seen["ana", f"p{i}"] != seen["bo", f"p{i}"] for i in range(40))
    votes = {(a.annotator, a.item_id): a.vote for a in store.answers()}
    assert all(votes[key] == (2 if swapped else 1) for key, swapped in seen.items())  # "a" = the left side


def test_each_item_goes_to_overlap_annotators(store):
    for name in ("ana", "bo", "cy"):
        store.add_annotator(name)
    assert len(answer_all(store, "ana", 2)) == 6
    assert len(answer_all(store, "bo", 2)) == 6
    assert store.current("cy", 2) is None
    assert store.progress("cy", 2) == {"done": 0, "left": 0}


def test_a_skip_frees_the_place_for_another_annotator(store):
    store.add_annotator("ana"), store.add_annotator("bo")
    first = store.current("ana", 1)
    store.answer("ana", first.item.id, "skip")
    answer_all(store, "ana", 1)
    assert [store.current("bo", 1).item.id] == [first.item.id]


def test_gold_items_go_to_everyone_spread_among_the_others(store):
    store.add_items([Item("g0", "gold?", ("right", "wrong"), gold=1), Item("g1", "gold 2?", ("r", "w"), gold=1)])
    store.spread_gold()
    order = [item.id for item in store.items()]
    assert order[0] != "g0" and order[-1] != "g1" and {"g0", "g1"} <= set(order)
    store.add_annotator("ana"), store.add_annotator("bo")
    answer_all(store, "ana", 1)
    assert sorted(answer_all(store, "bo", 1)) == ["g0", "g1"]


def test_answers_are_refused_for_items_not_assigned_or_already_answered(store):
    store.add_annotator("ana"), store.add_annotator("bo")
    assigned = store.current("ana", 1)
    with pytest.raises(AnswerRefused, match="not assigned"):
        store.answer("bo", assigned.item.id, "a")
    store.answer("ana", assigned.item.id, "b", strength=2, comment="clear")
    with pytest.raises(AnswerRefused, match="already answered"):
        store.answer("ana", assigned.item.id, "a")
    with pytest.raises(AnswerRefused, match="strength"):
        store.answer("ana", store.current("ana", 1).item.id, "tie", strength=3)
    assert [(a.choice, a.strength, a.comment) for a in store.answers()] == [("b", 2, "clear")]


def test_undo_withdraws_the_last_answer_and_shows_its_item_again_with_the_same_sides(store):
    store.add_annotator("ana")
    first = store.current("ana", 1)
    store.answer("ana", first.item.id, "a")
    second = store.current("ana", 1)
    assert store.progress("ana", 1) == {"done": 1, "left": 5}
    assert store.undo("ana") == first.item.id
    assert store.current("ana", 1) == first
    assert store.progress("ana", 1) == {"done": 0, "left": 6}
    store.answer("ana", first.item.id, "tie")
    assert store.current("ana", 1) == second
    assert [a.choice for a in store.answers()] == ["tie"]
    (undone,) = store.read("SELECT choice FROM answers WHERE undone_at IS NOT NULL")
    assert undone == ("a",)  # kept, marked undone


def test_tokens_are_stored_only_as_hashes(tmp_path):
    store = AnnotationStore(tmp_path / "r.sqlite")
    token = store.add_annotator("ana")
    assert store.annotator_for_token(token) == "ana"
    assert store.annotator_for_token(token + "x") is None
    store.close()
    assert token.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir())
    with pytest.raises(ConfigError, match="already exists"):
        AnnotationStore(tmp_path / "r.sqlite").add_annotator("ana")


def test_a_reopened_store_resumes_each_annotator_where_they_stopped(tmp_path):
    store = AnnotationStore(tmp_path / "r.sqlite")
    store.add_items(items(6))
    store.add_annotator("ana")
    store.answer("ana", store.current("ana", 1).item.id, "a")
    shown = store.current("ana", 1)
    store.close()
    again = AnnotationStore(tmp_path / "r.sqlite")
    assert again.current("ana", 1) == shown and len(again.answers()) == 1


def test_an_item_changed_under_the_same_id_is_refused(store):
    assert store.add_items(items(8)) == 2  # the 6 stored are the same: kept
    with pytest.raises(DataError, match="'p0' is already in"):
        store.add_items([Item("p0", "another question", ("x", "y"))])


def test_annotators_writing_at_once_through_two_connections_never_overwrite(tmp_path):
    path = tmp_path / "r.sqlite"
    setup = AnnotationStore(path)
    setup.add_items(items(60))
    names = [f"u{k}" for k in range(4)]
    for name in names:
        setup.add_annotator(name)
    stores = [AnnotationStore(path), AnnotationStore(path)]
    done: dict[str, list[str]] = {}
    threads = [threading.Thread(target=lambda n=name, s=stores[k % 2]: done.__setitem__(n, answer_all(s, n, 2)))
               for k, name in enumerate(names)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers = setup.answers()
    assert len(answers) == sum(map(len, done.values())) == 120  # 60 items x overlap 2, nothing lost
    per_item = {}
    for a in answers:
        per_item.setdefault(a.item_id, set()).add(a.annotator)
    assert all(len(who) == 2 for who in per_item.values()) and len(per_item) == 60
