"""Rankings, ratings and step labels of `rewardkit.data.labels`, from tiny files and from the real upstream files."""

import json

import pytest

from conftest import SHARED_DATA
from rewardkit.data.labels import load_rankings, load_ratings, load_steps
from rewardkit.data.records import Ranking, RatedResponse, StepSolution, prompt_key
from rewardkit.data.split import split_by_prompt
from rewardkit.errors import DataError

needs_real_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real upstream data not found at {SHARED_DATA}")


def write(tmp_path, records, name="tiny.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def user(content):
    return {"role": "user", "content": content}


def assistant(content):
    return {"role": "assistant", "content": content}


# ------------------------------------------------------------------------------------------------- rankings


def test_ranking_format_keeps_order_and_makes_texts_one_kind(tmp_path):
    path = write(tmp_path, [{"prompt": "Q", "responses": ["best", "mid", "worst"], "weight": 2},
                            {"messages": [user("Hi")], "responses": ["Hey", [assistant("Go away")]],
                             "subset": "chat"}])
    first, second = load_rankings(path).records
    assert first == Ranking("Q", ["best", "mid", "worst"], id="tiny-0", weight=2.0)
    assert second.responses == [[assistant("Hey")], [assistant("Go away")]] and second.subset == "chat"


def test_ranked_llamafactory_is_one_ranking_with_the_pair_importers_prompt(tmp_path):
    path = write(tmp_path, [{"instruction": "Translate", "input": "chat", "output": ["cat", "a cat", "dog"],
                             "history": [["Hi", "Hello"]]}])
    (ranking,) = load_rankings(path).records
    assert ranking.prompt == [user("Hi"), assistant("Hello"), user("Translate\n\nchat")]
    assert [response[0]["content"] for response in ranking.responses] == ["cat", "a cat", "dog"]


def test_pair_formats_become_rankings_of_two_and_ties_are_counted(tmp_path):
    pandalm = [{"instruction": "Fix", "input": "", "response1": "one", "response2": "two",
                "annotator1": a, "annotator2": b, "annotator3": c} for a, b, c in ((2, 2, 1), (0, 0, 1))]
    result = load_rankings(write(tmp_path, pandalm))
    assert [[r[0]["content"] for r in ranking.responses] for ranking in result.records] == [["two", "one"]]
    assert result.notes["ties_dropped"] == 1
    pairs = load_rankings(write(tmp_path, [{"prompt": "p", "chosen": "a", "rejected": "b", "tie": True},
                                           {"prompt": "p", "chosen": "a", "rejected": "b"}]), subset="mine")
    assert pairs.records == [Ranking("p", ["a", "b"], id="tiny-1", subset="mine")]
    assert pairs.notes["ties_dropped"] == 1


def test_ranking_errors_name_the_line_and_field(tmp_path):
    path = write(tmp_path, [{"prompt": "p", "responses": ["a", "b"]}, {"prompt": "p", "responses": ["a"]}])
    with pytest.raises(DataError, match=r"tiny.jsonl:2: field 'responses': expected a list of at least 2"):
        load_rankings(path)
    skipped = load_rankings(path, on_bad_record="skip")
    assert len(skipped.records) == 1 and skipped.skipped[0].location.endswith("tiny.jsonl:2")
    with pytest.raises(DataError, match=r"tiny.jsonl:1: cannot detect the format .* one of \['ranking', 'ranked'"):
        load_rankings(write(tmp_path, [{"question": "q"}]))


# -------------------------------------------------------------------------------------------------- ratings

TEMPLATE = ("###Task Description:\nGrade it.\n\n###The instruction to evaluate:\nUser: Hi\n\nAssistant: \n\n"
            "###Response to evaluate:\n Hello there! \n\n###Reference Answer (Score 5):\nHello.\n\n"
            "###Score Rubrics:\n")


def prometheus(**fields):
    return {"idx": 81, "category": "writing", "instruction": TEMPLATE, "gpt4_score": [3, 4, 4], **fields}


def test_prometheus_parses_the_template_and_averages_the_judge(tmp_path):
    (rated,) = load_ratings(write(tmp_path, [prometheus()])).records
    assert rated == RatedResponse("User: Hi\n\nAssistant:", "Hello there!", {"score": pytest.approx(11 / 3)},
                                  id="tiny-0", subset="writing", group="81")


@pytest.mark.parametrize("fields, message", [
    ({"instruction": TEMPLATE.replace("###Response to evaluate:", "###Answer:")},
     r"field 'instruction': no '###Response to evaluate:' marker"),
    ({"instruction": TEMPLATE.replace("###Reference Answer", "###Reference")},
     r"field 'instruction': no '###Reference Answer' marker"),
    ({"instruction": TEMPLATE.replace("###The instruction to evaluate:", "")},
     r"field 'instruction': no '###The instruction to evaluate:' marker"),
    ({"gpt4_score": [3, 6]}, r"field 'gpt4_score\[1\]': expected an integer 1 to 5, got 6"),
    ({"gpt4_score": []}, r"field 'gpt4_score': expected a non-empty list"),
])
def test_prometheus_bad_records_name_the_field(tmp_path, fields, message):
    with pytest.raises(DataError, match=r"tiny.jsonl:2: " + message):
        load_ratings(write(tmp_path, [prometheus(), prometheus(**fields)]))


def gsm8k_record(correct=(False, True, False, True)):
    solutions = ["2 + 2 = 5\nA: 5", "2 + 2 = <<2+2=4>>4\nA:  4 ", "no final answer", "A: 3\nso\nA: 4"]
    keys = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
    return {"question": "2+2?", "ground_truth": "A: 4",
            **{key: {"is_correct": c, "solution": s} for key, c, s in zip(keys, correct, solutions, strict=True)}}


def test_gsm8k_solutions_are_four_rated_responses_of_one_group(tmp_path):
    rated = load_ratings(write(tmp_path, [gsm8k_record()], name="gsm.jsonl")).records
    assert [r.id for r in rated] == ["gsm-0-6b_finetuning", "gsm-0-6b_verification", "gsm-0-175b_finetuning",
                                     "gsm-0-175b_verification"]
    assert [r.labels for r in rated] == [{"correct": 0.0}, {"correct": 1.0}, {"correct": 0.0}, {"correct": 1.0}]
    assert [r.answer for r in rated] == ["5", "4", None, "4"]
    assert {r.group for r in rated} == {"gsm-0"} and rated[0].subset == "6b_finetuning"


def test_gsm8k_bad_solution_names_the_key(tmp_path):
    record = gsm8k_record(correct=(False, "yes", False, True))
    with pytest.raises(DataError, match=r"tiny.jsonl:1: field '6b_verification.is_correct': expected true or false"):
        load_ratings(write(tmp_path, [record]))
    record = gsm8k_record()
    del record["175b_finetuning"]
    with pytest.raises(DataError, match=r"field '175b_finetuning': missing"):
        load_ratings(write(tmp_path, [record]), format="gsm8k_solutions")


def bon_record(**fields):
    return {"idx": 7, "question": "1+1?", "code": ["so \\boxed{\\frac{4}{2}}.", "It is \\boxed{3}"],
            "score": [True, False], **fields}


def test_bon_math_takes_pred_else_the_last_boxed_answer(tmp_path):
    boxed = load_ratings(write(tmp_path, [bon_record()])).records
    assert [(r.id, r.labels, r.answer, r.group) for r in boxed] == [
        ("tiny-0-0", {"correct": 1.0}, "\\frac{4}{2}", "7"), ("tiny-0-1", {"correct": 0.0}, "3", "7")]
    predicted = load_ratings(write(tmp_path, [bon_record(pred=["2", None])])).records
    assert [r.answer for r in predicted] == ["2", "3"]


@pytest.mark.parametrize("fields, message", [
    ({"score": [True]}, r"field 'score': 1 items for 2 responses"),
    ({"score": [True, 1]}, r"field 'score\[1\]': expected true or false, got int"),
    ({"code": ["a", 3]}, r"field 'code\[1\]': expected a string, got int"),
    ({"pred": ["2"]}, r"field 'pred': 1 items for 2 responses"),
])
def test_bon_math_bad_records_name_the_field(tmp_path, fields, message):
    with pytest.raises(DataError, match=r"tiny.jsonl:1: " + message):
        load_ratings(write(tmp_path, [bon_record(**fields)]))


def test_generic_ratings_read_the_named_attributes(tmp_path):
    records = [{"prompt": "Q", "response": "A", "helpfulness": 3, "verbosity": None, "id": 9, "group": "q1"},
               {"messages": [user("Q")], "response": "B", "helpfulness": 4, "verbosity": 1, "answer": "B"}]
    first, second = load_ratings(write(tmp_path, records), attributes=["helpfulness", "verbosity"]).records
    assert first == RatedResponse("Q", "A", {"helpfulness": 3.0}, id="9", group="q1")
    assert second.labels == {"helpfulness": 4.0, "verbosity": 1.0} and second.response == [assistant("B")]
    assert second.answer == "B"
    assert load_ratings(write(tmp_path, records)).records[1].labels == {"helpfulness": 4.0, "verbosity": 1.0}


def test_generic_ratings_from_csv_cells(tmp_path):
    path = tmp_path / "rated.csv"
    path.write_text("prompt,response,helpfulness,coherence\nQ,A,3,\n", encoding="utf-8")
    (rated,) = load_ratings(path, attributes=["helpfulness", "coherence"]).records
    assert rated.labels == {"helpfulness": 3.0}
    with pytest.raises(DataError, match=r"rated.csv row 0: no numeric label field"):
        load_ratings(path)


@pytest.mark.parametrize("record, attributes, message", [
    ({"prompt": "Q", "response": "A", "helpfulness": "high"}, ["helpfulness"],
     r"field 'helpfulness': expected a number, got str"),
    ({"prompt": "Q", "response": "A", "helpfulness": None}, ["helpfulness"], r"no label among the attributes"),
    ({"prompt": "Q", "response": "A", "note": "x"}, None, r"no numeric label field"),
    ({"prompt": "Q", "response": [], "helpfulness": 1}, None, r"field 'response': expected one or more assistant"),
    (prometheus(), ["helpfulness"], r"no label among the attributes \['helpfulness'\]"),
])
def test_ratings_bad_records(tmp_path, record, attributes, message):
    with pytest.raises(DataError, match=r"tiny.jsonl:1: " + message):
        load_ratings(write(tmp_path, [record]), attributes=attributes)
    result = load_ratings(write(tmp_path, [record]), attributes=attributes, on_bad_record="skip")
    assert result.records == [] and len(result.skipped) == 1


def test_empty_responses_are_valid_in_rankings_and_ratings(tmp_path):
    ranking = load_rankings(write(tmp_path, [{"prompt": "", "responses": ["best", "", " "]}])).records[0]
    assert ranking.prompt == "" and ranking.responses == ["best", "", " "]
    blank_reply = TEMPLATE.replace(" Hello there! ", " ")
    assert load_ratings(write(tmp_path, [prometheus(instruction=blank_reply)])).records[0].response == ""
    solutions = load_ratings(write(tmp_path, [{**gsm8k_record(), "6b_finetuning": {"is_correct": False,
                                                                                    "solution": ""}}])).records
    assert (solutions[0].response, solutions[0].answer) == ("", None)
    assert [r.response for r in load_ratings(write(tmp_path, [bon_record(code=["", " "])])).records] == ["", " "]
    rated = load_ratings(write(tmp_path, [{"prompt": "Q", "response": [assistant("")], "helpfulness": 1}]))
    assert rated.records[0].response == [assistant("")]


def test_attributes_keep_only_the_named_labels_and_must_be_a_list(tmp_path):
    (rated,) = load_ratings(write(tmp_path, [prometheus()]), attributes=["score", "other"]).records
    assert rated.labels == {"score": pytest.approx(11 / 3)}
    with pytest.raises(ValueError, match="non-empty list"):
        load_ratings(write(tmp_path, [prometheus()]), attributes="score")


def test_subset_argument_overrides_every_record_type(tmp_path):
    assert {r.subset for r in load_ratings(write(tmp_path, [gsm8k_record()]), subset="gsm").records} == {"gsm"}
    steps = write(tmp_path, [{"prompt": "p", "steps": ["a"], "labels": [1]}])
    assert load_steps(steps, subset="s").records[0].subset == "s"


# ---------------------------------------------------------------------------------------------------- steps


def test_processbench_labels_the_first_error_and_every_later_step_wrong(tmp_path):
    records = [{"id": "gsm8k-0", "problem": "P", "steps": ["a", "b", "c", "d"], "label": 1},
               {"problem": "P", "steps": ["a", "b"], "label": -1}]
    wrong, right = load_steps(write(tmp_path, records)).records
    assert wrong == StepSolution("P", ["a", "b", "c", "d"], [1.0, 0.0, 0.0, 0.0], id="gsm8k-0", first_error=1)
    assert (right.labels, right.first_error, right.id) == ([1.0, 1.0], -1, "tiny-1")


@pytest.mark.parametrize("fields, message", [
    ({"label": 2}, r"field 'label': expected -1 or a step index below 2, got 2"),
    ({"label": -2}, r"field 'label': expected -1 or a step index below 2"),
    ({"label": True}, r"field 'label': expected -1 or a step index"),
    ({"steps": ["a", ""]}, r"field 'steps\[1\]': empty step"),
    ({"steps": []}, r"field 'steps': expected a non-empty list"),
    ({"steps": ["a", 2]}, r"field 'steps\[1\]': expected a string, got int"),
])
def test_processbench_bad_records_name_the_field(tmp_path, fields, message):
    record = {"problem": "P", "steps": ["a", "b"], "label": 0, **fields}
    with pytest.raises(DataError, match=r"tiny.jsonl:1: " + message):
        load_steps(write(tmp_path, [record]))


@pytest.mark.parametrize("labels, expected, first_error", [
    ([1, True, 0.9], [1.0, 1.0, 0.9], -1),
    ([1, 0.2, None], [1.0, 0.2, None], 1),
    ([1, None, 0], [1.0, None, 0.0], None),
    ([False, None, 1], [0.0, None, 1.0], 0),
    ([1, 1, None], [1.0, 1.0, None], None),
])
def test_generic_steps_labels_and_first_error(tmp_path, labels, expected, first_error):
    (solution,) = load_steps(write(tmp_path, [{"messages": [user("P")], "steps": ["a", "b", "c"],
                                               "labels": labels}])).records
    assert (solution.labels, solution.first_error, solution.prompt) == (expected, first_error, [user("P")])


@pytest.mark.parametrize("labels, message", [
    ([1, 0], r"field 'labels': 2 items for 3 steps"),
    ([1, 1.5, 0], r"field 'labels\[1\]': expected true, false, null or a number in \[0, 1\], got 1.5"),
    ([1, "yes", 0], r"field 'labels\[1\]': expected true, false, null"),
])
def test_generic_steps_bad_labels_name_the_field(tmp_path, labels, message):
    with pytest.raises(DataError, match=r"tiny.jsonl:1: " + message):
        load_steps(write(tmp_path, [{"prompt": "P", "steps": ["a", "b", "c"], "labels": labels}]))


def test_split_by_prompt_keeps_a_group_on_one_side(tmp_path):
    rated = load_ratings(write(tmp_path, [gsm8k_record() for _ in range(40)])).records
    train, held_out = split_by_prompt(rated, 0.25, seed=1)
    assert not {r.group for r in train} & {r.group for r in held_out}
    assert len(held_out) % 4 == 0 and 32 <= len(held_out) <= 44  # whole questions of 4 solutions
    assert (train, held_out) == split_by_prompt(rated, 0.25, seed=1)


# ------------------------------------------------------------------------------------------ real upstream files


@needs_real_data
def test_real_prometheus_ratings():
    result = load_ratings(SHARED_DATA / "prometheus-mtbench-gpt4-scores.json")
    rated = result.records
    assert len(rated) == 320 and not result.skipped
    assert {r.subset for r in rated} == {"writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem",
                                         "humanities"}
    assert len({r.group for r in rated}) == 80 and all(1 <= r.labels["score"] <= 5 for r in rated)
    assert all(r.prompt.startswith("Here is a previous dialogue") and "###" not in r.response for r in rated)


@needs_real_data
def test_real_gsm8k_solutions():
    rated = load_ratings(SHARED_DATA / "gsm8k-example-model-solutions.jsonl").records
    assert len(rated) == 1319 * 4 and len({r.group for r in rated}) == 1319
    assert sum(r.labels["correct"] for r in rated) == 2001
    assert sum(r.labels["correct"] for r in rated if r.subset == "175b_verification") == 742
    assert sum(r.answer is None for r in rated) == 11


@needs_real_data
def test_real_bon_math():
    rated = load_ratings(SHARED_DATA / "qwen25math-bon-math-cot-100.jsonl").records
    assert len(rated) == 800 and len({r.group for r in rated}) == 100
    assert sum(r.labels["correct"] for r in rated) == 728 and all(r.answer is not None for r in rated)


@needs_real_data
def test_real_processbench_steps():
    solutions = load_steps(SHARED_DATA / "processbench-gsm8k.json").records
    assert len(solutions) == 400 and sum(s.first_error != -1 for s in solutions) == 207
    assert sum(len(s.steps) for s in solutions) == 2082
    assert sum(label == 0.0 for s in solutions for label in s.labels) == 721
    assert all(s.labels[s.first_error] == 0.0 for s in solutions if s.first_error >= 0)


@needs_real_data
def test_real_rankings_from_ranked_and_pair_files():
    oasst = load_rankings(SHARED_DATA / "oasst-rm-zh.json").records
    assert len(oasst) == 775 and max(len(r.responses) for r in oasst) == 10
    panda = load_rankings(SHARED_DATA / "pandalm-testset-v1.json", on_bad_record="skip")
    assert len(panda.records) == 888 and panda.notes["ties_dropped"] == 105 and len(panda.skipped) == 6
    assert all(prompt_key(r.prompt) for r in panda.records)
