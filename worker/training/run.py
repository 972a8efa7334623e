"""Training one run: plain function in, plain data out; reporting goes through hooks."""

import logging
import math
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np

from core.architectures import CnnSpec, LayersSpec, MlpSpec, UploadedModelSpec
from core.artifacts import ArtifactStore, checkpoint_key, trained_model_key
from core.datasets import NamedDatasetSpec, SyntheticDatasetSpec, UploadedDatasetSpec
from core.kinds.train.records import TrainRecord
from core.uploads import Stored
from worker.backend import describe_environment
from worker.runs import RunFailed, RunHooks, RunOutcome
from worker.training import checkpoints
from worker.training.callbacks import EpochReporter, StopGuard, StopState
from worker.training.datasets import Dataset, load_dataset
from worker.training.models import build_model, load_uploaded_model, weights_sha256
from worker.training.objective import Objective, objective_of
from worker.training.optimizers import build_optimizer, current_learning_rate

EVAL_BATCH = 1024
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPlan:
    run_id: uuid.UUID
    dataset: NamedDatasetSpec | SyntheticDatasetSpec | UploadedDatasetSpec
    model: MlpSpec | CnnSpec | LayersSpec | UploadedModelSpec
    optimizer: dict[str, Any]
    batch_size: int
    epochs: int
    seed: int
    evaluate_initial: bool = True
    # The epochs at which the test set is evaluated (the job's budgets); the last epoch is
    # always one.
    test_epochs: tuple[int, ...] = ()
    # Where the run's checkpoint and trained model go; None: no checkpoints (a retried run
    # starts over) and no trained model kept.
    store: ArtifactStore | None = None
    keep_trained_model: bool = True
    # The uploads the job names (dataset, model), by id.
    uploads: Mapping[Any, Stored] = field(default_factory=dict)
    task: str = "classification"
    loss: str = "sparse_categorical_crossentropy"
    # False: the test set is never evaluated (a tuning job's search, which selects).
    evaluate_test: bool = True
    # Epochs after which the run pauses (checkpointed) for its group's decision; not part of
    # the fingerprint: a run cleared past one resumes from the same checkpoint.
    pause_at: tuple[int, ...] = ()

    def fingerprint(self) -> str:
        """Everything that shapes the training, so a checkpoint is only loaded into its own."""
        return checkpoints.fingerprint(
            {
                "run_id": self.run_id,
                "dataset": self.dataset.model_dump(mode="json"),
                "model": self.model.model_dump(mode="json"),
                "optimizer": self.optimizer,
                "batch_size": self.batch_size,
                "epochs": self.epochs,
                "seed": self.seed,
                "evaluate_initial": self.evaluate_initial,
                "test_epochs": self.test_epochs,
                "evaluate_test": self.evaluate_test,
                "task": self.task,
                "loss": self.loss,
            }
        )


MEASURES = ("loss", "accuracy", "mae", "rmse")


def summary(records: list[TrainRecord], epochs_completed: int) -> dict[str, Any]:
    """Final and best metrics, for the run's row."""
    trained = [r for r in records if r.epoch >= 1]
    final = trained[-1] if trained else None
    found: dict[str, Any] = {
        "epochs_completed": epochs_completed,
        "train_seconds": round(sum(r.epoch_seconds for r in trained), 4),
        "eval_seconds": round(sum(r.eval_seconds or 0.0 for r in records), 4),
        "final": (
            {
                name: getattr(final, name)
                for measure in MEASURES
                for name in (measure, f"val_{measure}")
                if getattr(final, name) is not None
            }
            if final
            else None
        ),
    }
    tested = [r for r in trained if r.test_loss is not None]
    if tested:
        last = tested[-1]
        found["test"] = {"epoch": last.epoch} | {
            m: getattr(last, f"test_{m}")
            for m in MEASURES
            if getattr(last, f"test_{m}") is not None
        }
    scored = [r for r in trained if r.val_accuracy is not None]
    if scored:
        best = max(scored, key=lambda r: (r.val_accuracy or 0.0, -r.epoch))
        found["best_val_accuracy"] = best.val_accuracy
        found["best_val_accuracy_epoch"] = best.epoch
    return found


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of examples in an epoch: a function of seed and epoch only, never of the arm."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def train(
    plan: TrainingPlan,
    *,
    cache_dir: Path,
    hooks: RunHooks,
    fashion_mnist_dir: Path | None = None,
) -> RunOutcome:
    """Train one run to its epoch budget, reporting every epoch through the hooks.

    Fairness: the seed alone fixes the split, the initial weights (Keras is seeded before the
    model is built), the dropout masks and the example order of every epoch; the optimizer
    is built after the model and draws no randomness.

    Honesty: the test set is held out from every choice; it is evaluated only at the job's
    epoch budgets and at the run's last epoch, after the epoch's record is otherwise complete.

    Resumption: after each reported epoch the whole state is checkpointed; a run that finds
    its checkpoint continues after that epoch with the same weights, optimizer moments,
    dropout RNG state and example order, so it computes what the uninterrupted run would have.
    """
    data, objective, model = prepare(plan, cache_dir=cache_dir, fashion_mnist_dir=fashion_mnist_dir)
    initial_sha = weights_sha256(model)
    model.compile(
        optimizer=build_optimizer(plan.optimizer),
        loss=objective.loss(),
        metrics=objective.metrics(),
    )
    outcome = RunOutcome("succeeded", 0, initial_sha)
    store, saved_at = plan.store, checkpoint_key(plan.run_id)
    belongs_to = plan.fingerprint()
    if store is not None:
        resumed = checkpoints.load(store, saved_at, belongs_to=belongs_to)
        if resumed is not None and checkpoints.restore(model, resumed):
            outcome.records = list(resumed.records)
            outcome.completed = outcome.resumed_from = resumed.epoch
    hooks.on_start(initial_sha, describe_environment())
    if outcome.resumed_from in plan.pause_at and store is not None:
        outcome.status = "paused"  # stopped there before its group's decision was taken
        return outcome

    n_train = len(data.x_train)
    steps_per_epoch = math.ceil(n_train / plan.batch_size)

    test_at = {*plan.test_epochs, plan.epochs} if plan.evaluate_test else set()

    def report(epoch: int, metrics: dict[str, float], seconds: float, evaluating: float) -> None:
        if epoch in test_at and data.x_test is not None:
            started = time.perf_counter()
            metrics = metrics | _test(model, data)
            evaluating += time.perf_counter() - started
        record = _record(
            plan.run_id,
            epoch,
            metrics,
            (seconds, evaluating),
            epoch * n_train,
            epoch * steps_per_epoch,
            model,
        )
        hooks.on_records([record])
        outcome.records.append(record)
        outcome.completed = epoch

    if plan.evaluate_initial and outcome.resumed_from is None:
        started = time.perf_counter()
        report(0, _evaluate(model, data), 0.0, time.perf_counter() - started)

    checkpointing = 0.0  # seconds spent saving checkpoints in this attempt
    state = StopState()
    callbacks = [
        StopGuard(state, cancel_requested=hooks.cancel_requested, poll_seconds=hooks.poll_seconds),
        EpochReporter(state, report=report),
    ]
    validation = (data.x_val, data.y_val) if data.x_val is not None else None
    for epoch in range(outcome.resumed_from or 0, plan.epochs):
        order = epoch_order(plan.seed, epoch, n_train)
        model.fit(
            data.x_train[order],
            data.y_train[order],
            batch_size=plan.batch_size,
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=False,
            validation_data=validation,
            validation_batch_size=EVAL_BATCH,
            callbacks=callbacks,
            verbose=0,
        )
        if state.stopped:
            break
        if store is not None:
            started = time.perf_counter()
            checkpoints.save(
                store,
                saved_at,
                epoch=epoch + 1,
                model=model,
                records=outcome.records,
                belongs_to=belongs_to,
            )
            checkpointing += time.perf_counter() - started
        if epoch + 1 < plan.epochs and store is not None and epoch + 1 in plan.pause_at:
            outcome.status = "paused"
            return outcome
        if epoch + 1 < plan.epochs and hooks.hand_back_requested():
            outcome.status = "handed_back"
            return outcome
    if state.diverged_epoch is not None:
        outcome.status, outcome.diverged_at = "diverged", state.diverged_epoch
        outcome.reason = f"loss became NaN or infinite in epoch {state.diverged_epoch}"
    elif state.cancelled:
        outcome.status = "cancelled"
        outcome.reason = f"cancelled while running, after epoch {outcome.completed}"
    outcome.summary = summary(outcome.records, outcome.completed)
    outcome.summary["checkpoint_seconds"] = round(checkpointing, 4)
    if outcome.resumed_from is not None:
        outcome.summary["resumed_from_epoch"] = outcome.resumed_from
    if store is not None and plan.keep_trained_model and outcome.status == "succeeded":
        try:
            outcome.summary["model_bytes"] = save_trained_model(store, plan.run_id, model)
        except Exception as error:  # the run's numbers stand without its file
            log.warning("trained model of run %s not kept: %s", plan.run_id, error)
            outcome.summary["model_not_kept"] = f"{type(error).__name__}: {error}"[:300]
    return outcome


def prepare(
    plan: TrainingPlan, *, cache_dir: Path, fashion_mnist_dir: Path | None = None
) -> tuple[Dataset, Objective, keras.Model]:
    """The run's data (split by its seed, targets as its objective wants them), objective and
    model with the seed's initial weights (Keras is seeded before the model is built)."""
    data = load_dataset(
        plan.dataset,
        seed=plan.seed,
        cache_dir=cache_dir,
        fashion_mnist_dir=fashion_mnist_dir,
        store=plan.store,
        upload=plan.uploads.get(getattr(plan.dataset, "id", None)),
    )
    uploaded = plan.uploads.get(getattr(plan.model, "id", None))
    objective = objective_of(
        plan.task,
        plan.loss,
        data.num_classes,
        model_activation=uploaded.meta.get("output_activation") if uploaded else None,
    )
    data = replace(
        data,
        y_train=objective.targets(data.y_train, data.num_classes),
        y_val=None if data.y_val is None else objective.targets(data.y_val, data.num_classes),
        y_test=None if data.y_test is None else objective.targets(data.y_test, data.num_classes),
    )
    keras.utils.set_random_seed(plan.seed)
    if isinstance(plan.model, UploadedModelSpec):
        if plan.store is None or uploaded is None:
            raise RunFailed("the model is an upload and no artifact store is set")
        model = load_uploaded_model(plan.store, uploaded, weights=plan.model.weights)
    else:
        model = build_model(
            plan.model,
            input_shape=data.input_shape,
            num_classes=objective.outputs,
            activation=objective.final_activation,
        )
    return data, objective, model


def save_trained_model(store: ArtifactStore, run_id: uuid.UUID, model: keras.Model) -> int:
    """The trained model as a `.keras` file in the store (with its optimizer state); its size."""
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / "model.keras"
        model.save(local)
        with local.open("rb") as source:
            store.copy_from_file(trained_model_key(run_id), source)
        return local.stat().st_size


def _test(model: keras.Model, data: Dataset) -> dict[str, float]:
    """The model on the held-out test set."""
    assert data.x_test is not None and data.y_test is not None
    return _measured(model, data.x_test, data.y_test, "test_")


def _measured(
    model: keras.Model, x: np.ndarray, y: np.ndarray, prefix: str = ""
) -> dict[str, float]:
    """The loss and the objective's metrics of the model on (x, y), named with `prefix`."""
    found = model.evaluate(x, y, batch_size=EVAL_BATCH, verbose=0, return_dict=True)
    return {f"{prefix}{name}": float(value) for name, value in found.items()}


def _evaluate(model: keras.Model, data: Dataset) -> dict[str, float]:
    metrics = _measured(model, data.x_train, data.y_train)
    if data.x_val is not None and data.y_val is not None:
        metrics |= _measured(model, data.x_val, data.y_val, "val_")
    return metrics


def _record(
    run_id: uuid.UUID,
    epoch: int,
    metrics: dict[str, float],
    seconds: tuple[float, float],  # training, evaluating
    examples_seen: int,
    steps: int,
    model: keras.Model,
) -> TrainRecord:
    return TrainRecord(
        run_id=run_id,
        epoch=epoch,
        **{
            name: metrics.get(name)
            for measure in MEASURES
            for name in (measure, f"val_{measure}", f"test_{measure}")
        },
        learning_rate=current_learning_rate(model.optimizer),
        epoch_seconds=seconds[0],
        eval_seconds=seconds[1],
        examples_seen=examples_seen,
        time=datetime.now(UTC),
        steps=steps,
    )
