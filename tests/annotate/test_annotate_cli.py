"""`rewardkit annotate add-user | stats | export | import` through the CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from annotate.helpers import pair_records, write_jsonl
from conftest import assert_refused
from rewardkit.annotate.rounds import add_items_from
from rewardkit.annotate.store import AnnotationStore
from rewardkit.cli.app import app
from rewardkit.data.preferences import load_preferences

runner = CliRunner()


def answered_round(tmp_path) -> AnnotationStore:
    """Two annotators over four items (overlap 2): both pick the good answer on three, disagree on one."""
    store = AnnotationStore(tmp_path / "round.sqlite")
    add_items_from(store, write_jsonl(tmp_path / "pairs.jsonl", pair_records(4)))
    for name in ("ana", "bo"):
        assert runner.invoke(app, ["annotate", "add-user", "--db", str(store.path), "--name", name]).exit_code == 0
        while (assigned := store.current(name, 2)) is not None:
            good = "a" if assigned.left.startswith("good") else "b"
            bad = "b" if good == "a" else "a"
            store.answer(name, assigned.item.id, bad if (name, assigned.item.id) == ("bo", "p3") else good)
    return store


def test_add_user_prints_a_token_that_logs_in(tmp_path):
    db = tmp_path / "round.sqlite"
    result = runner.invoke(app, ["annotate", "add-user", "--db", str(db), "--name", "ana"])
    assert result.exit_code == 0, result.output
    assert AnnotationStore(db).annotator_for_token(result.stdout.strip()) == "ana"
    again = runner.invoke(app, ["annotate", "add-user", "--db", str(db), "--name", "ana"])
    assert_refused(again, "annotator 'ana' already exists")


def test_stats_prints_and_writes_agreement(tmp_path):
    store = answered_round(tmp_path)
    result = runner.invoke(app, ["annotate", "stats", "--db", str(store.path), "--output", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "Cohen's kappa ana / bo" in result.stdout and "Krippendorff" in result.stdout
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["pairs"][0]["items"] == 4 and report["pairs"][0]["agreement"] == 0.75
    assert report["annotators"]["ana"]["answered"] == 4


def test_export_writes_trainable_pairs(tmp_path):
    store = answered_round(tmp_path)
    out = tmp_path / "pairs.out.jsonl"
    result = runner.invoke(app, ["annotate", "export", "--db", str(store.path), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported 3" in result.stdout and "no_majority 1" in result.stdout
    pairs = load_preferences(out, ties="keep").pairs
    assert [p.id for p in pairs] == ["p0", "p1", "p2"] and all(p.chosen.startswith("good") for p in pairs)


def test_import_adds_label_studio_tasks(tmp_path):
    tasks = [{"id": k, "data": {"prompt": f"Q{k}?", "answer1": "x", "answer2": "y"}} for k in range(3)]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    db = tmp_path / "round.sqlite"
    result = runner.invoke(app, ["annotate", "import", "--db", str(db), "--input", str(tmp_path / "ls.json")])
    assert result.exit_code == 0, result.output
    assert [i.id for i in AnnotationStore(db).items()] == ["0", "1", "2"]


def test_stats_and_export_refuse_a_missing_database(tmp_path):
    missing = tmp_path / "none.sqlite"
    assert_refused(runner.invoke(app, ["annotate", "stats", "--db", str(missing)]), "no such database",
                   not_written=(missing,))
    assert_refused(runner.invoke(app, ["annotate", "export", "--db", str(missing), "--output",
                                       str(tmp_path / "o.jsonl")]), "no such database",
                   not_written=(missing, tmp_path / "o.jsonl"))


def test_serve_refuses_what_it_cannot_serve_before_listening(tmp_path):
    db = tmp_path / "round.sqlite"
    missing = runner.invoke(app, ["annotate", "serve", "--db", str(db), "--data", str(tmp_path / "none.jsonl")])
    assert_refused(missing, "none.jsonl", "no such file")
    assert_refused(runner.invoke(app, ["annotate", "serve", "--db", str(db)]), "holds no items", "--data")
    data = write_jsonl(tmp_path / "pairs.jsonl", pair_records(2))
    no_guide = runner.invoke(app, ["annotate", "serve", "--db", str(db), "--data", str(data), "--guidelines",
                                   str(tmp_path / "guide.md")])
    assert_refused(no_guide, "--guidelines", "guide.md")
