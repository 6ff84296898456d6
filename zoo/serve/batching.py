"""Dynamic batching: concurrent requests' images go through the model together.

Each request decodes its images in a thread pool (PIL releases the GIL), then hands them to the
batcher, which waits up to ``max_wait_ms`` for more and runs at most ``max_batch`` images in one
call on a worker thread (so the event loop keeps accepting requests). A batch's answer for an image
is the one a batch of one gives (tested): the runtime computes each image on its own.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Job:
    inputs: list[Any]
    top_k: int
    done: asyncio.Future = field(default=None)  # type: ignore[assignment]


class Batcher:
    def __init__(self, predictor, max_batch: int, max_wait_ms: float, metrics=None) -> None:
        self.predictor, self.max_batch, self.max_wait = predictor, max_batch, max_wait_ms / 1000
        self.metrics = metrics
        self.queue: asyncio.Queue[_Job] | None = None
        self.task: asyncio.Task | None = None

    @property
    def depth(self) -> int:
        return sum(len(job.inputs) for job in self.queue._queue) if self.queue is not None else 0  # noqa: SLF001

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self.task is not None:
            await self.queue.join()
            self.task.cancel()

    async def submit(self, inputs: list[Any], top_k: int) -> list[dict[str, Any]]:
        job = _Job(inputs, top_k, asyncio.get_running_loop().create_future())
        await self.queue.put(job)
        return await job.done

    async def _run(self) -> None:
        while True:
            jobs = [await self.queue.get()]
            size = len(jobs[0].inputs)
            deadline = time.monotonic() + self.max_wait
            while size < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                jobs.append(job)
                size += len(job.inputs)
            await self._answer(jobs)
            for _ in jobs:
                self.queue.task_done()

    async def _answer(self, jobs: list[_Job]) -> None:
        inputs = [x for job in jobs for x in job.inputs]
        k = max(job.top_k for job in jobs)
        try:
            answers = []
            for start in range(0, len(inputs), self.max_batch):  # one request may bring more than a batch
                chunk = inputs[start:start + self.max_batch]
                if self.metrics is not None:
                    self.metrics.batch_size.observe(len(chunk))
                answers += await asyncio.to_thread(self.predictor.answers, chunk, k)
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the error, the server goes on
            for job in jobs:
                if not job.done.done():
                    job.done.set_exception(exc)
            return
        for job in jobs:
            mine, answers = answers[:len(job.inputs)], answers[len(job.inputs):]
            if not job.done.done():
                job.done.set_result([{**answer, "top": answer["top"][:job.top_k]} for answer in mine])
