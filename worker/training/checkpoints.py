"""Per-run checkpoints: every model variable (weights, normalization statistics, dropout RNG
state) and every optimizer variable (moments, iteration count) after each finished epoch, with
the run's records so far. One `.npz` per run in the artifact store, replaced whole, read with
`allow_pickle=False`: a crash leaves the previous epoch's checkpoint or the new one, never
half of one, and loading one can never run code."""

import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from core.artifacts import ArtifactStore
from core.kinds.train.records import TrainRecord

log = logging.getLogger(__name__)

FORMAT = 2  # 2: records of the train kind (TrainRecord)


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    model: list[np.ndarray]
    optimizer: list[np.ndarray]
    records: list[TrainRecord]


def fingerprint(config: dict[str, Any]) -> str:
    """What the checkpoint belongs to; a checkpoint of another configuration is never loaded."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """The state after an epoch, copied off the model: writing it may happen elsewhere."""

    arrays: dict[str, np.ndarray]


def snapshot(
    *,
    epoch: int,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    records: list[TrainRecord],
    belongs_to: str,
) -> Snapshot:
    """Copy the model's and the optimizer's variables and the records as of `epoch`."""
    arrays = {f"m{i}": value for i, value in enumerate(values(model.variables))}
    arrays |= {f"o{i}": value for i, value in enumerate(values(optimizer.variables))}
    meta = {
        "format": FORMAT,
        "fingerprint": belongs_to,
        "epoch": epoch,
        "model_variables": len(model.variables),
        "optimizer_variables": len(optimizer.variables),
        "records": [r.stored() for r in records],
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return Snapshot(arrays)


def values(variables: Sequence[Any]) -> list[np.ndarray]:
    """Copies of the variables' values. On TensorFlow's backend each is read by the bare read
    op, a sixth of the cost of Keras's conversion of a variable: a fused group of 8 arms
    copies about 120 variables after every epoch, on the training thread."""
    if keras.backend.backend() != "tensorflow":
        return [np.array(keras.ops.convert_to_numpy(v), copy=True) for v in variables]
    import tensorflow as tf

    read = tf.raw_ops.ReadVariableOp
    return [
        np.array(read(resource=v.value.handle, dtype=v.value.dtype).numpy(), copy=True)
        for v in variables
    ]


def write(store: ArtifactStore, key: str, state: Snapshot) -> None:
    """Write a snapshot to `key`, replacing the previous checkpoint whole."""
    store.write(key, lambda out: np.savez(out, **state.arrays))  # type: ignore[arg-type]


class Writer:
    """Writes snapshots in the background, one at a time and in order, so the next epoch
    trains while the last one is written and fsynced. `wait` before anything that must find
    the checkpoint written (a pause, a hand-back, the end); a failed write raises there."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: list[Future[None]] = []

    def submit(self, store: ArtifactStore, key: str, state: Snapshot) -> None:
        self._pending.append(self._pool.submit(write, store, key, state))

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


def save(
    store: ArtifactStore,
    key: str,
    *,
    epoch: int,
    model: keras.Model,
    records: list[TrainRecord],
    belongs_to: str,
) -> None:
    """Write the state after `epoch` of a compiled model to `key`, replacing the previous one."""
    write(
        store,
        key,
        snapshot(
            epoch=epoch,
            model=model,
            optimizer=model.optimizer,
            records=records,
            belongs_to=belongs_to,
        ),
    )


def load(store: ArtifactStore, key: str, *, belongs_to: str) -> Checkpoint | None:
    """The checkpoint at `key` if there is a sound one of this configuration, else None
    (the run then starts over, which costs time but never correctness)."""
    path = store.path(key)
    try:
        if not store.exists(key):
            return None
        with np.load(io.BytesIO(store.read(key)), allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("format") != FORMAT or meta.get("fingerprint") != belongs_to:
                log.warning("checkpoint %s belongs to another configuration; ignored", path)
                return None
            model = [data[f"m{i}"] for i in range(meta["model_variables"])]
            optimizer = [data[f"o{i}"] for i in range(meta["optimizer_variables"])]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        log.warning("checkpoint %s unreadable (%s); starting over", path, error)
        return None
    records = [TrainRecord.model_validate(r) for r in meta["records"]]
    return Checkpoint(epoch=int(meta["epoch"]), model=model, optimizer=optimizer, records=records)


def restore(
    model: keras.Model,
    checkpoint: Checkpoint,
    optimizer: keras.optimizers.Optimizer | None = None,
) -> bool:
    """Put the checkpoint's state into a freshly built model and its optimizer (the model's
    own when compiled); False if it does not fit (then nothing was changed)."""
    optimizer = optimizer or model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    pairs = [
        *zip(model.variables, checkpoint.model, strict=False),
        *zip(optimizer.variables, checkpoint.optimizer, strict=False),
    ]
    if len(model.variables) != len(checkpoint.model) or len(optimizer.variables) != len(
        checkpoint.optimizer
    ):
        return False
    if any(tuple(v.shape) != a.shape for v, a in pairs):
        return False
    for variable, value in pairs:
        variable.assign(value)
    return True


def remove(store: ArtifactStore, key: str) -> None:
    store.remove(key)
