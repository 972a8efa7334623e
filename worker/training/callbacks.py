"""Per-batch and per-epoch work during fit: the epoch's example order, stopping on request or
divergence without a host sync per step, and handing every finished epoch on."""

import math
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np


def finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(np.asarray(value)))


class EpochDriver(keras.callbacks.Callback):
    """Drives one fit over many epochs.

    - `begin(epoch)` before each epoch (the data orders its examples by it);
    - every `poll_seconds` (never per step: reading the running loss is a device-to-host
      sync; the clock runs on across epochs, so epochs shorter than that are polled too),
      `poll(logs)`: True stops the fit at the end of that batch;
    - after each epoch, `end(epoch, logs, train_seconds, eval_seconds)`: True stops the fit
      there (a pause, a hand-back, an arm that left the group).
    Epochs are 1-based in every call, as records count them.
    """

    def __init__(
        self,
        *,
        begin: Callable[[int], None],
        poll: Callable[[dict[str, Any]], bool],
        end: Callable[[int, dict[str, Any], float, float], bool],
        poll_seconds: float,
    ) -> None:
        super().__init__()
        self._begin, self._poll, self._end = begin, poll, end
        self.poll_seconds = poll_seconds
        self._next_poll = 0.0
        self._started = 0.0
        self._evaluating = 0.0
        self._evaluated = 0.0
        self.halted = False  # poll() stopped the fit mid-epoch

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._begin(epoch + 1)
        self._started = time.perf_counter()
        self._evaluated = 0.0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + self.poll_seconds
        if self._poll(logs or {}):
            self.halted = True
            self.model.stop_training = True

    # fit's validation runs with the same callbacks: its time is evaluation, not training.
    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._evaluating = time.perf_counter()

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        self._evaluated += time.perf_counter() - self._evaluating

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.halted:
            return
        elapsed = time.perf_counter() - self._started
        if self._end(epoch + 1, logs or {}, elapsed - self._evaluated, self._evaluated):
            self.model.stop_training = True
