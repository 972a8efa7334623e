"""Tables: jobs, their runs, every run's records, the outbox of messages to the broker, users'
uploads (datasets and models) and API keys."""

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DIVERGED = "diverged"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Waiting at a position for a decision about its group (a tuning job's pruning rung).
    PAUSED = "paused"
    # Stopped by such a decision: its group's better members went on.
    PRUNED = "pruned"


FINISHED_RUN = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.DIVERGED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.PRUNED,
    }
)
FINISHED_JOB = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


def _now() -> Any:
    return func.now()


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("owner", "idempotency_key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    # Which kind of job (core/kinds): train, race, ...
    kind: Mapped[str] = mapped_column(String(50), server_default="train")
    # Who submitted it (an API key's owner); only they and admins can see it.
    owner: Mapped[str] = mapped_column(String(200), index=True, server_default="")
    # Idempotency-Key of the request that created it, with the hash of that request's body.
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, name="job_status", values_callable=lambda e: [m.value for m in e]),
        default=JobStatus.QUEUED,
    )
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The last sequence number given to one of this job's records: the metrics cursor.
    metrics_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=_now(), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=_now(), onupdate=_now()
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    runs: Mapped[list["Run"]] = relationship(
        back_populates="job", order_by="Run.index", lazy="raise"
    )


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("job_id", "index"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    arm: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(200))
    optimizer: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Kinds without a seed or a batch size (the 2-D race) leave them empty.
    seed: Mapped[int | None] = mapped_column(BigInteger)
    batch_size: Mapped[int | None] = mapped_column(Integer)
    # How far the run goes, in its kind's unit: epochs for training, steps for a race.
    budget: Mapped[int] = mapped_column(Integer)
    # A tuning job's phase (1: search, 2: the chosen configurations on fresh seeds) and the
    # trial (configuration) of the search; empty for kinds without phases.
    phase: Mapped[int | None] = mapped_column(Integer)
    trial: Mapped[int | None] = mapped_column(Integer)
    # Where a paused run waits for its group's decision, and the last such position it was
    # cleared past (a resumed run does not wait there again).
    waiting_at: Mapped[int | None] = mapped_column(Integer)
    cleared_at: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[RunStatus] = mapped_column(
        Enum(RunStatus, name="run_status", values_callable=lambda e: [m.value for m in e]),
        default=RunStatus.QUEUED,
    )
    # Claims so far; handbacks counts those that ended in a clean hand-back (a deploy), which
    # do not count against the attempt limit.
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    handbacks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Beaten by the process training the run; a stale beat means that process is gone.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    diverged_at: Mapped[int | None] = mapped_column(Integer)
    initial_weights_sha256: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    environment: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    worker: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    job: Mapped[Job] = relationship(back_populates="runs", lazy="raise")


class RecordRow(Base):
    """One record of a run, in every kind's one stored shape: its position in the run keys
    exactly-once storage, its seq numbers the job's records without gaps (the cursor), and
    the kind's fields are its data."""

    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("run_id", "position"),
        UniqueConstraint("job_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    position: Mapped[int] = mapped_column(Integer)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)


class OutboxMessage(Base):
    """A message for the broker, written in the transaction that makes it due and sent by the
    relay after the commit: a crash or a broker outage delays a message, never loses it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "available_at", postgresql_where="sent_at IS NULL"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(200))
    args: Mapped[list[Any]] = mapped_column(JSONB)
    queue: Mapped[str] = mapped_column(String(200))
    # The run the message starts, if it starts one: the reaper looks for queued runs without.
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    available_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)


class Upload(Base):
    """A dataset or model a user uploaded: its bytes live in the artifact store under `key`,
    its facts (shapes, classes, splits; outputs, parameters) in `meta`. The same bytes (and
    options) uploaded twice by one owner are one upload."""

    __tablename__ = "uploads"
    __table_args__ = (UniqueConstraint("owner", "kind", "fingerprint"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # "dataset" or "model"
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    # sha256 and the options that shape what the bytes mean (a CSV's label column).
    fingerprint: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[str] = mapped_column(String(500))
    meta: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class ApiKey(Base):
    """An API key, stored as the SHA-256 of its secret (keys are 256 random bits, so a fast
    hash is safe); the prefix names the key in listings without revealing it."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
