"""Each upstream layout, from a tiny file through `load_preferences`, to canonical pairs."""

import json

import pytest

from rewardkit.data import DataError, PreferencePair, load_preferences

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


def test_implicit_hh_without_assistant_marker_or_with_empty_reply_is_bad(tmp_path):
    with pytest.raises(DataError, match=r"tiny.jsonl:1: field 'chosen': no '\\n\\nAssistant:' turn"):
        load(tmp_path, [{"chosen": "just text", "rejected": "\n\nHuman: a\n\nAssistant: b"}], format="implicit")
    with pytest.raises(DataError, match=r"tiny.jsonl:1: field 'rejected': empty response"):
        load(tmp_path, [{"chosen": HH_PROMPT + "\n\nAssistant: Blue.", "rejected": HH_PROMPT + "\n\nAssistant:  "}])


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
    with pytest.raises(DataError, match=r"tiny.jsonl:1: cannot detect the format from fields \['answer', 'question'\]"):
        load(tmp_path, [{"question": "q", "answer": "a"}])


def test_to_dict_round_trips_and_leaves_out_unset_fields():
    pair = PreferencePair([user("Hi")], [assistant("a")], [assistant("b")], id="x", margin=1.5)
    record = pair.to_dict()
    assert record == {"prompt": [user("Hi")], "chosen": [assistant("a")], "rejected": [assistant("b")],
                      "id": "x", "margin": 1.5}
    assert PreferencePair.from_dict(record) == pair
    with pytest.raises(DataError, match="field 'id': missing"):
        PreferencePair.from_dict({"prompt": "p", "chosen": "a", "rejected": "b"})
