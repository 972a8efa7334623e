"""Uploads: users' datasets and Keras models, checked before anything is kept, their bytes in
the artifact store and their facts in Postgres; and trained models to download."""

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas import UploadedDatasetOut, UploadedModelOut
from core.artifacts import ArtifactStore, trained_model_key
from core.db import after_commit
from core.errors import Conflict, NotFound, ServiceError, TooLarge
from core.keys import Principal
from core.models import Job, Run, RunStatus, Upload
from core.repositories import UploadRepository, readable
from core.settings import Settings
from core.uploads import BadUpload, Task, check_csv, check_keras, check_npz, dataset_format

UploadKind = Literal["dataset", "model"]


@dataclass(frozen=True)
class Incoming:
    """An uploaded file as the request gave it: spooled to local disk past a small size."""

    file: IO[bytes]
    filename: str | None


class Gone(ServiceError):
    status = 410


def _digest(incoming: Incoming, settings: Settings) -> tuple[str, int]:
    """SHA-256 and size, read in blocks; 413 past the upload limit."""
    digest, size = hashlib.sha256(), 0
    incoming.file.seek(0)
    while block := incoming.file.read(1 << 20):
        size += len(block)
        if size > settings.max_upload_bytes:
            raise TooLarge(
                f"{incoming.filename or 'the file'} is larger than the upload limit of "
                f"{settings.max_upload_bytes} bytes (OPTARENA_MAX_UPLOAD_BYTES)"
            )
        digest.update(block)
    if size == 0:
        raise BadUpload(f"{incoming.filename or 'the file'} is empty")
    incoming.file.seek(0)
    return digest.hexdigest(), size


def _fingerprint(*parts: str | None) -> str:
    return hashlib.sha256("|".join(p or "" for p in parts).encode()).hexdigest()


def _name(given: str | None, incoming: Incoming, fallback: str) -> str:
    name = (given or incoming.filename or fallback).replace("\x00", "").strip()
    return name[:200] or fallback


def _keep(
    session: Session,
    store: ArtifactStore,
    *,
    principal: Principal,
    kind: UploadKind,
    name: str,
    sha256: str,
    fingerprint: str,
    size: int,
    suffix: str,
    meta: dict[str, object],
    incoming: Incoming,
) -> tuple[Upload, bool]:
    """The upload's row, and whether it is new. The bytes go to the store before the row is
    committed, so a committed upload always has its bytes."""
    uploads = UploadRepository(session)
    earlier = uploads.by_fingerprint(principal.owner, kind, fingerprint)
    if earlier is not None:
        return earlier, False
    upload_id = uuid.uuid4()
    key = f"uploads/{kind}s/{upload_id}{suffix}"
    incoming.file.seek(0)
    store.copy_from_file(key, incoming.file)
    row = uploads.add(
        Upload(
            id=upload_id,
            owner=principal.owner,
            kind=kind,
            name=name,
            sha256=sha256,
            fingerprint=fingerprint,
            bytes=size,
            key=key,
            meta=meta,
        )
    )
    if row is None:  # the same bytes arrived twice at once: keep the first
        store.remove(key)
        twin = uploads.by_fingerprint(principal.owner, kind, fingerprint)
        assert twin is not None
        return twin, False
    return row, True


def add_dataset(
    session: Session,
    settings: Settings,
    store: ArtifactStore,
    principal: Principal,
    incoming: Incoming,
    *,
    name: str | None,
    label: str | None,
    task: Task | None = None,
) -> tuple[UploadedDatasetOut, bool]:
    sha256, size = _digest(incoming, settings)
    head = incoming.file.read(64)
    incoming.file.seek(0)
    fmt = dataset_format(incoming.filename, head)
    if fmt == "npz":
        if label is not None:
            raise BadUpload("label names a CSV's label column; an .npz has y_train instead")
        facts = check_npz(incoming.file, task=task, max_expanded=10 * settings.max_upload_bytes)
    else:
        facts = check_csv(incoming.file, label=label, task=task)
    upload, created = _keep(
        session,
        store,
        principal=principal,
        kind="dataset",
        name=_name(name, incoming, f"dataset-{sha256[:8]}"),
        sha256=sha256,
        fingerprint=_fingerprint(sha256, fmt, facts.label, facts.task),
        size=size,
        suffix=f".{fmt}",
        meta=facts.meta(),
        incoming=incoming,
    )
    return UploadedDatasetOut.of(upload), created


def add_model(
    session: Session,
    settings: Settings,
    store: ArtifactStore,
    principal: Principal,
    incoming: Incoming,
    *,
    name: str | None,
) -> tuple[UploadedModelOut, bool]:
    sha256, size = _digest(incoming, settings)
    facts = check_keras(incoming.file)
    upload, created = _keep(
        session,
        store,
        principal=principal,
        kind="model",
        name=_name(name, incoming, f"model-{sha256[:8]}"),
        sha256=sha256,
        fingerprint=sha256,
        size=size,
        suffix=".keras",
        meta=facts.meta(),
        incoming=incoming,
    )
    return UploadedModelOut.of(upload), created


def visible(
    session: Session, principal: Principal, kind: UploadKind, upload_id: uuid.UUID
) -> Upload:
    found = UploadRepository(session).visible(upload_id, principal, kind)
    if found is None:
        raise NotFound(f"no {kind} {upload_id}")
    return found


def owned(session: Session, principal: Principal, kind: UploadKind) -> list[Upload]:
    return UploadRepository(session).owned(principal, kind)


def delete(
    session: Session,
    store: ArtifactStore,
    principal: Principal,
    kind: UploadKind,
    upload_id: uuid.UUID,
) -> None:
    """Refused (409, naming them) while a queued or running job uses it; its bytes leave the
    store once the row's deletion is committed."""
    uploads = UploadRepository(session)
    upload = visible(session, principal, kind, upload_id)
    users = uploads.users(upload)
    if users:
        raise Conflict(
            f"{kind} {upload_id} is used by queued or running jobs "
            f"{', '.join(map(str, users))}; cancel them or wait until they finish"
        )
    key = upload.key
    uploads.delete(upload)
    after_commit(session, lambda: store.remove(key))


def trained_model(
    session: Session,
    settings: Settings,
    store: ArtifactStore,
    principal: Principal,
    run_id: uuid.UUID,
) -> Iterator[bytes]:
    """The final model of a finished run, as `.keras` bytes in blocks."""
    run = session.scalar(
        select(Run).where(
            Run.id == run_id, Run.job_id.in_(readable(principal).with_only_columns(Job.id))
        )
    )
    if run is None:
        raise NotFound(f"no run {run_id}")
    if run.status != RunStatus.SUCCEEDED:
        raise Conflict(
            f"run {run_id} is {run.status.value}: only a run that finished training has a "
            "model to download"
        )
    summary = run.summary or {}
    if "model_expired_at" in summary:
        raise Gone(
            f"the model of run {run_id} was deleted at {summary['model_expired_at']}, "
            f"{settings.trained_model_retention_seconds:g} seconds after the run finished "
            "(OPTARENA_TRAINED_MODEL_RETENTION_SECONDS)"
        )
    if "model_bytes" not in summary:
        why = summary.get("model_not_kept") or "the worker keeps no trained models"
        raise NotFound(f"run {run_id} has no trained model ({why})")
    retention = settings.trained_model_retention_seconds
    if run.finished_at is not None and run.finished_at < datetime.now(UTC) - timedelta(
        seconds=retention
    ):
        raise Gone(
            f"the model of run {run_id} was kept for {retention:g} seconds after the run "
            "finished, and that time has passed"
        )
    key = trained_model_key(run_id)
    if not store.exists(key):
        raise Gone(f"the model of run {run_id} is no longer in the artifact store")
    return store.chunks(key)
