"""Batch scoring on a Ray cluster: Ray Data actors, each holding the model once, over `map_batches`.

    rewardkit score --model DIR --input in.jsonl --output out.parquet --ray --num-workers 8
    rewardkit score ... --ray --ray-address auto --num-workers 16 --gpus-per-worker 1   # a running cluster

The driver reads the input through rewardkit's one reader (`read_records`: JSONL, JSON, Parquet, CSV or a hub
dataset name), so the records and the locations in error messages are those of `score_file`. They travel as a Ray
dataset of (row, location, record as JSON text); each `BatchScorer` actor loads the scorer once with `load_scorer`
and scores its batches through `score_records`; the driver writes the records in input order, JSON lines or
Parquet by the output's extension, atomically. Without --ray-address a local Ray instance is started (and stopped);
the model directory must be readable at the same path on every node. Ray is imported only here, only for --ray.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from rewardkit.data.sources import read_records
from rewardkit.errors import ConfigError, DataError, ModelError, RewardkitError
from rewardkit.io import STDOUT, UMASK, check_output_file, json_line, write_jsonl
from rewardkit.models.reward_model import SCORING_BATCH_SIZE
from rewardkit.models.spec import LongResponses, require_at_least
from rewardkit.scoring.files import ready_to_score, score_records
from rewardkit.scoring.loading import load_scorer

ROWS_PER_CALL = 256  # records per actor call: each call still scores them `batch_size` rows per forward
OUTPUT_FORMATS = (".jsonl", ".parquet")
SCORING_OPTIONS = ("batch_size", "normalize", "attribute_weights", "length_penalty")  # score_records' keywords


class BatchScorer:
    """A Ray Data actor: the scorer loaded once, then batches of rows (row, location, record JSON) scored into
    (row, line, error): `line` the output record as one JSON line. A rewardkit error (a bad record, an option the
    model cannot honour, an unusable model) comes back as `error` ("DataError: in.jsonl:7: ..."), as Ray would
    otherwise bury it in a traceback."""

    def __init__(self, model_dir: str, *, on_gpu: bool, load: dict, options: dict) -> None:
        """`load`: `load_scorer`'s keywords; `options`: `ready_to_score`'s."""
        self.scoring = {name: options[name] for name in SCORING_OPTIONS}
        self.failed: RewardkitError | None = None
        try:
            # on a GPU actor, Ray made the actor's GPU the only visible one
            scorer = load_scorer(model_dir, device="cuda" if on_gpu else "cpu", **load)
            self.scorer = ready_to_score(scorer, **options)
        except RewardkitError as err:
            self.failed = err

    def __call__(self, batch: dict) -> dict:
        rows = len(batch["row"])
        try:
            if self.failed is not None:
                raise self.failed
            records = [(str(location), json.loads(text)) for location, text in
                       zip(batch["location"], batch["record"], strict=True)]
            scored = score_records(self.scorer, records, **self.scoring)
            lines, errors = [json_line(record) for record in scored], [""] * rows
        except RewardkitError as err:
            lines, errors = [""] * rows, [f"{type(err).__name__}: {err}"] * rows
        return {"row": batch["row"], "line": lines, "error": errors}


def score_with_ray(model_dir: str | Path, input: str | Path, output: str | Path, *, num_workers: int = 1,
                   address: str | None = None, gpus_per_worker: float = 0.0, precision: str = "auto",
                   ensemble_mode: str | None = None, std_weight: float | None = None,
                   batch_size: int = SCORING_BATCH_SIZE, normalize: bool = False,
                   attribute_weights: dict[str, float] | None = None, max_length: int | None = None,
                   long_pairs: LongResponses = "drop", length_penalty: float | None = None) -> int:
    """Score every record of `input` into `output` as `score_file` does, on `num_workers` Ray actors (each with
    `gpus_per_worker` GPUs), on the cluster at `address` or a local instance; returns the number of records."""
    require_at_least("num_workers", num_workers, 1)
    require_at_least("batch_size", batch_size, 1)
    check_output(output)
    constructor = {"model_dir": str(Path(model_dir).absolute()), "on_gpu": gpus_per_worker > 0,
                   "load": {"precision": precision, "ensemble_mode": ensemble_mode, "std_weight": std_weight},
                   "options": {"batch_size": batch_size, "normalize": normalize,
                               "attribute_weights": attribute_weights, "max_length": max_length,
                               "long_pairs": long_pairs, "length_penalty": length_penalty}}
    records = list(read_records(input))
    if not records:
        raise DataError(f"{input}: no records to score")
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        lines = scored_lines(ray, records, BatchScorer, num_workers=num_workers, gpus_per_worker=gpus_per_worker,
                             constructor=constructor)
    finally:
        if started_here:
            ray.shutdown()
    write_scored(output, lines)
    return len(records)


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the submodule, with pandas and pyarrow)
    except ImportError:
        raise ConfigError("--ray needs Ray Data: pip install 'rewardkit[ray]'") from None
    return ray


def check_output(output: str | Path) -> None:
    """JSON lines (a .jsonl file or "-") or Parquet, in a folder that can be written."""
    if str(output) == STDOUT:
        return
    if Path(output).suffix.lower() not in OUTPUT_FORMATS:
        raise ConfigError(f"output {output}: expected a {' or '.join(OUTPUT_FORMATS)} file, or - for stdout")
    check_output_file(output)


def scored_lines(ray, records: list[tuple[str, dict]], actor: type, *, num_workers: int, gpus_per_worker: float,
                 constructor: dict) -> list[str]:
    """The output line of every record, in input order, from `num_workers` `actor`s over `map_batches`; the first
    error an actor reports (in input order) is raised here."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = True  # batches come back in input order: the first error is first
    rows = ray.data.from_items([{"row": row, "location": location, "record": json_line(record)}
                                for row, (location, record) in enumerate(records)])
    scored = rows.map_batches(actor, fn_constructor_kwargs=constructor, batch_size=ROWS_PER_CALL,
                              batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=num_workers),
                              num_gpus=gpus_per_worker or None)
    by_row = {}
    for batch in scored.iter_batches(batch_format="numpy", batch_size=None):
        failed = next((str(error) for error in batch["error"] if error), None)
        if failed is not None:
            raise rewardkit_error(failed)
        by_row.update((int(row), str(line)) for row, line in zip(batch["row"], batch["line"], strict=True))
    assert sorted(by_row) == list(range(len(records))), "every record scored exactly once"
    return [by_row[row] for row in range(len(records))]


ERRORS = {kind.__name__: kind for kind in (ConfigError, DataError, ModelError)}


def rewardkit_error(reported: str) -> RewardkitError:
    """The error an actor reported as "DataError: message"."""
    name, _, message = reported.partition(": ")
    return ERRORS.get(name, RewardkitError)(message)


def write_scored(output: str | Path, lines: list[str]) -> None:
    """The scored records to `output`: JSON lines, or a Parquet file (its columns the records' fields)."""
    if str(output) == STDOUT or Path(output).suffix.lower() == ".jsonl":
        write_jsonl(output, map(json.loads, lines))
    else:
        write_parquet_atomic(Path(output), [json.loads(line) for line in lines])


def write_parquet_atomic(path: Path, records: list[dict]) -> None:
    """`records` as one Parquet table, a column per field any record has (null where a record lacks it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = dict.fromkeys(key for record in records for key in record)  # every record's fields, first seen first
    try:
        table = pa.Table.from_pydict({column: [record.get(column) for record in records] for column in columns})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise DataError(f"output {path}: the records' fields do not fit one Parquet schema ({err}); write a .jsonl "
                        "file instead") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~UMASK)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

