"""Training runs: plain function in, plain data out; reporting goes through hooks. Runs that
differ only in their optimizer may train together in one compiled step (worker/training/
fused.py), each computing what it would alone."""

import logging
import math
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
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
from worker.runs import RunFailed, RunHooks, RunOutcome, Status
from worker.training import checkpoints
from worker.training.callbacks import EpochDriver, finite
from worker.training.datasets import Dataset, load_dataset
from worker.training.fused import (
    EpochBatches,
    EpochTensors,
    Group,
    batched,
    has_regularization,
)
from worker.training.fused import epoch_order as epoch_order  # where tests look for it
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
    # Training steps in one call of the compiled step (TensorFlow's backend; 1 on the
    # others). Not part of the fingerprint: the numbers are the same for any value (a test
    # checks it), only a cancel is heard up to this many steps later.
    steps_per_execution: int = 1

    def shaping(self) -> dict[str, Any]:
        """Everything that shapes the training."""
        return {
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

    def fingerprint(self) -> str:
        """What a checkpoint belongs to, so one is only loaded into its own run."""
        return checkpoints.fingerprint(self.shaping())


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


def fuse_key(plan: TrainingPlan) -> str:
    """What arms trained together must share: everything that shapes training but the run and
    its optimizer, and the pauses (a group stops as one)."""
    shared = {k: v for k, v in plan.shaping().items() if k not in ("run_id", "optimizer")}
    return checkpoints.fingerprint(shared | {"pause_at": plan.pause_at})


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
    return train_group(
        [plan], [hooks], cache_dir=cache_dir, fashion_mnist_dir=fashion_mnist_dir, fuse_max=1
    )[0]


def train_group(
    plans: Sequence[TrainingPlan],
    hooks: Sequence[RunHooks],
    *,
    cache_dir: Path,
    fashion_mnist_dir: Path | None = None,
    fuse_max: int = 8,
) -> list[RunOutcome]:
    """Train runs that share a `fuse_key` (one seed, data, model, batch size and budget;
    their optimizers differ) together, up to `fuse_max` in one compiled step: each arm
    computes what it would alone (`train` is the group of one) and reports through its own
    hooks. Arms resuming from checkpoints of different epochs train in separate groups."""
    if len({fuse_key(plan) for plan in plans}) != 1:
        raise ValueError("only runs with the same fuse key train together")
    data, objective, uploaded = _materials(
        plans[0], cache_dir=cache_dir, fashion_mnist_dir=fashion_mnist_dir
    )
    arms = [_Arm(plan, hook) for plan, hook in zip(plans, hooks, strict=True)]
    for arm in arms:
        arm.load()
    waiting = list(arms)
    while waiting:
        at = waiting[0].checkpoint.epoch if waiting[0].checkpoint else None
        batch = [
            arm for arm in waiting if (arm.checkpoint.epoch if arm.checkpoint else None) == at
        ][:fuse_max]
        waiting = [arm for arm in waiting if arm not in batch]
        waiting.extend(_train_together(batch, data, objective, uploaded))
    return [arm.outcome for arm in arms]


class _Arm:
    """One run of a group: its plan and hooks, its model and optimizer while it trains, what
    it has reported, and whether it is still training."""

    def __init__(self, plan: TrainingPlan, hooks: RunHooks) -> None:
        self.plan, self.hooks = plan, hooks
        self.checkpoint: checkpoints.Checkpoint | None = None
        self.outcome = RunOutcome("succeeded", 0, "")
        self.active = True
        self.model: keras.Model | None = None
        self.name = ""  # the model's own name (a group renames its models)
        self.optimizer: keras.optimizers.Optimizer | None = None
        self.checkpointing = 0.0  # seconds the training thread spent on checkpoints
        self.fused_with = 1
        self.test_at = {*plan.test_epochs, plan.epochs} if plan.evaluate_test else set[int]()

    def load(self) -> None:
        store = self.plan.store
        if store is not None:
            self.checkpoint = checkpoints.load(
                store, checkpoint_key(self.plan.run_id), belongs_to=self.plan.fingerprint()
            )

    def end(self, status: Status, reason: str | None = None, at: int | None = None) -> None:
        self.active = False
        self.outcome.status, self.outcome.reason = status, reason
        if at is not None:
            self.outcome.diverged_at = at


def _train_together(
    arms: list[_Arm], data: Dataset, objective: Objective, uploaded: Stored | None
) -> list[_Arm]:
    """Train these arms (all resuming from the same epoch, or none) to their budget in one
    group; the arms whose checkpoint did not fit after all come back, to start over."""
    for arm in arms:
        arm.model = _initial_model(arm.plan, data, objective, uploaded)
        arm.name = arm.model.name
        arm.optimizer = build_optimizer(arm.plan.optimizer)
        arm.outcome.initial_weights_sha256 = weights_sha256(arm.model)
    if len(arms) > 1 and has_regularization(arms[0].model):
        # a fused arm's loss would leave its regularization out: each trains alone
        return [late for arm in arms for late in _train_together([arm], data, objective, uploaded)]
    group = _group(arms, objective)
    group.build(data.x_train, data.y_train)
    refused = []
    for arm in arms:
        assert arm.model is not None
        if arm.checkpoint is None:
            continue
        if checkpoints.restore(arm.model, arm.checkpoint, arm.optimizer):
            arm.outcome.records = list(arm.checkpoint.records)
            arm.outcome.completed = arm.outcome.resumed_from = arm.checkpoint.epoch
        else:
            arm.checkpoint = None
            refused.append(arm)
    if refused:
        rest = [arm for arm in arms if arm not in refused]
        return refused + (_train_together(rest, data, objective, uploaded) if rest else [])
    for arm in arms:
        arm.fused_with = len(arms)
        arm.hooks.on_start(arm.outcome.initial_weights_sha256, describe_environment())
        if arm.outcome.resumed_from in arm.plan.pause_at and arm.plan.store is not None:
            arm.end("paused")  # stopped there before its group's decision was taken
    if any(arm.active for arm in arms):
        _fit(arms, group, data, objective)
    for arm in arms:
        _conclude(arm)
    return []


def _group(arms: list[_Arm], objective: Objective) -> Group:
    """The arms' models compiled as one, several steps a call where the backend allows."""
    steps = arms[0].plan.steps_per_execution if _tensorflow() else 1
    return Group(
        [a.model for a in arms], [a.optimizer for a in arms], objective, steps_per_execution=steps
    )


def _tensorflow() -> bool:
    return bool(keras.backend.backend() == "tensorflow")


def _fit(arms: list[_Arm], group: Group, data: Dataset, objective: Objective) -> None:
    """Fit the arms from where they stand to the budget; when some leave the group
    (diverged, cancelled, superseded) the rest go on in a new group from the next epoch."""
    plan = arms[0].plan
    writer = checkpoints.Writer()
    try:
        if plan.evaluate_initial and all(arm.outcome.resumed_from is None for arm in arms):
            _report_initial(arms, group, data)
        while True:
            if len(group) != len(arms):
                group = _group(arms, objective)
                group.build(data.x_train, data.y_train)
            _fit_epochs(arms, group, data, plan, writer, first_epoch=arms[0].outcome.completed)
            arms = [arm for arm in arms if arm.active and arm.outcome.completed < plan.epochs]
            if not arms:
                break
    finally:
        writer.close()


def _report_initial(arms: list[_Arm], group: Group, data: Dataset) -> None:
    started = time.perf_counter()
    found = _measured(group, data.x_train, data.y_train)
    if data.x_val is not None and data.y_val is not None:
        val = _measured(group, data.x_val, data.y_val)
        found = [f | {f"val_{k}": v for k, v in g.items()} for f, g in zip(found, val, strict=True)]
    seconds = time.perf_counter() - started
    _report(
        [
            (arm, _record(arm, 0, m, (0.0, seconds), data))
            for arm, m in zip(arms, found, strict=True)
        ]
    )


def _fit_epochs(
    arms: list[_Arm],
    group: Group,
    data: Dataset,
    plan: TrainingPlan,
    writer: checkpoints.Writer,
    *,
    first_epoch: int,
) -> None:
    # The epoch's batches: in the graph on TensorFlow's backend, from Python on the others.
    source: EpochTensors | EpochBatches
    if _tensorflow():
        source = EpochTensors(
            data.x_train, data.y_train, seed=plan.seed, batch_size=plan.batch_size, arms=len(group)
        )
    else:
        source = EpochBatches(
            data.x_train,
            data.y_train,
            seed=plan.seed,
            batch_size=plan.batch_size,
            arms=len(group),
            first_epoch=first_epoch + 1,
        )

    def poll(logs: dict[str, Any]) -> bool:
        """Mid-epoch: a lone arm stops at once on a loss that is not finite; any arm stops at
        once on cancel. True when none is left training."""
        for k, arm in enumerate(arms):
            if not arm.active:
                continue
            loss = group.arm_logs(logs, k).get("loss")
            if loss is not None and not finite(loss):
                arm.end("diverged", _diverged(epoch["now"]), at=epoch["now"])
            elif arm.hooks.cancel_requested():
                arm.end("cancelled", _cancelled(arm))
        return not any(arm.active for arm in arms)

    epoch = {"now": first_epoch}

    def begin(e: int) -> None:
        epoch["now"] = e
        if isinstance(source, EpochTensors):
            source.begin(e)

    def end(e: int, logs: dict[str, Any], train_seconds: float, eval_seconds: float) -> bool:
        started = time.perf_counter()
        writer.wait()  # the last epoch's checkpoints: at most one epoch's in flight
        waited = time.perf_counter() - started
        for arm in arms:
            arm.checkpointing += waited
        test = [arm for arm in arms if arm.active and e in arm.test_at]
        tested: list[dict[str, float]] = []
        extra = 0.0
        if test and data.x_test is not None:
            started = time.perf_counter()
            tested = _measured(group, data.x_test, data.y_test)  # type: ignore[arg-type]
            extra = time.perf_counter() - started
        reports: list[tuple[_Arm, TrainRecord]] = []
        for k, arm in enumerate(arms):
            if not arm.active:
                continue
            metrics = {
                name: float(np.asarray(value)) for name, value in group.arm_logs(logs, k).items()
            } | {
                f"val_{name}": float(np.asarray(value))
                for name, value in group.arm_logs(logs, k, "val_").items()
            }
            if not all(finite(metrics.get(name, 0.0)) for name in ("loss", "val_loss")):
                arm.end("diverged", _diverged(e), at=e)
                continue
            if tested and e in arm.test_at:
                metrics |= {f"test_{name}": value for name, value in tested[k].items()}
            seconds = (train_seconds, eval_seconds + extra)
            reports.append((arm, _record(arm, e, metrics, seconds, data)))
        _report(reports, writer)
        return _after_epoch(arms, e, plan, writer)

    driver = EpochDriver(begin=begin, poll=poll, end=end, poll_seconds=arms[0].hooks.poll_seconds)
    validation: Any = None
    if data.x_val is not None and data.y_val is not None:
        validation = _evaluation(group, data.x_val, data.y_val)
    fed: dict[str, Any] = (
        {"x": source.dataset}
        if isinstance(source, EpochTensors)
        else {"x": source, "steps_per_epoch": source.steps}
    )
    group.model.fit(
        **fed,
        shuffle=False,
        epochs=plan.epochs,
        initial_epoch=first_epoch,
        validation_data=validation,
        validation_batch_size=None if _tensorflow() else EVAL_BATCH,
        callbacks=[driver],
        verbose=0,
    )


def _after_epoch(arms: list[_Arm], e: int, plan: TrainingPlan, writer: checkpoints.Writer) -> bool:
    """What ends the fit after epoch e: a pause or a hand-back (every arm, once its checkpoint
    is written), or an arm that left the group (the others go on without it)."""
    store = plan.store
    if e < plan.epochs and store is not None and e in plan.pause_at:
        writer.wait()
        for arm in arms:
            if arm.active:
                arm.end("paused")
        return True
    active = [arm for arm in arms if arm.active]
    if active and e < plan.epochs and active[0].hooks.hand_back_requested():
        writer.wait()
        for arm in active:
            arm.end("handed_back")
        return True
    for arm in active:
        if arm.hooks.cancel_requested() and len(arms) > 1:
            arm.end("cancelled", _cancelled(arm))
    return any(not arm.active for arm in arms) and e < plan.epochs


def _cancelled(arm: _Arm) -> str:
    return f"cancelled while running, after epoch {arm.outcome.completed}"


def _diverged(epoch: int) -> str:
    return f"loss became NaN or infinite in epoch {epoch}"


def _record(
    arm: _Arm, epoch: int, metrics: dict[str, float], seconds: tuple[float, float], data: Dataset
) -> TrainRecord:
    """The arm's record of the epoch."""
    plan = arm.plan
    n_train = len(data.x_train)
    assert arm.optimizer is not None
    return TrainRecord(
        run_id=plan.run_id,
        epoch=epoch,
        **{
            name: metrics.get(name)
            for measure in MEASURES
            for name in (measure, f"val_{measure}", f"test_{measure}")
        },
        learning_rate=current_learning_rate(arm.optimizer),
        epoch_seconds=seconds[0],
        eval_seconds=seconds[1],
        examples_seen=epoch * n_train,
        time=datetime.now(UTC),
        steps=epoch * math.ceil(n_train / plan.batch_size),
    )


def _report(
    reports: Sequence[tuple[_Arm, TrainRecord]], writer: checkpoints.Writer | None = None
) -> None:
    """The arms' records of an epoch, stored in one call when there are several and their
    hooks can store for the whole job (each through its own hooks otherwise), then each
    arm's checkpoint written in the background (the next epoch trains meanwhile): every
    record is stored before its checkpoint is written."""
    together = reports[0][0].hooks.on_job_records if reports else None
    if len(reports) > 1 and together is not None:
        together([record for _, record in reports])
    else:
        for arm, record in reports:
            arm.hooks.on_records([record])
    for arm, record in reports:
        arm.outcome.records.append(record)
        arm.outcome.completed = record.epoch
        plan = arm.plan
        if writer is not None and plan.store is not None:
            assert arm.optimizer is not None and arm.model is not None
            started = time.perf_counter()
            state = checkpoints.snapshot(
                epoch=record.epoch,
                model=arm.model,
                optimizer=arm.optimizer,
                records=arm.outcome.records,
                belongs_to=plan.fingerprint(),
            )
            writer.submit(plan.store, checkpoint_key(plan.run_id), state)
            arm.checkpointing += time.perf_counter() - started


def _conclude(arm: _Arm) -> None:
    """The arm's summary, and its trained model kept when it succeeded."""
    plan, outcome = arm.plan, arm.outcome
    outcome.summary = summary(outcome.records, outcome.completed)
    outcome.summary["checkpoint_seconds"] = round(arm.checkpointing, 4)
    outcome.summary["fused_with"] = arm.fused_with
    if outcome.resumed_from is not None:
        outcome.summary["resumed_from_epoch"] = outcome.resumed_from
    store = plan.store
    if store is not None and plan.keep_trained_model and outcome.status == "succeeded":
        try:
            assert arm.model is not None
            if arm.fused_with > 1:  # saved with its own optimizer and name, as a lone run is
                arm.model.name = arm.name
                arm.model.compile(optimizer=arm.optimizer, loss=None)
            outcome.summary["model_bytes"] = save_trained_model(store, plan.run_id, arm.model)
        except Exception as error:  # the run's numbers stand without its file
            log.warning("trained model of run %s not kept: %s", plan.run_id, error)
            outcome.summary["model_not_kept"] = f"{type(error).__name__}: {error}"[:300]


def prepare(
    plan: TrainingPlan, *, cache_dir: Path, fashion_mnist_dir: Path | None = None
) -> tuple[Dataset, Objective, keras.Model]:
    """The run's data (split by its seed, targets as its objective wants them), objective and
    model with the seed's initial weights (Keras is seeded before the model is built)."""
    data, objective, uploaded = _materials(
        plan, cache_dir=cache_dir, fashion_mnist_dir=fashion_mnist_dir
    )
    return data, objective, _initial_model(plan, data, objective, uploaded)


def _materials(
    plan: TrainingPlan, *, cache_dir: Path, fashion_mnist_dir: Path | None = None
) -> tuple[Dataset, Objective, Stored | None]:
    """The run's data (split by its seed, targets as its objective wants them), its objective
    and the model upload it names."""
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
    return data, objective, uploaded


def _initial_model(
    plan: TrainingPlan, data: Dataset, objective: Objective, uploaded: Stored | None
) -> keras.Model:
    """The model with the seed's initial weights and dropout generators: Keras is seeded right
    before it is built, so every arm of the seed gets the same."""
    keras.utils.set_random_seed(plan.seed)
    if isinstance(plan.model, UploadedModelSpec):
        if plan.store is None or uploaded is None:
            raise RunFailed("the model is an upload and no artifact store is set")
        return load_uploaded_model(plan.store, uploaded, weights=plan.model.weights)
    return build_model(
        plan.model,
        input_shape=data.input_shape,
        num_classes=objective.outputs,
        activation=objective.final_activation,
    )


def save_trained_model(store: ArtifactStore, run_id: uuid.UUID, model: keras.Model) -> int:
    """The trained model as a `.keras` file in the store (with its optimizer state); its size."""
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / "model.keras"
        model.save(local)
        with local.open("rb") as source:
            store.copy_from_file(trained_model_key(run_id), source)
        return local.stat().st_size


def _measured(group: Group, x: np.ndarray, y: np.ndarray) -> list[dict[str, float]]:
    """Each arm's loss and metrics on (x, y), in one pass of the group."""
    if _tensorflow():
        found = group.model.evaluate(_evaluation(group, x, y), verbose=0, return_dict=True)
    else:
        found = group.model.evaluate(
            x, group.targets(y), batch_size=EVAL_BATCH, verbose=0, return_dict=True
        )
    return [
        {name: float(np.asarray(value)) for name, value in group.arm_logs(found, k).items()}
        for k in range(len(group))
    ]


def _evaluation(group: Group, x: np.ndarray, y: np.ndarray) -> Any:
    """(x, y) as evaluate and fit's validation take it, in batches of EVAL_BATCH in order: on
    TensorFlow's backend a plain tf.data pipeline (the one Keras builds from arrays at every
    call costs more than evaluating a small set); on the others the arrays."""
    if _tensorflow():
        return batched(x, group.targets(y), EVAL_BATCH)
    return (x, group.targets(y))
