"""The shutdown handshake between a worker's main process and its pool processes."""

import multiprocessing
import os
import signal
import time

import pytest

from worker import shutdown


def _asks(queue: "multiprocessing.Queue[bool]") -> None:
    queue.put(shutdown.hand_back_requested())


def _asks_after_signal(queue: "multiprocessing.Queue[bool]") -> None:
    shutdown._listen_for_drain()
    queue.put(shutdown.hand_back_requested())
    deadline = time.monotonic() + 60
    while not shutdown.draining.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.put(shutdown.hand_back_requested())


def test_pool_processes_learn_of_a_shutdown_by_signal_or_by_the_marker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[bool] = context.Queue()
    child = context.Process(target=_asks_after_signal, args=(queue,))
    child.start()
    assert queue.get(timeout=10) is False  # not yet
    assert child.pid is not None and child.pid in shutdown.children_of(os.getpid())
    try:
        os.kill(child.pid, shutdown.DRAIN_SIGNAL)
        assert queue.get(timeout=10) is True  # a running pool process: the signal
        child.join(timeout=10)
        monkeypatch.setattr(shutdown, "children_of", lambda pid: [])  # signal none of ours
        shutdown._drain_pool(sig="SIGTERM", how="Warm")
        late = context.Process(target=_asks, args=(queue,))  # one started afterwards
        late.start()
        assert queue.get(timeout=10) is True  # the marker
        late.join(timeout=10)
    finally:
        shutdown._drained()
        signal.signal(shutdown.DRAIN_SIGNAL, signal.SIG_DFL)
    assert not shutdown.hand_back_requested() or shutdown.draining.is_set()


def test_a_process_that_has_ended_is_not_alive() -> None:
    assert shutdown.process_alive(os.getpid())
    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(0,))
    child.start()
    child.join()
    assert child.pid is not None and not shutdown.process_alive(child.pid)
