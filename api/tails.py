"""One Redis reader per job and API process, shared by every event stream of that job.

Without it each SSE client holds its own blocking XREAD (a Redis connection and a read per
client per record): a thousand clients are a thousand connections. A `Tail` reads the job's
stream once and keeps the newest entries in memory; a client waits on the tail for the
entries that continue its cursor, and is told when the tail cannot continue it (the client
is behind what the tail holds, or the stream has a gap), so it reads Redis or Postgres
itself as before. The tail only ever hands out a run of entries that continues the cursor
without a gap, the same rule `core.stream.gapless` keeps.
"""

import asyncio
import bisect
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from sse_starlette import ServerSentEvent

from core.records import Sequenced
from core.stream import decode, metrics_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Live:
    """A record as streams send it: its `record` event, encoded once for every stream that
    sends it from the tail, and when its epoch ended (what the stream's lag is measured from)."""

    seq: int
    data: dict[str, Any]
    event: bytes
    ended: float | None

    @classmethod
    def of(cls, record: Sequenced) -> "Live":
        data = {"cursor": str(record.seq), **record.data}
        event = ServerSentEvent(data=json.dumps(data), event="record", id=str(record.seq))
        ended = None
        if isinstance(record.data.get("time"), str):
            with contextlib.suppress(ValueError):
                ended = datetime.fromisoformat(record.data["time"]).timestamp()
        return cls(seq=record.seq, data=record.data, event=event.encode(), ended=ended)


@dataclass(frozen=True)
class Waited:
    """What a wait gave: the records that continue the cursor (maybe none), and whether the
    tail holds records past the cursor that do not continue it (read them yourself)."""

    records: list[Live]
    behind: bool


class Tail:
    """The newest entries of one job's stream, read by one task while anyone watches."""

    def __init__(self, client: aioredis.Redis, job_id: uuid.UUID, *, start: int, keep: int):
        self.client = client
        self.job_id = job_id
        self.keep = keep
        self.last = start  # the id the next XREAD continues from
        self.seqs: list[int] = []
        self.records: list[Live] = []
        self.watchers = 0
        self.arrived = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def after(self, cursor: int) -> Waited:
        i = bisect.bisect_right(self.seqs, cursor)
        if i == len(self.seqs):
            return Waited([], behind=self.last > cursor)
        if self.seqs[i] != cursor + 1:
            return Waited([], behind=True)
        run = [self.records[i]]
        for j in range(i + 1, len(self.seqs)):
            if self.seqs[j] != run[-1].seq + 1:
                break
            run.append(self.records[j])
        return Waited(run, behind=False)

    def _add(self, entries: list[tuple[Any, Any]]) -> None:
        for entry_id, fields in entries:
            text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            seq = int(text.split("-", 1)[0])
            if seq <= self.last:
                continue
            try:
                data = decode(fields or {})
            except ValueError:
                continue
            self.seqs.append(seq)
            self.records.append(Live.of(Sequenced(seq=seq, data=data)))
            self.last = seq
        if len(self.seqs) > self.keep:
            del self.seqs[: -self.keep]
            del self.records[: -self.keep]
        arrived, self.arrived = self.arrived, asyncio.Event()
        arrived.set()

    async def run(self, block_ms: int, page: int) -> None:
        key = metrics_key(self.job_id)
        while self.watchers > 0:
            try:
                answer: Any = await self.client.xread(
                    {key: f"{self.last}-0"}, count=page, block=block_ms
                )
            except asyncio.CancelledError:
                raise
            except aioredis.RedisError as error:
                log.warning("metrics stream of job %s unreadable: %s", self.job_id, error)
                # Waiters time out and read Postgres; try Redis again at the pace of a wait.
                await asyncio.sleep(block_ms / 1000)
                continue
            entries = answer[0][1] if answer else []
            if entries:
                self._add(entries)


class Tails:
    """The tails of one API process, made on a stream's first watcher and stopped after its
    last leaves."""

    def __init__(self, client: aioredis.Redis, *, block_ms: int, keep: int, page: int) -> None:
        self.client = client
        self.block_ms = block_ms
        self.keep = keep
        self.page = page
        self._tails: dict[uuid.UUID, Tail] = {}

    def join(self, job_id: uuid.UUID, cursor: int) -> Tail:
        tail = self._tails.get(job_id)
        if tail is None or tail.task is None or tail.task.done():
            tail = Tail(self.client, job_id, start=cursor, keep=self.keep)
            self._tails[job_id] = tail
        tail.watchers += 1
        if tail.task is None:
            tail.task = asyncio.create_task(self._run(tail), name=f"tail {job_id}")
        return tail

    def leave(self, tail: Tail) -> None:
        tail.watchers -= 1
        if tail.watchers <= 0 and tail.task is not None:
            tail.task.cancel()
            if self._tails.get(tail.job_id) is tail:
                del self._tails[tail.job_id]

    async def _run(self, tail: Tail) -> None:
        try:
            while tail.watchers > 0:
                try:
                    await tail.run(self.block_ms, self.page)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("the tail of job %s failed; reading again", tail.job_id)
                    await asyncio.sleep(self.block_ms / 1000)
        except asyncio.CancelledError:
            pass
        finally:
            if self._tails.get(tail.job_id) is tail:
                del self._tails[tail.job_id]

    async def wait(self, tail: Tail, cursor: int, *, timeout_ms: int) -> Waited:
        """The records after cursor as soon as the tail has them, within the timeout."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            found = tail.after(cursor)
            if found.records or found.behind or tail.task is None or tail.task.done():
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                return found
            try:
                # (a timeout of the waiting task itself: wait_for made a task a wait)
                async with asyncio.timeout(left):
                    await tail.arrived.wait()
            except TimeoutError:
                return tail.after(cursor)

    async def close(self) -> None:
        tasks = [t.task for t in self._tails.values() if t.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tails.clear()
