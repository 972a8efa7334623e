"""Per-run checkpoints: every model variable (weights, normalization statistics, dropout RNG
state) and every optimizer variable (moments, iteration count) after each finished epoch, with
the run's records so far. One `.npz` per run, replaced atomically, read with
`allow_pickle=False`: a crash leaves the previous epoch's checkpoint or the new one, never
half of one, and loading one can never run code."""

import hashlib
import json
import logging
import os
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from core.kinds.train.records import TrainRecord

log = logging.getLogger(__name__)

FORMAT = 2  # 2: records of the train kind (TrainRecord)


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    model: list[np.ndarray]
    optimizer: list[np.ndarray]
    records: list[TrainRecord]


def checkpoint_path(directory: Path, run_id: uuid.UUID) -> Path:
    return directory / f"{run_id}.npz"


def fingerprint(config: dict[str, Any]) -> str:
    """What the checkpoint belongs to; a checkpoint of another configuration is never loaded."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def save(
    path: Path, *, epoch: int, model: keras.Model, records: list[TrainRecord], belongs_to: str
) -> None:
    """Write the state after `epoch` next to `path`, flush it to disk, then swap it in."""
    arrays: dict[str, np.ndarray] = {}
    for i, variable in enumerate(model.variables):
        arrays[f"m{i}"] = np.asarray(keras.ops.convert_to_numpy(variable))
    for i, variable in enumerate(model.optimizer.variables):
        arrays[f"o{i}"] = np.asarray(keras.ops.convert_to_numpy(variable))
    meta = {
        "format": FORMAT,
        "fingerprint": belongs_to,
        "epoch": epoch,
        "model_variables": len(model.variables),
        "optimizer_variables": len(model.optimizer.variables),
        "records": [r.stored() for r in records],
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as out:
        np.savez(out, **arrays)  # type: ignore[arg-type]
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load(path: Path, *, belongs_to: str) -> Checkpoint | None:
    """The checkpoint at `path` if there is a sound one of this configuration, else None
    (the run then starts over, which costs time but never correctness)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
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


def restore(model: keras.Model, checkpoint: Checkpoint) -> bool:
    """Put the checkpoint's state into a freshly built, compiled model; False if it does not
    fit (then nothing was changed)."""
    optimizer = model.optimizer
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


def remove(path: Path) -> None:
    for stale in (path, path.with_name(path.name + ".partial")):
        stale.unlink(missing_ok=True)
