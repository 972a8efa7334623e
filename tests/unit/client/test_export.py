"""What the exports write, without a server: event-file framing checked by TensorBoard's own
reader, hyperparameters flattened, MLflow's batch limits kept (a fake MLflow counts calls)."""

import json
from pathlib import Path
from typing import Any

import httpx
from optarena_client.export import MLflow, hparams, run_name, scalars
from optarena_client.tfevents import EventFile, crc32c


def test_crc32c_is_castagnolis() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value


def test_tensorboards_reader_reads_the_events_back(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event

    events = EventFile(tmp_path / "run", wall_time=100.0)
    events.scalars(3, {"val_loss": 0.25, "accuracy": 0.5}, wall_time=101.0)
    events.close()
    read = [Event.FromString(raw) for raw in RawEventFileLoader(str(events.path)).Load()]
    assert read[0].file_version == "brain.Event:2"
    [scalar] = read[1:]
    assert scalar.step == 3 and scalar.wall_time == 101.0
    assert {v.tag: v.simple_value for v in scalar.summary.value} == {
        "val_loss": 0.25,
        "accuracy": 0.5,
    }


def test_hparams_are_the_optimizer_flat_with_batch_size_and_seed() -> None:
    run = {
        "label": "sgd(momentum=0.9)",
        "optimizer": {"name": "sgd", "momentum": 0.9, "nesterov": True, "schedule": {"a": 1}},
        "batch_size": 32,
        "seed": 0,
        "arm": 1,
        "trial": None,
        "budget": 5,
        "id": "0123456789",
    }
    assert hparams(run) == {
        "optimizer": "sgd",
        "optimizer.momentum": 0.9,
        "optimizer.nesterov": True,
        "optimizer.schedule": '{"a": 1}',
        "batch_size": 32,
        "seed": 0,
        "arm": 1,
        "budget": 5,
        "label": "sgd(momentum=0.9)",
    }
    assert run_name(run) == "sgd_momentum=0.9-seed0-01234567"


def test_scalars_leave_out_ids_the_position_and_what_is_not_a_finite_number() -> None:
    record = {"run_id": "r", "cursor": "4", "epoch": 2, "time": "t", "loss": None}
    record |= {"val_loss": 0.5, "steps": 10, "diverged": True, "nan": float("nan")}
    assert scalars(record, "epoch") == {"val_loss": 0.5, "steps": 10.0}


def test_mlflow_batches_stay_within_the_servers_limits() -> None:
    calls: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        return httpx.Response(200, json={})

    mlflow = MLflow("http://mlflow", transport=httpx.MockTransport(handle))
    params = [{"key": f"p{i}", "value": "1"} for i in range(150)]
    metrics = [{"key": "m", "value": 1.0, "timestamp": 0, "step": i} for i in range(2500)]
    mlflow.log_batch("run", params=params, metrics=metrics)
    assert [len(c.get("params", [])) for c in calls] == [100, 50, 0, 0, 0]
    assert [len(c.get("metrics", [])) for c in calls] == [0, 0, 1000, 1000, 500]
