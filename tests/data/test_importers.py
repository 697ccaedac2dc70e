"""Each upstream layout, from a tiny file through `load_preferences`, to canonical pairs."""

import json

import pytest

from rewardkit.data.importers import pair_from_dict
from rewardkit.data.preferences import load_preferences
from rewardkit.data.records import PreferencePair
from rewardkit.errors import DataError

HH_PROMPT = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a color."


def load(tmp_path, records, **kwargs):
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return load_preferences(path, **kwargs)


def user(content):
    return {"role": "user", "content": content}


def assistant(content):
    return {"role": "assistant", "content": content}


def test_pairs_standard_keeps_text_and_optional_columns(tmp_path):
    result = load(tmp_path, [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        {"prompt": "Hi", "chosen": "Hello", "rejected": "Go away", "margin": 2, "weight": 0.5, "subset": "chat"},
    ])
    first, second = result.pairs
    assert first == PreferencePair("2+2?", "4", "5", id="tiny-0")
    assert (second.margin, second.weight, second.subset, second.id) == (2.0, 0.5, "chat", "tiny-1")


def test_pairs_rewardbench_layout_takes_id_and_subset(tmp_path):
    record = {"prompt": "Q", "chosen": "good", "rejected": "bad", "subset": "math-prm", "id": 17,
              "chosen_model": "a", "rejected_model": "b"}
    (pair,) = load(tmp_path, [record]).pairs
    assert (pair.id, pair.subset) == ("17", "math-prm")


def test_pairs_conversational_and_mixed_kinds_become_messages(tmp_path):
    conversational = {"prompt": [user("Hi")], "chosen": [assistant("Hello")], "rejected": [assistant("No")]}
    mixed = {"prompt": "Hi", "chosen": [assistant("Hello")], "rejected": "No"}
    first, second = load(tmp_path, [conversational, mixed]).pairs
    assert first.prompt == second.prompt == [user("Hi")]
    assert first.rejected == second.rejected == [assistant("No")]


def test_pairs_openai_messages_accept_string_dict_or_list_replies(tmp_path):
    result = load(tmp_path, [
        {"messages": [{"role": "system", "content": "Be brief."}, user("Hi")], "chosen": "Hey",
         "rejected": assistant("Hello there, how are you?")},
        {"messages": [user("Hi")], "chosen": [assistant("Hey")], "rejected": [assistant("Yo")]},
    ])
    first, second = result.pairs
    assert first.prompt[0] == {"role": "system", "content": "Be brief."}
    assert first.chosen == [assistant("Hey")] and first.rejected == [assistant("Hello there, how are you?")]
    assert second.rejected == [assistant("Yo")]


def test_pairs_reply_with_a_user_message_is_rejected(tmp_path):
    record = {"prompt": [user("Hi")], "chosen": [user("Hello")], "rejected": [assistant("No")]}
    with pytest.raises(DataError, match=r"tiny.jsonl:1: field 'chosen': a response holds only assistant messages"):
        load(tmp_path, [record])


def test_pairs_unknown_role_names_the_message_field(tmp_path):
    record = {"prompt": [{"role": "tool", "content": "x"}], "chosen": "a", "rejected": "b"}
    with pytest.raises(DataError, match=r"field 'prompt\[0\]\.role': unknown role 'tool'"):
        load(tmp_path, [record])


def test_implicit_hh_splits_at_the_last_assistant_turn(tmp_path):
    record = {"chosen": HH_PROMPT + "\n\nAssistant:  Blue.", "rejected": HH_PROMPT + "\n\nAssistant: No."}
    (pair,) = load(tmp_path, [record]).pairs
    assert pair.prompt == [user("Hi"), assistant("Hello!"), user("Name a color.")]
    assert pair.chosen == [assistant("Blue.")] and pair.rejected == [assistant("No.")]


def test_implicit_hh_without_shared_prefix_is_counted_and_skipped(tmp_path):
    good = {"chosen": HH_PROMPT + "\n\nAssistant: Blue.", "rejected": HH_PROMPT + "\n\nAssistant: No."}
    diverging = {"chosen": "\n\nHuman: A\n\nAssistant: x", "rejected": "\n\nHuman: B\n\nAssistant: y"}
    result = load(tmp_path, [good, diverging], on_bad_record="skip")
    assert len(result.pairs) == 1 and result.notes["no_shared_prefix"] == 1
    assert result.skipped[0].location.endswith("tiny.jsonl:2")
    assert "field 'rejected': no shared prefix" in result.skipped[0].reason
    with pytest.raises(DataError, match=r"tiny.jsonl:2: field 'rejected': no shared prefix"):
        load(tmp_path, [good, diverging])


def test_implicit_hh_without_assistant_marker_is_bad_and_an_empty_reply_is_kept(tmp_path):
    with pytest.raises(DataError, match=r"tiny.jsonl:1: field 'chosen': no '\\n\\nAssistant:' turn"):
        load(tmp_path, [{"chosen": "just text", "rejected": "\n\nHuman: a\n\nAssistant: b"}], format="implicit")
    record = {"chosen": HH_PROMPT + "\n\nAssistant: Blue.", "rejected": HH_PROMPT + "\n\nAssistant:  "}
    (pair,) = load(tmp_path, [record]).pairs
    assert pair.rejected == [assistant("")]


def test_implicit_conversational_splits_at_the_last_assistant_message(tmp_path):
    history = [user("Hi"), assistant("Hello!"), user("Color?")]
    record = {"chosen": history + [assistant("Blue")], "rejected": history + [assistant("No")]}
    (pair,) = load(tmp_path, [record]).pairs
    assert pair.prompt == history and pair.chosen == [assistant("Blue")]
    diverging = {"chosen": [user("A"), assistant("x")], "rejected": [user("B"), assistant("y")]}
    assert load(tmp_path, [diverging], on_bad_record="skip").notes["no_shared_prefix"] == 1


def test_sharegpt_maps_speakers_to_roles(tmp_path):
    record = {"conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "Hi"}],
              "chosen": {"from": "gpt", "value": "Hello"}, "rejected": "Go away"}
    (pair,) = load(tmp_path, [record]).pairs
    assert pair.prompt == [{"role": "system", "content": "Be kind."}, user("Hi")]
    assert pair.chosen == [assistant("Hello")] and pair.rejected == [assistant("Go away")]


def test_sharegpt_unknown_speaker_names_the_turn(tmp_path):
    record = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "robot", "value": "?"}],
              "chosen": {"from": "gpt", "value": "a"}, "rejected": {"from": "gpt", "value": "b"}}
    with pytest.raises(DataError, match=r"tiny.jsonl:1: field 'conversations\[1\]\.from': unknown speaker 'robot'"):
        load(tmp_path, [record])


def test_ranked_expands_every_ordered_pair_with_history_and_input(tmp_path):
    record = {"instruction": "Translate", "input": "chat", "output": ["cat", "a cat", "dog"],
              "history": [["Hi", "Hello"]]}
    result = load(tmp_path, [record])
    assert [pair.id for pair in result.pairs] == ["tiny-0-0>1", "tiny-0-0>2", "tiny-0-1>2"]
    assert [(p.chosen[0]["content"], p.rejected[0]["content"]) for p in result.pairs] == [
        ("cat", "a cat"), ("cat", "dog"), ("a cat", "dog")]
    assert result.pairs[0].prompt == [user("Hi"), assistant("Hello"), user("Translate\n\nchat")]
    assert result.notes["expanded_ranked_pairs"] == 3


def test_ranked_needs_two_outputs(tmp_path):
    with pytest.raises(DataError, match=r"tiny.jsonl:1: field 'output': expected a list of at least 2"):
        load(tmp_path, [{"instruction": "x", "input": "", "output": ["only"]}])


def pandalm_record(votes, response1="first", response2="second"):
    return {"instruction": "Fix", "input": "", "response1": response1, "response2": response2,
            **{f"annotator{k}": vote for k, vote in enumerate(votes, start=1)}}


def test_pandalm_keeps_strict_majority_and_counts_ties(tmp_path):
    records = [pandalm_record([2, 2, 1]), pandalm_record([1, 1, 1]), pandalm_record([0, 0, 2]),
               pandalm_record([0, 1, 2])]
    result = load(tmp_path, records)
    assert [(p.chosen[0]["content"], p.rejected[0]["content"]) for p in result.pairs] == [
        ("second", "first"), ("first", "second")]
    assert result.notes["ties_dropped"] == 1 and result.notes["no_majority_dropped"] == 1
    assert {pair.subset for pair in result.pairs} == {"pandalm"}
    assert {p.subset for p in load(tmp_path, records, subset="mine").pairs} == {"mine"}


def test_pandalm_non_string_response_is_a_bad_record(tmp_path):
    records = [pandalm_record([1, 1, 1], response2=True), pandalm_record([1, 1, 1])]
    with pytest.raises(DataError, match=r"tiny.jsonl:1: field 'response2': expected a string, got bool"):
        load(tmp_path, records)
    result = load(tmp_path, records, on_bad_record="skip")
    assert len(result.pairs) == 1 and "response2" in result.skipped[0].reason


def test_pandalm_vote_outside_0_1_2_is_a_bad_record(tmp_path):
    with pytest.raises(DataError, match=r"field 'annotator3': expected 0 \(tie\), 1 or 2, got 3"):
        load(tmp_path, [pandalm_record([1, 1, 3])])


@pytest.mark.parametrize("record, format", [
    ({"prompt": "p", "chosen": "a", "rejected": "b"}, "pairs"),
    ({"chosen": "\n\nHuman: p\n\nAssistant: a", "rejected": "\n\nHuman: p\n\nAssistant: b"}, "implicit"),
    ({"conversations": [{"from": "human", "value": "p"}], "chosen": "a", "rejected": "b"}, "sharegpt"),
    ({"instruction": "p", "output": ["a", "b"]}, "ranked"),
    (pandalm_record([1, 1, 2]), "pandalm"),
])
def test_auto_detection_matches_the_explicit_format(tmp_path, record, format):
    assert load(tmp_path, [record]).pairs == load(tmp_path, [record], format=format).pairs
    other = "ranked" if format != "ranked" else "pairs"
    with pytest.raises(DataError):
        load(tmp_path, [record], format=other)


def test_undetectable_record_names_its_fields(tmp_path):
    with pytest.raises(DataError, match=r"tiny.jsonl:1: cannot detect the format from fields "
                                        r"\['answer', 'question'\]"):
        load(tmp_path, [{"question": "q", "answer": "a"}])


def test_to_dict_round_trips_and_leaves_out_unset_fields():
    pair = PreferencePair([user("Hi")], [assistant("a")], [assistant("b")], id="x", margin=1.5)
    record = pair.to_dict()
    assert record == {"prompt": [user("Hi")], "chosen": [assistant("a")], "rejected": [assistant("b")],
                      "id": "x", "margin": 1.5}
    assert pair_from_dict(record) == pair
    with pytest.raises(DataError, match="field 'id': missing"):
        pair_from_dict({"prompt": "p", "chosen": "a", "rejected": "b"})


# ------------------------------------------------------------------------------------------ ties, votes, strength

PAIR_RECORD = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}


def test_pandalm_defaults_count_exactly_as_before_and_keep_every_items_votes(tmp_path):
    records = [pandalm_record([2, 2, 1]), pandalm_record([1, 1, 1]), pandalm_record([0, 0, 2]),
               pandalm_record([0, 1, 2])]
    result = load(tmp_path, records)
    assert result.notes == {"records": 4, "kept_with_2_of_3_votes": 1, "ties_dropped": 1, "no_majority_dropped": 1}
    assert result.votes == [(2, 2, 1), (1, 1, 1), (0, 0, 2), (0, 1, 2)]  # each record's own order
    assert [(p.votes, p.tie, p.weight) for p in result.pairs] == [((1, 1, 2), False, None), ((1, 1, 1), False, None)]
    assert [p.agreement for p in result.pairs] == [2 / 3, 1.0]


def test_pandalm_ties_keep_makes_a_tie_pair_with_response1_chosen(tmp_path):
    result = load(tmp_path, [pandalm_record([0, 0, 2]), pandalm_record([0, 1, 2])], ties="keep")
    (tie,) = result.pairs
    assert tie.tie and tie.votes == (0, 0, 2) and tie.chosen[0]["content"] == "first"
    assert result.notes == {"records": 2, "kept_with_2_of_3_votes": 1, "no_majority_dropped": 1}


def test_min_agreement_and_weight_by_agreement(tmp_path):
    records = [pandalm_record([2, 2, 1]), pandalm_record([1, 1, 1])]
    strict = load(tmp_path, records, min_agreement=0.9)
    assert [p.votes for p in strict.pairs] == [(1, 1, 1)]
    assert strict.notes["below_min_agreement"] == 1 and "kept_with_2_of_3_votes" not in strict.notes
    assert [p.weight for p in load(tmp_path, records, weight_by_agreement=True).pairs] == [pytest.approx(2 / 3), 1.0]
    pairs = [{**PAIR_RECORD, "votes": [1, 1, 0], "weight": 3}, {**PAIR_RECORD, "weight": 3}]
    assert [p.weight for p in load(tmp_path, pairs, weight_by_agreement=True).pairs] == [pytest.approx(2.0), 3.0]
    with pytest.raises(ValueError, match="min_agreement"):
        load(tmp_path, records, min_agreement=1.5)
    with pytest.raises(ValueError, match="ties"):
        load(tmp_path, records, ties="half")


def test_pairs_tie_and_votes_follow_the_options(tmp_path):
    records = [{**PAIR_RECORD, "tie": True, "votes": [0, 0, 1]}, {**PAIR_RECORD, "votes": [1, 1, 0, 2]}]
    default = load(tmp_path, records)
    assert [p.votes for p in default.pairs] == [(1, 1, 0, 2)] and default.notes["ties_dropped"] == 1
    assert default.pairs[0].agreement == 0.5 and default.notes["kept_with_2_of_4_votes"] == 1
    assert default.votes == [(0, 0, 1), (1, 1, 0, 2)]
    kept = load(tmp_path, records, ties="keep")
    assert [p.tie for p in kept.pairs] == [True, False]


def test_csv_tie_cells_and_strength(tmp_path):
    path = tmp_path / "prefs.csv"
    path.write_text("prompt,chosen,rejected,tie,preference_strength\np,a,b,true,\nq,c,d,,2\n", encoding="utf-8")
    pairs = load_preferences(path, ties="keep").pairs
    assert [(p.tie, p.margin) for p in pairs] == [(True, None), (False, pytest.approx(2 / 3))]


@pytest.mark.parametrize("strength, margin", [
    (1, 1 / 3), (2, 2 / 3), (3, 1.0), ("significantly better", 1.0), ("Better", 2 / 3), ("slightly better", 1 / 3),
    ("negligibly better", 0.0), ("unsure", 0.0),
])
def test_preference_strength_becomes_the_margin(tmp_path, strength, margin):
    (pair,) = load(tmp_path, [{**PAIR_RECORD, "preference_strength": strength}]).pairs
    assert pair.margin == pytest.approx(margin)


def test_margin_wins_over_preference_strength(tmp_path):
    (pair,) = load(tmp_path, [{**PAIR_RECORD, "preference_strength": 3, "margin": 0.5}]).pairs
    assert pair.margin == 0.5


@pytest.mark.parametrize("fields, message", [
    ({"preference_strength": -2}, r"field 'preference_strength': -2 is not 1 to 3 \(positive"),
    ({"preference_strength": 0}, r"field 'preference_strength': 0 is not 1 to 3"),
    ({"preference_strength": 4}, r"field 'preference_strength': 4 is not 1 to 3"),
    ({"preference_strength": "much better"}, r"field 'preference_strength': expected an integer 1 to 3 or one of"),
    ({"preference_strength": 1.5}, r"field 'preference_strength': expected an integer"),
    ({"preference_strength": True}, r"field 'preference_strength': expected an integer"),
    ({"votes": [1, 3]}, r"field 'votes\[1\]': expected 0 \(tie\), 1 or 2, got 3"),
    ({"votes": [1, True]}, r"field 'votes\[1\]': expected 0 \(tie\), 1 or 2, got True"),
    ({"votes": []}, r"field 'votes': expected a non-empty list of votes, got list"),
    ({"votes": "1,1"}, r"field 'votes': expected a non-empty list of votes, got str"),
    ({"votes": [2, 2, 1]}, r"field 'votes': more votes for 'rejected' than for 'chosen'"),
    ({"tie": "yes"}, r"field 'tie': expected a boolean, got str"),
    ({"tie": 1}, r"field 'tie': expected a boolean, got int"),
])
def test_bad_tie_votes_or_strength_names_the_field(tmp_path, fields, message):
    with pytest.raises(DataError, match=r"tiny.jsonl:2: " + message):
        load(tmp_path, [PAIR_RECORD, {**PAIR_RECORD, **fields}])
    result = load(tmp_path, [PAIR_RECORD, {**PAIR_RECORD, **fields}], on_bad_record="skip")
    assert len(result.pairs) == 1 and result.votes == [] and len(result.skipped) == 1


def test_to_dict_round_trips_ties_and_votes():
    pair = PreferencePair("p", "a", "b", id="x", tie=True, votes=(0, 0, 1))
    assert pair.to_dict() == {"prompt": "p", "chosen": "a", "rejected": "b", "id": "x", "tie": True,
                              "votes": (0, 0, 1)}
    assert pair_from_dict(json.loads(json.dumps(pair.to_dict()))) == pair
    assert "tie" not in PreferencePair("p", "a", "b", id="y").to_dict()
    assert PreferencePair("p", "a", "b", id="y").agreement is None


@pytest.mark.parametrize("record, empty", [
    ({"prompt": "", "chosen": "", "rejected": "b"}, ""),
    ({"messages": [user("Hi")], "chosen": [assistant(" ")], "rejected": "b"}, [assistant(" ")]),
    ({"conversations": [{"from": "human", "value": "Hi"}], "chosen": {"from": "gpt", "value": ""}, "rejected": "b"},
     [assistant("")]),
    ({"instruction": "Fix", "input": "", "output": ["", "b"]}, [assistant("")]),
    ({"instruction": "Fix", "input": "", "response1": "", "response2": "b", "annotator1": 1, "annotator2": 1,
      "annotator3": 2}, [assistant("")]),
])
def test_an_empty_reply_is_valid_in_every_pair_format(tmp_path, record, empty):
    (pair,) = load(tmp_path, [record]).pairs
    assert pair.chosen == empty


def test_a_reply_needs_one_or_more_assistant_messages(tmp_path):
    with pytest.raises(DataError, match=r"tiny.jsonl:1: field 'chosen': expected one or more assistant messages"):
        load(tmp_path, [{"prompt": [user("Hi")], "chosen": [], "rejected": "b"}])
