"""Per-batch and per-epoch work during fit: stopping on request or divergence, reporting."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np


@dataclass
class StopState:
    """Why training stopped early, if it did; shared by the callbacks of one run."""

    cancelled: bool = False
    diverged_epoch: int | None = None

    @property
    def stopped(self) -> bool:
        return self.cancelled or self.diverged_epoch is not None


def finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(np.asarray(value)))


class StopGuard(keras.callbacks.Callback):
    """Stops at the end of the current batch when cancel is requested or the loss is not finite."""

    def __init__(
        self, state: StopState, *, cancel_requested: Callable[[], bool], poll_seconds: float
    ) -> None:
        super().__init__()
        self.state = state
        self.cancel_requested = cancel_requested
        self.poll_seconds = poll_seconds
        self._next_poll = 0.0
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if logs and "loss" in logs and not finite(logs["loss"]):
            self.state.diverged_epoch = self._epoch
            self.model.stop_training = True
            return
        now = time.monotonic()
        if now >= self._next_poll:
            self._next_poll = now + self.poll_seconds
            if self.cancel_requested():
                self.state.cancelled = True
                self.model.stop_training = True


class EpochReporter(keras.callbacks.Callback):
    """Hands the metrics of every finished epoch to `report`, unless the run was stopped."""

    def __init__(
        self,
        state: StopState,
        *,
        report: Callable[[int, dict[str, float], float, float], None],
    ) -> None:
        super().__init__()
        self.state = state
        self.report = report
        self._started = 0.0
        self._evaluating = 0.0
        self._evaluated = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()
        self._evaluated = 0.0

    # fit's validation runs with the same callbacks: its time is evaluation, not training.
    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._evaluating = time.perf_counter()

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        self._evaluated += time.perf_counter() - self._evaluating

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.state.stopped:
            return
        metrics = {k: float(np.asarray(v)) for k, v in (logs or {}).items()}
        if not all(finite(metrics.get(k, 0.0)) for k in ("loss", "val_loss")):
            self.state.diverged_epoch = epoch + 1
            self.model.stop_training = True
            return
        elapsed = time.perf_counter() - self._started
        self.report(epoch + 1, metrics, elapsed - self._evaluated, self._evaluated)
