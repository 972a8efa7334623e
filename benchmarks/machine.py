"""This machine's speed while a benchmark runs, printed beside its figures.

The 2-core machine the benchmarks run on changes speed by up to 3x between days and within an
hour (10 million Python additions took 0.54 s on one day and 1.83 s on another), so a figure
read without its baseline from the same run, or without the speed it was measured at, says
little. `speed_noted` prints the time of a fixed loop when the benchmark starts and when it
ends; a figure from a run whose two probes differ widely was measured on a changing machine."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

# At a module's top level (names looked up as globals), as the earlier notes in README.md and
# docs/performance.md timed it with `python3 -c`, so their figures compare with these.
LOOP = compile("total = 0\nfor i in range(10_000_000):\n    total += i\n", "<probe>", "exec")


def additions_seconds() -> float:
    """Seconds this process takes for 10 million Python additions (one pass, one core)."""
    started = time.perf_counter()
    exec(LOOP, {})
    return time.perf_counter() - started


@contextmanager
def speed_noted() -> Iterator[None]:
    start = additions_seconds()
    print(f"machine: 10 million Python additions {start:.2f} s at the start", flush=True)
    yield
    end = additions_seconds()
    print(
        f"machine: 10 million Python additions {start:.2f} s at the start, {end:.2f} s at the end"
    )
