"""Dynamic batching for the scoring service: pairs from concurrent requests share padded forward passes.

    batcher = Batcher("rm", rm, Metrics(), max_batch_tokens=16384, max_batch_size=256, max_wait_ms=5.0)
    batcher.start()                                 # inside the running event loop
    rewards = await batcher.submit(encoded_pairs)   # one reward per pair, in order
    await batcher.stop()                            # pairs still queued fail with BatcherClosed

Each model has one queue and one worker task. The worker takes the oldest queued pair and gathers the pairs that
join it until `max_batch_size` pairs, `max_batch_tokens` padded tokens (rows x longest row) or the first pair's
`max_wait_ms` deadline; a pair that would break the token budget opens the next batch. The batch runs as one
call of `RewardModel.score_encoded` (the offline scoring path: rows of similar length share a forward pass) on the
batcher's single forward thread.

The batcher knows no HTTP: a batcher that is not running raises `BatcherClosed`, and a failed forward pass fails
the requests in that batch with the model's own exception while the worker keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import EncodedPair
from rewardkit.serving.metrics import BATCH_BUCKETS, SECONDS_BUCKETS, Metrics

logger = logging.getLogger("rewardkit.serve.batching")


class BatcherClosed(RuntimeError):
    """The batcher is not running: not started, stopped, or its worker died."""


@dataclass
class Job:
    pair: EncodedPair
    future: asyncio.Future
    enqueued: float


class Batcher:
    """One model's queue and worker: pairs from concurrent requests share padded forward passes."""

    def __init__(self, name: str, rm: RewardModel, metrics: Metrics, *, max_batch_tokens: int, max_batch_size: int,
                 max_wait_ms: float) -> None:
        self.name, self.rm, self.metrics = name, rm, metrics
        self.max_batch_tokens, self.max_batch_size, self.max_wait_ms = max_batch_tokens, max_batch_size, max_wait_ms
        self.queue: asyncio.Queue[Job] | None = None
        self.held: Job | None = None  # the job that did not fit the last batch; it opens the next one
        self.worker: asyncio.Task | None = None
        self.forward_thread: ThreadPoolExecutor | None = None  # one thread, so torch keeps one intra-op pool

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self.forward_thread = ThreadPoolExecutor(1, thread_name_prefix=f"forward-{self.name}")
        self.worker = asyncio.create_task(self.run(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        """Cancel the worker; pairs still queued fail with BatcherClosed."""
        self.worker.cancel()
        await asyncio.gather(self.worker, return_exceptions=True)
        self.forward_thread.shutdown(wait=False, cancel_futures=True)
        pending = ([self.held] if self.held else []) + [self.queue.get_nowait() for _ in range(self.queue.qsize())]
        for job in pending:
            if not job.future.done():
                job.future.set_exception(BatcherClosed("the server is shutting down"))

    async def submit(self, pairs: Sequence[EncodedPair]) -> list[float]:
        if self.worker is None or self.worker.done():
            raise BatcherClosed("the server is not running its scoring workers")
        loop = asyncio.get_running_loop()
        jobs = [Job(pair, loop.create_future(), loop.time()) for pair in pairs]
        for job in jobs:
            self.queue.put_nowait(job)
        return list(await asyncio.gather(*(job.future for job in jobs)))

    async def run(self) -> None:
        while True:
            await self.run_batch(await self.next_batch())

    async def next_batch(self) -> list[Job]:
        """The oldest job plus whatever joins it before its deadline, within the token and size budgets."""
        loop = asyncio.get_running_loop()
        first = self.held or await self.queue.get()
        self.held = None
        batch, width = [first], len(first.pair.input_ids)
        deadline = first.enqueued + self.max_wait_ms / 1000
        while len(batch) < self.max_batch_size:
            try:
                job = self.queue.get_nowait() if self.queue.qsize() else await asyncio.wait_for(
                    self.queue.get(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                break
            wider = max(width, len(job.pair.input_ids))
            if wider * (len(batch) + 1) > self.max_batch_tokens:
                self.held = job
                break
            batch, width = batch + [job], wider
        return batch

    async def run_batch(self, batch: list[Job]) -> None:
        jobs = [job for job in batch if not job.future.done()]  # a cancelled request drops its pairs
        if not jobs:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            rewards = await loop.run_in_executor(self.forward_thread, self.forward, [job.pair for job in jobs])
            results = list(zip(jobs, rewards, strict=True))  # a wrong count fails this batch, not the worker
        except Exception as err:  # the requests get the error; the worker keeps serving
            logger.exception("forward pass failed for model %s", self.name)
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        for job, reward in results:
            if not job.future.done():
                job.future.set_result(reward)
        self.record(jobs, started)

    def forward(self, pairs: list[EncodedPair]) -> list[float]:
        """The whole batch in the forward thread (torch releases the GIL), through the offline scoring path.

        `batch_size=len(pairs)`: the token budget already bounds the batch; `score_encoded` still splits rows of
        very different lengths into passes of their own (`length_chunks`), since padding a short pair to a long
        one costs more than a second pass.
        """
        return self.rm.score_encoded(pairs, batch_size=len(pairs))

    def record(self, jobs: list[Job], started: float) -> None:
        now = asyncio.get_running_loop().time()
        self.metrics.observe("rewardkit_batch_size", len(jobs), BATCH_BUCKETS, model=self.name)
        self.metrics.inc("rewardkit_tokens_total", sum(len(j.pair.input_ids) for j in jobs), model=self.name)
        self.metrics.inc("rewardkit_forward_seconds_total", now - started, model=self.name)
        for job in jobs:
            self.metrics.observe("rewardkit_queue_seconds", started - job.enqueued, SECONDS_BUCKETS, model=self.name)
