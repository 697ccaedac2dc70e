"""Batch scoring in shards, by several processes (torchrun / accelerate launch) or one, resumable by shard.

    torchrun --nproc_per_node 8 -m rewardkit.cli score --model DIR --input in.jsonl --output out.jsonl
    accelerate launch --multi_gpu --num_processes 8 -m rewardkit.cli score ...   # --multi_gpu: also on CPU
    rewardkit score ... --shard-size 1000                                          # one process, resumable

The input's records are cut into shards of `shard_size` records (finer than processes: the plan does not depend on
the world size). Each process scores its share of the shards through `rewardkit.scoring.files.score_records` and
writes each one atomically to OUT.shards/shard-00003-of-00016.jsonl; OUT.shards/manifest.json holds the plan and
what the shards were scored from (the input's size and SHA-256, the model directory's file sizes and times, the
options). Rank 0 then merges the shards in input order into OUT atomically and removes OUT.shards. The output is
byte for byte that of one process with the same shard size and threads per process (torchrun runs one); rewards
differ from `score_file`'s only by the float noise of other batches (about 1e-6). Any input but stdin will do.

A run killed part-way (a process SIGKILLed, a node lost) leaves its finished shards: the same command again, with
any number of processes, scores only the missing ones. A rerun whose input, model or options differ from the
manifest's is refused. The processes talk over gloo (small messages only, on CPU and GPU alike); each scores on
its own GPU (cuda:LOCAL_RANK) where there is one. The shard folder must be on a filesystem every process sees.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from rewardkit.data.sources import STDIN, read_records
from rewardkit.errors import ConfigError, DataError
from rewardkit.io import STDOUT, check_output_file, json_line, write_json_atomic, write_text_atomic
from rewardkit.models.ensemble import RewardEnsemble
from rewardkit.models.reward_model import SCORING_BATCH_SIZE, RewardModel
from rewardkit.models.spec import LongResponses, require_at_least
from rewardkit.scoring.files import ready_to_score, score_records

SHARD_SIZE = 1000  # records per shard: a killed process loses the work of the one shard it was scoring
# a process that finishes its shards waits at a barrier for the slowest; a dead peer is torchrun's to stop
GROUP_TIMEOUT = timedelta(hours=6)
MANIFEST = "manifest.json"
CHECKED = ("input_fingerprint", "model_fingerprint", "options", "records", "shard_size")  # must match to resume


@dataclass(frozen=True)
class Launch:
    """This process's place in a torchrun / accelerate launch."""

    rank: int
    world_size: int
    local_rank: int


def launch_from_env(environ: Mapping[str, str] = os.environ) -> Launch | None:
    """The launch this process belongs to (WORLD_SIZE above one), or None when it runs alone. A launch whose
    rendezvous variables are missing is a ConfigError: never N processes each scoring everything."""
    world_size = env_int(environ, "WORLD_SIZE", default=1)
    if world_size <= 1:
        return None
    missing = [name for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if not environ.get(name)]
    if missing:
        raise ConfigError(f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: start the processes with "
                          "torchrun or accelerate launch, or unset WORLD_SIZE to score in one process")
    launch = Launch(env_int(environ, "RANK"), world_size, env_int(environ, "LOCAL_RANK"))
    if not 0 <= launch.rank < world_size:
        raise ConfigError(f"RANK={launch.rank} is outside WORLD_SIZE={world_size}")
    return launch


def env_int(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    value = environ.get(name)
    if value is None and default is not None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"environment variable {name}={value!r}: expected an integer") from None


@contextmanager
def process_group(launch: Launch | None) -> Iterator[None]:
    """The gloo process group of `launch` (nothing for a single process), torn down on the way out."""
    if launch is None:
        yield
        return
    try:
        dist.init_process_group("gloo", rank=launch.rank, world_size=launch.world_size, timeout=GROUP_TIMEOUT)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"WORLD_SIZE={launch.world_size}: cannot join the process group ({err}); start the "
                          "processes with torchrun or accelerate launch") from None
    try:
        yield
    finally:
        dist.destroy_process_group()


@dataclass(frozen=True)
class ShardPlan:
    """`records` records cut into shards of `shard_size` (the last one shorter)."""

    records: int
    shard_size: int

    @property
    def shards(self) -> int:
        return math.ceil(self.records / self.shard_size)

    def rows(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.records))

    def name(self, shard: int) -> str:
        return f"shard-{shard:05d}-of-{self.shards:05d}.jsonl"


@dataclass(frozen=True)
class ShardedRun:
    """What a sharded run scored: `records` in `shards`, `resumed` of them found done by an earlier run."""

    records: int
    shards: int
    resumed: int


def shard_folder(output: str | Path) -> Path:
    """The work folder beside `output`: OUT.shards."""
    output = Path(output)
    return output.with_name(output.name + ".shards")


def score_file_sharded(model: RewardModel | RewardEnsemble, model_dir: str | Path, input: str | Path,
                       output: str | Path, *, launch: Launch | None = None, shard_size: int = SHARD_SIZE,
                       batch_size: int = SCORING_BATCH_SIZE, normalize: bool = False,
                       attribute_weights: dict[str, float] | None = None, max_length: int | None = None,
                       long_pairs: LongResponses = "drop", length_penalty: float | None = None) -> ShardedRun:
    """Score `input` into `output` as `score_file` does, shard by shard: this process's share of the shards when
    `launch` says it is one of several. Every process of the launch calls it; rank 0 plans, checks the manifest and
    merges. `model_dir` is where `model` was loaded from (its files are fingerprinted)."""
    refuse_unshardable(input, output)
    require_at_least("shard_size", shard_size, 1)
    model = ready_to_score(model, batch_size=batch_size, normalize=normalize, attribute_weights=attribute_weights,
                           max_length=max_length, long_pairs=long_pairs, length_penalty=length_penalty)
    options = {"normalize": normalize, "attribute_weights": attribute_weights, "max_length": max_length,
               "long_pairs": long_pairs, "length_penalty": length_penalty, "precision": model.precision,
               **ensemble_options(model)}
    rank, world_size = (0, 1) if launch is None else (launch.rank, launch.world_size)
    place_on_device(model, launch)
    folder = shard_folder(output)
    with process_group(launch):
        plan = agree_on_plan(launch, folder, lambda: write_or_check_manifest(folder, input, model_dir, options,
                                                                             shard_size))
        if rank == 0 and plan.shards < world_size:
            warnings.warn(f"{plan.records} records make {plan.shards} shards of {plan.shard_size} for {world_size} "
                          "processes: some have nothing to score (a smaller --shard-size would use them all)",
                          stacklevel=2)
        pending = [shard for shard in range(plan.shards) if not (folder / plan.name(shard)).exists()]
        barrier(launch)  # every process has listed the pending shards before any is written
        mine = pending[rank::world_size]
        for shard, records in shard_records(input, plan, mine):
            scored = score_records(model, records, batch_size=batch_size, normalize=normalize,
                                   attribute_weights=attribute_weights, length_penalty=length_penalty)
            write_text_atomic(folder / plan.name(shard), "".join(map(json_line, scored)))
        barrier(launch)  # every shard is written
    if rank == 0:
        merge_shards(folder, plan, output)
    return ShardedRun(plan.records, plan.shards, plan.shards - len(pending))


def refuse_unshardable(input: str | Path, output: str | Path) -> None:
    """Shards resume from files: stdin and stdout cannot be read again or written in parts."""
    if str(input) in STDIN:
        raise ConfigError("sharded scoring reads its input once per process: give a file (or a hub dataset), not "
                          "stdin")
    if str(output) == STDOUT:
        raise ConfigError("sharded scoring writes its shards beside the output: give an output file, not stdout")
    check_output_file(output)


def ensemble_options(model: RewardModel | RewardEnsemble) -> dict:
    """How an ensemble combines its members (part of what its rewards depend on)."""
    if isinstance(model, RewardEnsemble):
        return {"ensemble_mode": model.mode, "std_weight": model.std_weight}
    return {}


def launch_device(launch: Launch | None) -> torch.device | None:
    """This process's own GPU (cuda:LOCAL_RANK) in a launch on a machine with GPUs; None otherwise."""
    if launch is None or not torch.cuda.is_available():
        return None
    return torch.device("cuda", launch.local_rank % torch.cuda.device_count())


def place_on_device(model: RewardModel | RewardEnsemble, launch: Launch | None) -> None:
    """Each process of a launch on its own GPU where there are GPUs; otherwise where it is."""
    device = launch_device(launch)
    if device is None:
        return
    for member in model.members if isinstance(model, RewardEnsemble) else [model]:
        member.to(device)


def barrier(launch: Launch | None) -> None:
    if launch is not None:
        dist.barrier()


def agree_on_plan(launch: Launch | None, folder: Path, make_plan: Callable[[], ShardPlan]) -> ShardPlan:
    """Rank 0 makes the plan (`make_plan()`, which may raise) and tells the others whether it did: they read it
    from the manifest it wrote, or stop (rather than wait at the next barrier for a rank 0 that has given up)."""
    if launch is None:
        return make_plan()
    if launch.rank != 0:
        planned = torch.tensor([0])
        dist.broadcast(planned, src=0)
        if not planned.item():
            raise ConfigError(f"rank {launch.rank}: stopped, as rank 0 could not plan the shards (its error says "
                              "why)")
        return read_plan(folder)
    try:
        plan = make_plan()
    except Exception:
        dist.broadcast(torch.tensor([0]), src=0)
        raise
    dist.broadcast(torch.tensor([1]), src=0)
    return plan


def read_plan(folder: Path) -> ShardPlan:
    manifest = read_manifest(folder)
    if manifest is None:
        raise ConfigError(f"{folder / MANIFEST}: not found, though rank 0 wrote it: sharded scoring needs the "
                          "output folder on a filesystem every process (every node) shares")
    return ShardPlan(manifest["records"], manifest["shard_size"])


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: unreadable ({err}); delete {folder} to score from the start") from None


def write_or_check_manifest(folder: Path, input: str | Path, model_dir: str | Path, options: dict,
                            shard_size: int) -> ShardPlan:
    """The plan for `input`, written to a new manifest, or the one of the manifest already there, which must be
    of the same input, model and options."""
    records = sum(1 for _ in read_records(input))  # every record decodes, or this names the first bad one
    if not records:
        raise DataError(f"{input}: no records to score")
    plan = ShardPlan(records, shard_size)
    manifest = {"input": str(input), "input_fingerprint": input_fingerprint(input), "model": str(model_dir),
                "model_fingerprint": model_fingerprint(model_dir), "options": options, "records": records,
                "shard_size": shard_size, "shards": plan.shards}
    found = read_manifest(folder)
    if found is None:
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / MANIFEST, manifest)
        return plan
    changed = [key.removesuffix("_fingerprint") for key in CHECKED if found.get(key) != manifest[key]]
    if "options" in changed:
        before = found.get("options") or {}
        changed[changed.index("options")] = "options: " + ", ".join(
            name for name in sorted(options.keys() | before.keys()) if before.get(name) != options.get(name))
    if changed:
        raise ConfigError(f"{folder} holds shards of another run ({', '.join(changed)} changed since): rerun the "
                          f"command that wrote them to finish it, or delete {folder} to score from the start")
    return plan


def input_fingerprint(source: str | Path) -> dict:
    """A file's size and SHA-256; a hub dataset's name."""
    path = Path(source)
    if not path.is_file():
        return {"dataset": str(source)}
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def model_fingerprint(directory: str | Path) -> str:
    """A hash of every file's path, size and modification time under `directory` (hashing the weights of a 70B
    model would take minutes; retraining or re-exporting rewrites them)."""
    directory = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(directory)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def shard_records(input: str | Path, plan: ShardPlan, shards: list[int]) -> Iterator[tuple[int, list]]:
    """(shard, its (location, record) pairs) for each of `shards`, in order, from one pass over `input` that keeps
    only their records."""
    wanted = set(shards)
    kept: dict[int, list] = {shard: [] for shard in shards}
    for row, record in enumerate(read_records(input)):
        if row // plan.shard_size in wanted:
            kept[row // plan.shard_size].append(record)
    for shard in shards:
        if len(kept[shard]) != len(plan.rows(shard)):
            raise DataError(f"{input}: changed while it was scored (shard {shard} should hold "
                            f"{len(plan.rows(shard))} records, found {len(kept[shard])})")
        yield shard, kept.pop(shard)


def merge_shards(folder: Path, plan: ShardPlan, output: str | Path) -> None:
    """Every shard, each checked whole, in input order into `output` atomically; then the shards go."""
    parts = []
    for shard in range(plan.shards):
        path = folder / plan.name(shard)
        if not path.exists():
            raise DataError(f"{path}: missing at the merge; rerun the same command to score it")
        text = path.read_text(encoding="utf-8")
        lines, expected = text.count("\n"), len(plan.rows(shard))  # a JSON line holds no raw newline
        if lines != expected:
            raise DataError(f"{path}: holds {lines} records, expected {expected}; delete it and rerun the same "
                            "command")
        parts.append(text)
    write_text_atomic(output, "".join(parts))
    shutil.rmtree(folder)
