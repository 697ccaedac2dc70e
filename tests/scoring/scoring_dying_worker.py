"""`python -m torch.distributed.run ... scoring_dying_worker.py RANK:K score ...`: `rewardkit score ...` in which
process RANK SIGKILLs itself (no cleanup, as the OOM killer or a lost node would) right after writing its K-th
shard; the other ranks run as usual. For the dying-worker test of test_scoring_distributed.py."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import rewardkit.scoring.distributed as distributed
from rewardkit.cli.app import app


def die_after(shards: int):
    """`write_text_atomic` that kills this process once it has written `shards` shards."""
    write, written = distributed.write_text_atomic, []

    def write_then_maybe_die(path, text: str) -> None:
        write(path, text)
        written.append(Path(path).name)
        if len(written) == shards:
            os.kill(os.getpid(), signal.SIGKILL)

    return write_then_maybe_die


if __name__ == "__main__":
    rank, shards = sys.argv[1].split(":")
    if os.environ.get("RANK", "0") == rank:
        distributed.write_text_atomic = die_after(int(shards))
    app(args=sys.argv[2:], prog_name="rewardkit")
