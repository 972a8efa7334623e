"""job kinds: one stored shape for every kind's records, kind-neutral runs, and the outbox

Epoch records become `records` (run, position, seq, time and the kind's fields as JSON data):
a training epoch keeps its metrics, a race step becomes {step, x, y, f, learning_rate,
seconds}. Runs count their `budget` in their kind's unit and a race's runs have no seed or
batch size. Piecewise-constant schedules are stored as segments.

Revision ID: 20261122_0004
Revises: 20261121_0003
Create Date: 2026-11-22 09:00:00
"""

import itertools
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261122_0004"
down_revision: str | None = "20261121_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _finite(column: str) -> str:
    return f"CASE WHEN {column} IN ('NaN', 'Infinity', '-Infinity') THEN NULL ELSE {column} END"


TRAIN_DATA = f"""jsonb_build_object(
    'run_id', m.run_id::text, 'time', to_jsonb(m.time), 'epoch', m.epoch,
    'loss', {_finite("m.loss")}, 'accuracy', {_finite("m.accuracy")},
    'val_loss', {_finite("m.val_loss")}, 'val_accuracy', {_finite("m.val_accuracy")},
    'learning_rate', {_finite("m.learning_rate")}, 'epoch_seconds', m.epoch_seconds,
    'examples_seen', m.examples_seen,
    'steps', COALESCE(m.steps, CASE WHEN m.epoch = 0 THEN 0
        ELSE m.epoch * ceil((m.examples_seen / m.epoch)::numeric / r.batch_size)::bigint END))"""
RACE_DATA = f"""jsonb_build_object(
    'run_id', m.run_id::text, 'time', to_jsonb(m.time), 'step', m.epoch,
    'x', {_finite("m.x")}, 'y', {_finite("m.y")}, 'f', {_finite("m.loss")},
    'learning_rate', {_finite("m.learning_rate")}, 'seconds', m.epoch_seconds)"""


def _segments(schedule: dict[str, Any]) -> dict[str, Any]:
    boundaries, values = schedule["boundaries"], schedule["values"]
    steps = [b - a for a, b in itertools.pairwise([0, *boundaries])]
    segments = [{"steps": s, "value": v} for s, v in zip(steps, values, strict=False)]
    return {"schedule": "piecewise_constant", "segments": segments, "then": values[-1]}


def _boundaries(schedule: dict[str, Any]) -> dict[str, Any]:
    steps = [s["steps"] for s in schedule["segments"]]
    return {
        "schedule": "piecewise_constant",
        "boundaries": list(itertools.accumulate(steps)),
        "values": [s["value"] for s in schedule["segments"]] + [schedule["then"]],
    }


def _rewrite_schedules(old: str, convert: Any) -> None:
    """Rewrite piecewise schedules in job specs and run configurations."""
    bind = op.get_bind()

    def fix(optimizer: dict[str, Any]) -> dict[str, Any]:
        lr = optimizer.get("learning_rate")
        if isinstance(lr, dict) and lr.get("schedule") == "piecewise_constant" and old in lr:
            optimizer = {**optimizer, "learning_rate": convert(lr)}
        return optimizer

    for job_id, spec in bind.execute(
        sa.text("SELECT id, spec FROM jobs WHERE spec::text LIKE '%piecewise_constant%'")
    ):
        spec = {**spec, "optimizers": [fix(o) for o in spec.get("optimizers", [])]}
        bind.execute(
            sa.text("UPDATE jobs SET spec = CAST(:spec AS jsonb) WHERE id = :id"),
            {"spec": json.dumps(spec), "id": job_id},
        )
    for run_id, optimizer in bind.execute(
        sa.text("SELECT id, optimizer FROM runs WHERE optimizer::text LIKE '%piecewise_constant%'")
    ):
        bind.execute(
            sa.text("UPDATE runs SET optimizer = CAST(:o AS jsonb) WHERE id = :id"),
            {"o": json.dumps(fix(optimizer)), "id": run_id},
        )


def upgrade() -> None:
    op.add_column("jobs", sa.Column("kind", sa.String(50), server_default="train", nullable=False))
    op.execute("UPDATE jobs SET kind = COALESCE(spec->>'kind', 'train')")
    op.alter_column("runs", "epochs", new_column_name="budget")
    op.alter_column("runs", "diverged_epoch", new_column_name="diverged_at")
    op.alter_column("runs", "seed", nullable=True)
    op.alter_column("runs", "batch_size", nullable=True)
    op.execute(
        "UPDATE runs SET seed = NULL, batch_size = NULL FROM jobs "
        "WHERE jobs.id = runs.job_id AND jobs.kind = 'race'"
    )
    op.create_table(
        "records",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_records_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_records_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records")),
        sa.UniqueConstraint("job_id", "seq", name=op.f("uq_records_job_id_seq")),
        sa.UniqueConstraint("run_id", "position", name=op.f("uq_records_run_id_position")),
    )
    for kind, data in (("train", TRAIN_DATA), ("race", RACE_DATA)):
        op.execute(
            f"""INSERT INTO records (job_id, run_id, seq, position, time, data)
            SELECT m.job_id, m.run_id, m.seq, m.epoch, m.time, {data}
            FROM epoch_metrics m JOIN runs r ON r.id = m.run_id JOIN jobs j ON j.id = m.job_id
            WHERE j.kind = '{kind}'"""
        )
    op.drop_table("epoch_metrics")
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("args", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "available_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_outbox_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(op.f("ix_outbox_run_id"), "outbox", ["run_id"])
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["available_at"],
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    _rewrite_schedules("boundaries", _segments)


def downgrade() -> None:
    _rewrite_schedules("segments", _boundaries)
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_index(op.f("ix_outbox_run_id"), table_name="outbox")
    op.drop_table("outbox")
    op.create_table(
        "epoch_metrics",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("loss", sa.Double(), nullable=True),
        sa.Column("accuracy", sa.Double(), nullable=True),
        sa.Column("val_loss", sa.Double(), nullable=True),
        sa.Column("val_accuracy", sa.Double(), nullable=True),
        sa.Column("learning_rate", sa.Double(), nullable=True),
        sa.Column("epoch_seconds", sa.Double(), nullable=False),
        sa.Column("examples_seen", sa.BigInteger(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("steps", sa.BigInteger(), nullable=True),
        sa.Column("x", sa.Double(), nullable=True),
        sa.Column("y", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_epoch_metrics_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_epoch_metrics_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_epoch_metrics")),
        sa.UniqueConstraint("job_id", "seq", name=op.f("uq_epoch_metrics_job_id_seq")),
        sa.UniqueConstraint("run_id", "epoch", name=op.f("uq_epoch_metrics_run_id_epoch")),
    )
    op.execute(
        """INSERT INTO epoch_metrics (job_id, run_id, seq, epoch, loss, accuracy, val_loss,
            val_accuracy, learning_rate, epoch_seconds, examples_seen, time, steps, x, y)
        SELECT r.job_id, r.run_id, r.seq, r.position,
            (r.data->>'loss')::float8, (r.data->>'accuracy')::float8,
            (r.data->>'val_loss')::float8, (r.data->>'val_accuracy')::float8,
            (r.data->>'learning_rate')::float8, (r.data->>'epoch_seconds')::float8,
            (r.data->>'examples_seen')::bigint, r.time, (r.data->>'steps')::bigint, NULL, NULL
        FROM records r JOIN jobs j ON j.id = r.job_id WHERE j.kind = 'train'"""
    )
    op.execute(
        """INSERT INTO epoch_metrics (job_id, run_id, seq, epoch, loss, accuracy, val_loss,
            val_accuracy, learning_rate, epoch_seconds, examples_seen, time, steps, x, y)
        SELECT r.job_id, r.run_id, r.seq, r.position, (r.data->>'f')::float8, NULL, NULL, NULL,
            (r.data->>'learning_rate')::float8, (r.data->>'seconds')::float8, 0, r.time,
            r.position, (r.data->>'x')::float8, (r.data->>'y')::float8
        FROM records r JOIN jobs j ON j.id = r.job_id WHERE j.kind = 'race'"""
    )
    op.drop_table("records")
    op.execute(
        "UPDATE runs SET seed = 0, batch_size = 1 FROM jobs "
        "WHERE jobs.id = runs.job_id AND jobs.kind = 'race'"
    )
    op.alter_column("runs", "batch_size", nullable=False)
    op.alter_column("runs", "seed", nullable=False)
    op.alter_column("runs", "diverged_at", new_column_name="diverged_epoch")
    op.alter_column("runs", "budget", new_column_name="epochs")
    op.drop_column("jobs", "kind")
