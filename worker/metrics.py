"""Prometheus metrics of a worker: epochs and their seconds, runs by outcome, checkpoint
seconds, fused group sizes and the device. Celery trains in forked pool processes, so the
series live in prometheus-client's multiprocess files: `python -m worker` points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before anything imports this module, and serves
the sum of its processes on OPTARENA_WORKER_METRICS_PORT (no key: a private network's port).
"""

import math
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client import start_http_server as _start_http_server

from core.records import Sequenced

EPOCHS = Counter("optarena_worker_epochs", "Epochs trained and stored (epoch 0 not counted)")
EPOCH_SECONDS = Histogram(
    "optarena_worker_epoch_seconds",
    "Training seconds of an epoch",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
RECORDS = Counter("optarena_worker_records", "Records stored (epochs, race steps)")
RUNS = Counter("optarena_worker_runs", "Runs ended here, by outcome", ["outcome"])
CHECKPOINT_SECONDS = Histogram(
    "optarena_worker_checkpoint_seconds",
    "Seconds a run's training waited on its checkpoints, over the whole run",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60),
)
GROUP_SIZE = Histogram(
    "optarena_worker_fused_group_size",
    "Runs trained together in one compiled step",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16),
)
DEVICE = Gauge(
    "optarena_worker_device_info",
    "The backend and device this worker trains on (value 1)",
    ["backend", "device"],
    multiprocess_mode="max",
)


def stored(records: Sequence[Sequenced]) -> None:
    """New records are stored: count them, and the epochs among them with their seconds."""
    RECORDS.inc(len(records))
    epochs = 0
    for record in records:
        epoch, seconds = _epoch_of(record)
        if isinstance(epoch, int) and epoch >= 1:
            epochs += 1
            if isinstance(seconds, int | float) and math.isfinite(seconds):
                EPOCH_SECONDS.observe(seconds)
    if epochs:
        EPOCHS.inc(epochs)


def _epoch_of(record: Sequenced) -> tuple[Any, Any]:
    """The record's epoch and its seconds, from the record it was stored from when there is
    one (its JSON is not parsed for them)."""
    if record.source is not None:
        return getattr(record.source, "epoch", None), getattr(record.source, "epoch_seconds", None)
    return record.data.get("epoch"), record.data.get("epoch_seconds")


def ended(outcome: str) -> None:
    RUNS.labels(outcome).inc()


def checkpointed(summary: dict[str, Any] | None) -> None:
    """A run's summary is stored: how long its checkpoints held training up, if it says."""
    checkpointing = (summary or {}).get("checkpoint_seconds")
    if isinstance(checkpointing, int | float):
        CHECKPOINT_SECONDS.observe(checkpointing)


def grouped(size: int) -> None:
    GROUP_SIZE.observe(size)


def device(environment: dict[str, Any]) -> None:
    DEVICE.labels(str(environment.get("backend")), str(environment.get("device"))).set(1)


def serve(port: int) -> None:
    """Serve the sum of every process's series (call once, in the Celery parent)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    _start_http_server(port, registry=registry)
