"""The API's background work, each a thread: the outbox relay (every interval, and at once
after a commit that adds messages) and the reaper. Several API processes may run them at
once: both take their rows with SKIP LOCKED.

The relay runs here rather than in a Celery beat: the API is always deployed (beat would be
one more service to run exactly once), it holds the broker connection already, and the
commit that adds messages happens in this process, so it can wake the relay with no delay.
"""

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from core.artifacts import open_store
from core.db import transaction
from core.outbox import OutboxRepository, Send, relay
from core.reaper import expire_models, reap
from core.settings import Settings

log = logging.getLogger(__name__)
FORGET_EVERY = 60.0  # seconds between deletions of long-sent outbox rows
# Woken by a commit, the relay first lets a burst's other commits land (seconds): one batch,
# one transaction and one round trip to the broker for all of them, where a relay woken by
# each commit took one job at a time (its transaction, not its messages, was most of its
# cost). A run starts this much later, once.
RELAY_GATHER = 0.02


class Loop(threading.Thread):
    """Runs `work` every `interval` seconds, or soon after it is woken (`gather` seconds
    later: wakes in between are served by the same run), until stopped."""

    def __init__(
        self, name: str, interval: float, work: Callable[[], object], *, gather: float = 0.0
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.interval = interval
        self.work = work
        self.gather = gather
        self._wake = threading.Event()
        self._stopping = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            if self._wake.wait(self.interval) and self.gather > 0:
                self._stopping.wait(self.gather)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.work()
            except Exception:
                log.exception("%s failed; trying again in %ss", self.name, self.interval)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self.join(timeout=30)


class Background:
    """The relay and the reaper of one API process."""

    def __init__(self, settings: Settings, send: Send) -> None:
        self.settings = settings
        self.send = send
        self.sessions: sessionmaker[Session] | None = None
        self.relay = Loop(
            "outbox relay", settings.outbox_relay_seconds, self._relay, gather=RELAY_GATHER
        )
        self._forgot = 0.0
        self.reaper = Loop("reaper", settings.reaper_interval_seconds, self._reap)

    def start(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        if self.settings.outbox_relay_seconds > 0:
            self.relay.start()
        if self.settings.reaper_interval_seconds > 0:
            self.reaper.start()

    def wake_relay(self) -> None:
        if self.relay.is_alive():
            self.relay.wake()

    def _relay(self) -> None:
        assert self.sessions is not None
        relay(self.sessions, self.send)
        if time.monotonic() - self._forgot > FORGET_EVERY:
            with transaction(self.sessions) as session:
                OutboxRepository(session).forget_sent(
                    older_than=self.settings.outbox_retention_seconds
                )
            self._forgot = time.monotonic()

    def _reap(self) -> None:
        assert self.sessions is not None
        settings = self.settings
        reap(
            self.sessions,
            stale_after=settings.stale_after_seconds,
            max_attempts=settings.max_attempts,
            queue=settings.task_queue,
            resend_after=settings.resend_queued_after_seconds or None,
        )
        if settings.trained_model_retention_seconds > 0:
            expire_models(
                self.sessions,
                open_store(settings),
                kept_for=settings.trained_model_retention_seconds,
            )

    def stop(self) -> None:
        for loop in (self.reaper, self.relay):
            if loop.is_alive():
                loop.stop()
