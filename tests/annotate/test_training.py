"""The export trains as it is: tie pairs with a tie-aware loss, votes weighting pairs by their agreement."""

from __future__ import annotations

import json

from annotate.helpers import pair_records, write_jsonl
from rewardkit.annotate.rounds import add_items_from, export_answers
from rewardkit.annotate.store import AnnotationStore
from rewardkit.config import load_config
from rewardkit.data.preferences import load_preferences
from rewardkit.training.launch import train


def test_an_exported_round_trains_with_rao_kupper_and_agreement_weights(llama_dir, tmp_path):
    store = AnnotationStore(tmp_path / "round.sqlite")
    add_items_from(store, write_jsonl(tmp_path / "pairs.jsonl", pair_records(24)))
    for name in ("ana", "bo", "cy"):
        store.add_annotator(name)
        while (assigned := store.current(name, 3)) is not None:
            k = int(assigned.item.id[1:])
            good = "a" if assigned.left.startswith("good") else "b"
            bad = "b" if good == "a" else "a"
            choice = "tie" if k % 6 == 0 else (bad if (name == "cy" and k % 4 == 1) else good)
            store.answer(name, assigned.item.id, choice, strength=None if choice == "tie" else 1 + k % 3)
    out = tmp_path / "export.jsonl"
    notes = export_answers(store, out)
    assert notes == {"exported": 20, "ties": 4}
    pairs = load_preferences(out, ties="keep", weight_by_agreement=True).pairs
    assert sorted({round(p.weight, 3) for p in pairs}) == [0.667, 1.0]  # cy disagreed on 6 items
    config = load_config(None, [], base={
        "model": {"backbone": str(llama_dir), "max_length": 64},
        "task": {"loss": "rao_kupper"},
        "data": {"train": [{"path": str(out), "ties": "keep", "weight_by_agreement": True}], "eval_fraction": 0.25},
        "optim": {"lr": 3e-3, "warmup_ratio": 0.0},
        "train": {"batch_size": 8, "epochs": 1, "log_every": 1, "seed": 0},
    })
    train(config, tmp_path / "run", show_progress=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["train_records"] + summary["eval_records"] == 24
    assert summary["ties"]["train"] + summary["ties"]["eval"] == 4 and summary["ties"]["not_trained"] == 0
