"""Training one run for real on digits: fairness, determinism, divergence, cancellation."""

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.artifacts import ArtifactStore
from core.kinds.train.records import TrainRecord
from core.kinds.train.spec import TrainSpec
from tests.unit.worker.training.uploads import DATA_ID, MODEL_ID, UPLOADS
from worker.runs import RunHooks, RunOutcome
from worker.training import run as run_module
from worker.training.run import TrainingPlan, epoch_order, summary, train


def run(
    optimizer: Any,
    tmp_path: Path,
    *,
    seed: int = 0,
    epochs: int = 2,
    batch_size: int = 64,
    cancel_after: int | None = None,
    model: dict | None = None,
    test_epochs: tuple[int, ...] = (),
    store: ArtifactStore | None = None,
    steps_per_execution: int = 1,
) -> tuple[RunOutcome, list[TrainRecord]]:
    spec = TrainSpec.model_validate(
        {
            "optimizers": [optimizer],
            "model": model or {"preset": "mlp", "hidden_units": [32], "dropout": 0.2},
            "dataset": {"name": "digits"},
        }
    )
    records: list[TrainRecord] = []
    batches = {"n": 0}

    def cancel_requested() -> bool:
        batches["n"] += 1
        return cancel_after is not None and batches["n"] > cancel_after

    plan = TrainingPlan(
        run_id=uuid.uuid4(),
        dataset=spec.dataset,
        model=spec.model,
        optimizer=spec.optimizers[0].config,
        batch_size=batch_size,
        epochs=epochs,
        seed=seed,
        test_epochs=test_epochs,
        store=store,
        steps_per_execution=steps_per_execution,
    )
    hooks = RunHooks(
        on_start=lambda sha, env: None,
        on_records=records.extend,
        cancel_requested=cancel_requested,
        poll_seconds=0.0,
    )
    return train(plan, cache_dir=tmp_path, hooks=hooks), records


def curve(records: list[TrainRecord]) -> list[tuple[float | None, ...]]:
    return [(r.epoch, r.loss, r.accuracy, r.val_loss, r.val_accuracy) for r in records]


def test_arms_of_one_seed_share_initial_weights_and_epoch_zero(tmp_path: Path) -> None:
    sgd, sgd_records = run("sgd", tmp_path)
    adam, adam_records = run("adam", tmp_path)
    other_seed, _ = run("sgd", tmp_path, seed=1)
    assert sgd.initial_weights_sha256 == adam.initial_weights_sha256
    assert other_seed.initial_weights_sha256 != sgd.initial_weights_sha256
    assert curve(sgd_records)[0] == curve(adam_records)[0]
    assert curve(sgd_records)[1:] != curve(adam_records)[1:]


def test_the_same_run_twice_gives_the_same_numbers(tmp_path: Path) -> None:
    _, first = run({"name": "adam", "learning_rate": 0.003}, tmp_path)
    _, second = run({"name": "adam", "learning_rate": 0.003}, tmp_path)
    assert curve(first) == curve(second)


def test_steps_per_call_and_the_graph_fed_batches_change_no_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1150 examples at batch 64 are 18 steps an epoch: calls of 7 steps end each epoch early.
    body = {"name": "adam", "learning_rate": 0.003}
    _, one = run(body, tmp_path, epochs=3, test_epochs=(2,))
    _, seven = run(body, tmp_path, epochs=3, test_epochs=(2,), steps_per_execution=7)
    assert [
        r.model_dump(exclude={"run_id", "time", "epoch_seconds", "eval_seconds"}) for r in seven
    ] == [r.model_dump(exclude={"run_id", "time", "epoch_seconds", "eval_seconds"}) for r in one]
    # The batches gathered in the graph are the ones Python hands fit (other backends' path).
    monkeypatch.setattr(run_module, "_tensorflow", lambda: False)
    _, python_fed = run(body, tmp_path, epochs=3, test_epochs=(2,))
    assert curve(python_fed) == curve(one)


def test_records_cover_every_epoch_with_lr_examples_and_time(tmp_path: Path) -> None:
    outcome, records = run({"name": "sgd", "lr": 0.1, "decay": 0.01}, tmp_path, epochs=3)
    assert outcome.status == "succeeded" and outcome.completed == 3
    assert [r.epoch for r in records] == [0, 1, 2, 3]
    # digits: 1797 examples, 359 held out as the test set, 288 of the rest for validation.
    assert [r.examples_seen for r in records] == [0, 1150, 2300, 3450]
    steps_per_epoch = -(-1150 // 64)
    assert records[1].learning_rate == pytest.approx(0.1 / (1 + 0.01 * steps_per_epoch), rel=1e-5)
    # Training seconds and evaluation seconds are counted apart: epoch 0 only evaluates.
    assert records[0].epoch_seconds == 0 and (records[0].eval_seconds or 0) > 0
    assert all(r.epoch_seconds > 0 and (r.eval_seconds or 0) > 0 for r in records[1:])
    assert outcome.summary["eval_seconds"] == pytest.approx(
        sum(r.eval_seconds or 0 for r in records), abs=1e-3
    )
    assert outcome.summary["final"]["val_accuracy"] == records[-1].val_accuracy


def test_the_test_set_is_evaluated_only_at_the_budgets_and_the_end(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    outcome, records = run("adam", tmp_path, epochs=4, test_epochs=(2,), store=store)
    tested = {r.epoch: r.test_accuracy for r in records if r.test_accuracy is not None}
    assert sorted(tested) == [2, 4]
    assert all(r.test_loss is None for r in records if r.epoch not in tested)
    assert outcome.summary["test"] == {
        "epoch": 4,
        "loss": records[-1].test_loss,
        "accuracy": records[-1].test_accuracy,
    }
    # The trained model is kept in the store, whole.
    kept = store.read(f"runs/{outcome.records[0].run_id}/model.keras")
    assert kept[:2] == b"PK" and outcome.summary["model_bytes"] == len(kept)


def test_a_loss_that_explodes_ends_the_run_diverged(tmp_path: Path) -> None:
    outcome, records = run({"name": "sgd", "learning_rate": 1e12}, tmp_path, epochs=3)
    assert outcome.status == "diverged" and outcome.diverged_at == 1
    assert [r.epoch for r in records] == [0]


def test_cancel_stops_within_the_epoch_and_reports_nothing_after(tmp_path: Path) -> None:
    # 1150 examples at batch 16 are 72 batches an epoch: batch 101 is in epoch 2.
    outcome, records = run("adam", tmp_path, epochs=5, batch_size=16, cancel_after=100)
    assert outcome.status == "cancelled"
    assert [r.epoch for r in records] == [0, 1]


def test_cnn_preset_trains_on_digits(tmp_path: Path) -> None:
    outcome, records = run(
        "adam", tmp_path, epochs=1, model={"preset": "cnn", "filters": [4, 8], "dense_units": 16}
    )
    assert outcome.status == "succeeded" and records[-1].val_accuracy is not None


def test_epoch_order_depends_on_seed_and_epoch_only() -> None:
    assert np.array_equal(epoch_order(3, 1, 100), epoch_order(3, 1, 100))
    assert not np.array_equal(epoch_order(3, 1, 100), epoch_order(3, 2, 100))


def _resumable(
    run_id: uuid.UUID, tmp_path: Path, *, optimizer: Any, epochs: int, steps_per_execution: int = 1
) -> TrainingPlan:
    spec = TrainSpec.model_validate(
        {
            "optimizers": [optimizer],
            "model": {"preset": "mlp", "hidden_units": [32], "dropout": 0.2},
            "dataset": {"name": "digits"},
        }
    )
    return TrainingPlan(
        run_id=run_id,
        dataset=spec.dataset,
        model=spec.model,
        optimizer=spec.optimizers[0].config,
        batch_size=32,
        epochs=epochs,
        seed=3,
        store=ArtifactStore(str(tmp_path / "artifacts")),
        steps_per_execution=steps_per_execution,
    )


def _hooks(records: list[TrainRecord], *, hand_back_after: int | None = None) -> RunHooks:
    return RunHooks(
        on_start=lambda sha, env: None,
        on_records=records.extend,
        cancel_requested=lambda: False,
        hand_back_requested=lambda: (
            hand_back_after is not None and records[-1].epoch >= hand_back_after
        ),
    )


# Resumed training computes what uninterrupted training does: the same weights, optimizer
# moments (Adam with a schedule, so the iteration count matters too), dropout RNG state and
# example order. Bitwise on one machine with deterministic ops; the stated tolerance is 1e-6.
RESUME_TOLERANCE = 1e-6


@pytest.mark.parametrize(
    ("optimizer", "steps"),
    [
        (
            {
                "name": "adam",
                "learning_rate": {
                    "schedule": "cosine",
                    "initial_learning_rate": 0.01,
                    "decay_steps": 200,
                },
            },
            1,
        ),
        ({"name": "sgd", "momentum": 0.9, "nesterov": True}, 5),
    ],
)
def test_a_run_resumed_from_its_checkpoint_equals_the_uninterrupted_run(
    tmp_path: Path, optimizer: Any, steps: int
) -> None:
    def plan(run_id: uuid.UUID) -> TrainingPlan:
        return _resumable(
            run_id, tmp_path, optimizer=optimizer, epochs=4, steps_per_execution=steps
        )

    whole: list[TrainRecord] = []
    train(plan(uuid.uuid4()), cache_dir=tmp_path, hooks=_hooks(whole))
    run_id = uuid.uuid4()
    first: list[TrainRecord] = []
    stopped = train(plan(run_id), cache_dir=tmp_path, hooks=_hooks(first, hand_back_after=2))
    assert stopped.status == "handed_back" and stopped.completed == 2
    second: list[TrainRecord] = []
    resumed = train(plan(run_id), cache_dir=tmp_path, hooks=_hooks(second))
    assert resumed.status == "succeeded" and resumed.resumed_from == 2
    assert [r.epoch for r in first] == [0, 1, 2] and [r.epoch for r in second] == [3, 4]
    assert [r.epoch for r in resumed.records] == [0, 1, 2, 3, 4]
    for a, b in zip(whole, first + second, strict=True):
        for name in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
            x, y = getattr(a, name), getattr(b, name)
            assert abs(x - y) <= RESUME_TOLERANCE * max(1.0, abs(x)), (a.epoch, name, x, y)
    uninterrupted = summary(whole, 4)["final"]
    final = resumed.summary["final"]
    assert np.allclose(list(final.values()), list(uninterrupted.values()), rtol=RESUME_TOLERANCE)


def test_a_checkpoint_of_another_configuration_or_a_damaged_one_is_not_loaded(
    tmp_path: Path,
) -> None:
    run_id = uuid.uuid4()
    records: list[TrainRecord] = []
    train(
        _resumable(run_id, tmp_path, optimizer="adam", epochs=3),
        cache_dir=tmp_path,
        hooks=_hooks(records, hand_back_after=1),
    )
    other: list[TrainRecord] = []
    outcome = train(  # same run id, another optimizer: starts over
        _resumable(run_id, tmp_path, optimizer="sgd", epochs=3),
        cache_dir=tmp_path,
        hooks=_hooks(other, hand_back_after=1),
    )
    assert outcome.resumed_from is None and [r.epoch for r in other] == [0, 1]
    saved = tmp_path / "artifacts" / "checkpoints" / f"{run_id}.npz"
    saved.write_bytes(b"not a checkpoint")
    again: list[TrainRecord] = []
    outcome = train(
        _resumable(run_id, tmp_path, optimizer="sgd", epochs=1),
        cache_dir=tmp_path,
        hooks=_hooks(again),
    )
    assert outcome.resumed_from is None and outcome.status == "succeeded"


def _uploaded_run(
    tmp_path: Path, store: ArtifactStore, *, optimizer: str, seed: int, weights: str
) -> RunOutcome:
    from core.architectures import UploadedModelSpec
    from core.datasets import UploadedDatasetSpec

    plan = TrainingPlan(
        run_id=uuid.uuid4(),
        dataset=UploadedDatasetSpec(id=DATA_ID),
        model=UploadedModelSpec(id=MODEL_ID, weights=weights),  # type: ignore[arg-type]
        optimizer={"name": optimizer},
        batch_size=16,
        epochs=1,
        seed=seed,
        store=store,
        uploads=UPLOADS,
    )
    hooks = RunHooks(on_start=lambda sha, env: None, on_records=list, cancel_requested=bool)
    return train(plan, cache_dir=tmp_path, hooks=hooks)


def test_an_uploaded_model_starts_the_arms_of_a_seed_from_the_same_weights(
    tmp_path: Path,
) -> None:
    import io

    import keras

    from worker.training.models import weights_sha256

    store = ArtifactStore(str(tmp_path / "artifacts"))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 4)).astype("float32"), np.arange(120) % 3
    buffer = io.BytesIO()
    np.savez(buffer, x_train=x, y_train=y)
    store.write_bytes("uploads/datasets/d.npz", buffer.getvalue())
    keras.utils.set_random_seed(123)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(3, activation="softmax")]
    )
    model.save(tmp_path / "m.keras")
    store.write_bytes("uploads/models/m.keras", (tmp_path / "m.keras").read_bytes())
    file_sha = weights_sha256(model)

    def sha(optimizer: str, seed: int, weights: str) -> str:
        outcome = _uploaded_run(tmp_path, store, optimizer=optimizer, seed=seed, weights=weights)
        assert outcome.status == "succeeded"
        assert outcome.records[-1].test_accuracy is not None  # 20% held out by the data seed
        return outcome.initial_weights_sha256

    assert {sha("sgd", 0, "file"), sha("adam", 1, "file")} == {file_sha}
    fresh = sha("sgd", 0, "reinitialize")
    assert fresh == sha("adam", 0, "reinitialize") != file_sha
    assert sha("sgd", 1, "reinitialize") != fresh


def _task_run(tmp_path: Path, body: dict[str, Any]) -> tuple[RunOutcome, list[TrainRecord]]:
    spec = TrainSpec.model_validate({"optimizers": ["adam"], "epochs": 2, **body})
    records: list[TrainRecord] = []
    plan = TrainingPlan(
        run_id=uuid.uuid4(),
        dataset=spec.dataset,
        model=spec.model,
        optimizer=spec.optimizers[0].config,
        batch_size=32,
        epochs=2,
        seed=0,
        task=spec.task or "",
        loss=spec.loss or "",
    )
    hooks = RunHooks(
        on_start=lambda sha, env: None, on_records=records.extend, cancel_requested=bool
    )
    return train(plan, cache_dir=tmp_path, hooks=hooks), records


REGRESSION = {"name": "synthetic", "task": "regression", "samples": 300, "features": 5}


def test_a_regression_records_errors_instead_of_accuracy(tmp_path: Path) -> None:
    outcome, records = _task_run(tmp_path, {"dataset": REGRESSION, "loss": "huber"})
    assert outcome.status == "succeeded"
    last = records[-1]
    assert last.accuracy is None and last.val_accuracy is None
    assert last.mae is not None and last.val_mae is not None and last.val_rmse is not None
    assert last.test_mae is not None and last.test_rmse is not None
    assert records[0].val_rmse is not None and last.val_rmse < records[0].val_rmse
    assert set(outcome.summary["test"]) == {"epoch", "loss", "mae", "rmse"}


def test_the_course_exercise_compiles_a_classifier_with_mean_squared_error(
    tmp_path: Path,
) -> None:
    mse, records = _task_run(tmp_path, {"loss": "mean_squared_error"})
    assert mse.status == "succeeded" and records[-1].val_accuracy is not None
    # Squared error of softmax outputs against one-hot labels is below 1 per class row;
    # cross-entropy of the same untrained model is about ln(10).
    assert records[0].loss is not None and records[0].loss < 0.2
    _, sparse = _task_run(tmp_path, {})
    assert sparse[0].loss is not None and sparse[0].loss > 1.5


def test_binary_cross_entropy_trains_one_logit_on_two_classes(tmp_path: Path) -> None:
    two = {"name": "synthetic", "classes": 2, "samples": 300, "features": 4}
    outcome, records = _task_run(tmp_path, {"dataset": two, "loss": "binary_crossentropy"})
    assert outcome.status == "succeeded"
    assert records[-1].val_accuracy is not None and records[-1].val_accuracy > 0.5
