"""Deploys stop workers with SIGTERM. Celery's warm shutdown waits for running tasks, and a
run can take hours: so the main process tells each pool process to hand its run back after
the current epoch (checkpointed), and the run resumes on the next worker.

The main process signals its pool processes and leaves a marker file named after its pid, so
a pool process it starts or hands a task to while shutting down also knows."""

import contextlib
import logging
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from celery import signals

log = logging.getLogger(__name__)

DRAIN_SIGNAL = signal.SIGUSR2
draining = threading.Event()


def _marker(main_pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"optarena-worker-{main_pid}.draining"


def hand_back_requested() -> bool:
    return draining.is_set() or _marker(os.getppid()).exists()


def children_of(parent: int) -> list[int]:
    """The pids whose parent is `parent` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


@signals.worker_process_init.connect  # type: ignore[untyped-decorator]
def _listen_for_drain(**_: Any) -> None:
    signal.signal(DRAIN_SIGNAL, lambda *_: draining.set())


@signals.worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _drain_pool(sig: str = "", how: str = "", **_: Any) -> None:
    _marker(os.getpid()).touch()
    children = children_of(os.getpid())
    log.warning(
        "%s (%s shutdown): %d pool processes hand their runs back after the current epoch",
        sig,
        how,
        len(children),
    )
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, DRAIN_SIGNAL)


@signals.worker_shutdown.connect  # type: ignore[untyped-decorator]
def _drained(**_: Any) -> None:
    _marker(os.getpid()).unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process of this host runs with this pid (a zombie has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
