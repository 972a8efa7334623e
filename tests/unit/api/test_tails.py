"""A tail hands out only runs of entries that continue the cursor without a gap."""

import asyncio
import uuid

from api.tails import Tail, Tails
from core.stream import encode


def entries(*seqs: int) -> list[tuple[bytes, dict[str, str]]]:
    return [(f"{s}-0".encode(), encode({"epoch": s})) for s in seqs]


def tail_at(start: int, keep: int = 100) -> Tail:
    return Tail(None, uuid.uuid4(), start=start, keep=keep)  # type: ignore[arg-type]


def test_the_run_that_continues_the_cursor_and_no_further_than_a_gap() -> None:
    async def check() -> None:
        tail = tail_at(2)
        tail._add(entries(3, 4, 5, 7, 8))
        assert [r.seq for r in tail.after(2).records] == [3, 4, 5]
        assert [r.seq for r in tail.after(4).records] == [5]
        gap = tail.after(5)  # 6 never reached Redis: read it elsewhere
        assert gap.records == [] and gap.behind
        assert [r.data for r in tail.after(6).records] == [{"epoch": 7}, {"epoch": 8}]
        caught_up = tail.after(8)
        assert caught_up.records == [] and not caught_up.behind
        older = tail.after(1)  # from before the tail began
        assert older.records == [] and older.behind

    asyncio.run(check())


def test_entries_it_has_are_not_taken_twice_and_only_the_newest_are_kept() -> None:
    async def check() -> None:
        tail = tail_at(0, keep=3)
        tail._add(entries(1, 2))
        tail._add(entries(2, 3, 4, 5))
        assert tail.seqs == [3, 4, 5]
        assert tail.after(1).behind  # 2 has been let go

    asyncio.run(check())


def test_a_waiter_wakes_when_entries_arrive_and_times_out_without() -> None:
    async def check() -> None:
        tails = Tails(None, block_ms=1000, keep=10, page=10)  # type: ignore[arg-type]
        tail = tail_at(0)
        tail.task = asyncio.create_task(asyncio.Event().wait())  # a reader that never ends
        waiting = asyncio.create_task(tails.wait(tail, 0, timeout_ms=60_000))
        await asyncio.sleep(0)
        assert not waiting.done()
        tail._add(entries(1))
        woke = await asyncio.wait_for(waiting, 30)
        assert [r.seq for r in woke.records] == [1]
        nothing = await tails.wait(tail, 1, timeout_ms=1)
        assert nothing.records == [] and not nothing.behind
        tail.task.cancel()

    asyncio.run(check())
