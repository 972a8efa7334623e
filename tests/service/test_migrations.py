"""Alembic: from empty to head matches the models, downgrade empties it, and the revision that
made job kinds carries old data both ways."""

import json
import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from core.kinds import parse_job
from core.kinds.race.records import RaceRecord
from core.kinds.train.records import TrainRecord
from core.models import Base
from tests.conftest import create_database, drop_database, migrate

BEFORE_KINDS = "20261121_0003"


def test_upgrade_from_empty_matches_the_models_and_downgrade_empties_it() -> None:
    name = "optarena_test_migrations"
    url = create_database(name)
    engine = create_engine(url)
    try:
        migrate(url)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        migrate(url, "base", down=True)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate(url)  # and up again: the downgrade left nothing behind (enum types included)
        assert {"jobs", "runs", "records", "outbox", "uploads"} <= set(
            inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()
        drop_database(name)


PIECEWISE = {"schedule": "piecewise_constant", "boundaries": [10, 30], "values": [0.1, 0.01, 0.001]}
TRAIN_SPEC = {
    "kind": "train",
    "name": "old",
    "dataset": {"name": "digits", "validation_split": 0.2, "limit": None},
    "model": {"preset": "mlp", "hidden_units": [8], "activation": "relu", "dropout": 0.0},
    "optimizers": [
        {
            "name": "sgd",
            "learning_rate": PIECEWISE,
            "momentum": 0.0,
            "nesterov": False,
            "weight_decay": None,
            "clipnorm": None,
            "clipvalue": None,
            "global_clipnorm": None,
            "use_ema": False,
            "ema_momentum": 0.99,
            "ema_overwrite_frequency": None,
            "loss_scale_factor": None,
            "gradient_accumulation_steps": None,
        }
    ],
    "batch_size": [32],
    "epochs": [2],
    "seeds": [0],
    "evaluate_initial": True,
    "target": None,
}
RACE_SPEC = {
    "kind": "race",
    "name": None,
    "objective": {"function": "rosenbrock", "start": [-1.5, 2.0]},
    "optimizers": [{**TRAIN_SPEC["optimizers"][0], "learning_rate": 0.001}],  # type: ignore[index]
    "steps": 2,
    "tolerance": 0.01,
}


def _old_job(engine: Engine, spec: dict[str, object], rows: list[dict[str, object]]) -> uuid.UUID:
    job_id, run_id = uuid.uuid4(), uuid.uuid4()
    optimizer = spec["optimizers"][0]  # type: ignore[index]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, name, status, spec, metrics_seq, owner) "
                "VALUES (:id, 'old', 'succeeded', CAST(:spec AS jsonb), :n, 'tester')"
            ),
            {"id": job_id, "spec": json.dumps(spec), "n": len(rows)},
        )
        conn.execute(
            text(
                "INSERT INTO runs (id, job_id, index, arm, label, optimizer, batch_size, epochs, "
                "seed, status, diverged_epoch) VALUES (:id, :job, 0, 0, 'sgd', "
                "CAST(:optimizer AS jsonb), 32, 2, 0, 'succeeded', NULL)"
            ),
            {"id": run_id, "job": job_id, "optimizer": json.dumps(optimizer)},
        )
        for seq, row in enumerate(rows, start=1):
            conn.execute(
                text(
                    "INSERT INTO epoch_metrics (job_id, run_id, seq, epoch, loss, accuracy, "
                    "val_loss, val_accuracy, learning_rate, epoch_seconds, examples_seen, time, "
                    "steps, x, y) VALUES (:job, :run, :seq, :epoch, :loss, :accuracy, :val_loss, "
                    ":val_accuracy, 0.1, 0.5, :examples, now(), :steps, :x, :y)"
                ),
                {"job": job_id, "run": run_id, "seq": seq, **row},
            )
    return job_id


def _epoch(epoch: int, *, loss: float, steps: int | None) -> dict[str, object]:
    values = {"loss": loss, "accuracy": 0.5, "val_loss": loss, "val_accuracy": 0.4}
    return {"epoch": epoch, **values, "examples": 100 * epoch, "steps": steps, "x": None, "y": None}


def _step(step: int, x: float, y: float) -> dict[str, object]:
    empty = {"accuracy": None, "val_loss": None, "val_accuracy": None}
    return {"epoch": step, "loss": x * y, **empty, "examples": 0, "steps": step, "x": x, "y": y}


def test_old_epochs_become_records_of_their_kind_and_go_back_on_downgrade() -> None:
    name = "optarena_test_migrate_kinds"
    url = create_database(name)
    engine = create_engine(url)
    try:
        migrate(url, BEFORE_KINDS)
        train = _old_job(
            engine,
            TRAIN_SPEC,
            [_epoch(0, loss=2.0, steps=None), _epoch(1, loss=float("nan"), steps=None)],
        )
        race = _old_job(engine, RACE_SPEC, [_step(0, -1.5, 2.0), _step(1, -1.0, 1.0)])
        migrate(url)
        with engine.connect() as conn:
            kinds = {row[0]: row[1] for row in conn.execute(text("SELECT id, kind FROM jobs"))}
            assert kinds == {train: "train", race: "race"}
            records = {
                job: [
                    data
                    for (data,) in conn.execute(
                        text("SELECT data FROM records WHERE job_id = :j ORDER BY seq"), {"j": job}
                    )
                ]
                for job in (train, race)
            }
            runs = {
                row[0]: row[1]
                for row in conn.execute(
                    text("SELECT job_id, (seed, batch_size, budget)::text FROM runs")
                )
            }
            specs = {row[0]: row[1] for row in conn.execute(text("SELECT id, spec FROM jobs"))}
        epochs = [TrainRecord.model_validate(d) for d in records[train]]
        assert [(e.epoch, e.loss, e.steps) for e in epochs] == [(0, 2.0, 0), (1, None, 4)]
        steps = [RaceRecord.model_validate(d) for d in records[race]]
        assert [(s.step, s.x, s.y, s.f) for s in steps] == [
            (0, -1.5, 2.0, -3.0),
            (1, -1.0, 1.0, -1.0),
        ]
        assert runs == {train: "(0,32,2)", race: "(,,2)"}
        lr = parse_job(specs[train]).optimizers[0].config["learning_rate"]
        assert lr == {
            "schedule": "piecewise_constant",
            "segments": [{"steps": 10, "value": 0.1}, {"steps": 20, "value": 0.01}],
            "then": 0.001,
        }
        assert parse_job(specs[race]).kind == "race"

        migrate(url, BEFORE_KINDS, down=True)
        with engine.connect() as conn:
            back = conn.execute(
                text("SELECT epoch, loss, steps, x FROM epoch_metrics ORDER BY job_id = :r, seq"),
                {"r": race},
            ).all()
            spec = conn.execute(
                text("SELECT spec FROM jobs WHERE id = :t"), {"t": train}
            ).scalar_one()
        assert [tuple(row) for row in back] == [
            (0, 2.0, 0, None),
            (1, None, 4, None),
            (0, -3.0, 0, -1.5),
            (1, -1.0, 1, -1.0),
        ]
        assert spec["optimizers"][0]["learning_rate"] == PIECEWISE
    finally:
        engine.dispose()
        drop_database(name)


BEFORE_TUNING = "20261122_0005"


def test_paused_and_pruned_runs_end_cancelled_on_downgrade_and_the_schema_comes_back() -> None:
    name = "optarena_test_migrate_tuning"
    url = create_database(name)
    engine = create_engine(url)
    try:
        migrate(url)
        job = uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO jobs (id, name, kind, status, spec) "
                    "VALUES (:id, 't', 'tune', 'running', '{}')"
                ),
                {"id": job},
            )
            for index, status in enumerate(("paused", "pruned", "succeeded")):
                conn.execute(
                    text(
                        "INSERT INTO runs (id, job_id, index, arm, label, optimizer, budget, "
                        "status, phase, trial, waiting_at) VALUES "
                        "(gen_random_uuid(), :job, :i, 0, 'sgd', '{}', 3, :status, 1, :i, 1)"
                    ),
                    {"job": job, "i": index, "status": status},
                )
        migrate(url, BEFORE_TUNING, down=True)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT status::text, error FROM runs ORDER BY index")).all()
            columns = {c["name"] for c in inspect(conn).get_columns("runs")}
        assert [r[0] for r in rows] == ["cancelled", "cancelled", "succeeded"]
        assert "(pruned)" in rows[1][1] and rows[2][1] is None
        assert not {"phase", "trial", "waiting_at", "cleared_at"} & columns
        migrate(url)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()
        drop_database(name)
