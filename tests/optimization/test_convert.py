"""Published best-of-N files as pools that `read_pool` accepts, their scores kept as fields."""

from __future__ import annotations

import json

from rewardkit.optimization.convert import convert
from rewardkit.sampling.pool import read_pool


def test_bon_math_and_gsm8k_solutions_become_pools(tmp_path):
    math_file = tmp_path / "math.jsonl"
    record = {"idx": 7, "question": "1+1?", "gt": "2", "code": ["so \\boxed{2}", "\\boxed{3}"],
              "pred_score": [[0.5], [0.25]], "score": [True, False], "pred": ["2", "3"]}
    math_file.write_text(json.dumps(record) + "\n")
    assert convert("bon-math", math_file, tmp_path / "math-pool.jsonl") == 2
    first, second = read_pool(tmp_path / "math-pool.jsonl")
    assert (first.prompt_id, first.sample_index, first.tokens, first.finish_reason) == ("7", 0, 2, "stop")
    assert second.extra == {"pred_score": 0.25, "correct": False, "answer": "3", "reference": "2"}

    solutions = {key: {"solution": f"x\nA: {i}", "is_correct": i == 2} for i, key in
                 enumerate(("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"))}
    gsm8k = tmp_path / "gsm8k.jsonl"
    gsm8k.write_text("".join(json.dumps({"question": f"q{k}", "ground_truth": "y\nA: 2", **solutions}) + "\n"
                             for k in range(3)))
    assert convert("gsm8k-solutions", gsm8k, tmp_path / "gsm8k-pool.jsonl", skip=2) == 4
    samples = read_pool(tmp_path / "gsm8k-pool.jsonl")
    assert {s.prompt_id for s in samples} == {"2"}
    assert [s.extra["correct"] for s in samples] == [False, False, True, False]
