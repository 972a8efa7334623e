"""Arms of one seed trained together in one compiled step, for real on digits: each computes
what it computes alone."""

import itertools
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.artifacts import ArtifactStore
from core.kinds.train.records import TrainRecord
from core.kinds.train.spec import TrainSpec
from tests.unit.worker.training.uploads import DATA_ID, MODEL_ID, UPLOADS
from worker.runs import RunHooks, RunOutcome
from worker.training.run import TrainingPlan, fuse_key, train, train_group

# Fused arms run the same operations on the same numbers as lone ones; on CPU with
# deterministic ops they agree bitwise, and the stated tolerance is 1e-6 relative.
FUSED_TOLERANCE = 1e-6
NUMBERS = ("loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
OPTIMIZERS: list[Any] = [
    "adam",
    {"name": "sgd", "momentum": 0.9, "nesterov": True},
    {"name": "rmsprop", "learning_rate": 0.003},
    {
        "name": "adamw",
        "learning_rate": {"schedule": "cosine", "initial_learning_rate": 0.01, "decay_steps": 60},
    },
]


def plan(
    optimizer: Any, tmp_path: Path, *, run_id: uuid.UUID | None = None, **changes: Any
) -> TrainingPlan:
    spec = TrainSpec.model_validate(
        {
            "optimizers": [optimizer],
            "model": {"preset": "mlp", "hidden_units": [32], "dropout": 0.2},
            "dataset": {"name": "digits"},
        }
    )
    fields: dict[str, Any] = {
        "run_id": run_id or uuid.uuid4(),
        "dataset": spec.dataset,
        "model": spec.model,
        "optimizer": spec.optimizers[0].config,
        "batch_size": 48,  # digits' training split is no multiple: a short last batch
        "epochs": 3,
        "seed": 5,
        "test_epochs": (2,),
    }
    return TrainingPlan(**(fields | changes))


def hooks(records: list[TrainRecord], **changes: Any) -> RunHooks:
    fields: dict[str, Any] = {
        "on_start": lambda sha, env: None,
        "on_records": records.extend,
        "cancel_requested": lambda: False,
        "poll_seconds": 0.0,
    }
    return RunHooks(**(fields | changes))


def assert_same(alone: list[TrainRecord], fused: list[TrainRecord]) -> None:
    assert [r.epoch for r in alone] == [r.epoch for r in fused]
    for a, b in zip(alone, fused, strict=True):
        for name in (*NUMBERS, "learning_rate"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), (a.epoch, name)
            if x is not None:
                assert abs(x - y) <= FUSED_TOLERANCE * max(1.0, abs(x)), (a.epoch, name, x, y)


def alone(p: TrainingPlan, tmp_path: Path) -> tuple[RunOutcome, list[TrainRecord]]:
    records: list[TrainRecord] = []
    return train(p, cache_dir=tmp_path, hooks=hooks(records)), records


def test_each_fused_arm_computes_what_it_computes_alone(tmp_path: Path) -> None:
    plans = [plan(optimizer, tmp_path) for optimizer in OPTIMIZERS]
    records: list[list[TrainRecord]] = [[] for _ in plans]
    outcomes = train_group(plans, [hooks(r) for r in records], cache_dir=tmp_path)
    for p, outcome, fused in zip(plans, outcomes, records, strict=True):
        lone, lone_records = alone(p, tmp_path)
        assert outcome.status == lone.status == "succeeded"
        assert outcome.initial_weights_sha256 == lone.initial_weights_sha256
        assert outcome.summary["fused_with"] == len(plans) and lone.summary["fused_with"] == 1
        assert lone_records[-1].test_accuracy is not None
        assert_same(lone_records, fused)
    assert len({r[-1].val_loss for r in records}) == len(plans)  # they did differ


def test_a_diverged_arm_leaves_the_group_and_the_others_go_on(tmp_path: Path) -> None:
    exploding = {"name": "sgd", "learning_rate": 1e12}
    plans = [plan("adam", tmp_path), plan(exploding, tmp_path), plan("rmsprop", tmp_path)]
    records: list[list[TrainRecord]] = [[] for _ in plans]
    outcomes = train_group(plans, [hooks(r) for r in records], cache_dir=tmp_path)
    assert [o.status for o in outcomes] == ["succeeded", "diverged", "succeeded"]
    lone_diverged, lone_records = alone(plans[1], tmp_path)
    assert outcomes[1].diverged_at == lone_diverged.diverged_at == 1
    assert [r.epoch for r in records[1]] == [r.epoch for r in lone_records] == [0]
    for k in (0, 2):
        assert_same(alone(plans[k], tmp_path)[1], records[k])


def test_a_fused_groups_epoch_is_one_write_of_its_training_arms_records(tmp_path: Path) -> None:
    exploding = {"name": "sgd", "learning_rate": 1e12}
    plans = [plan("adam", tmp_path), plan(exploding, tmp_path), plan("rmsprop", tmp_path)]
    each: list[list[TrainRecord]] = [[] for _ in plans]
    writes: list[list[TrainRecord]] = []
    outcomes = train_group(
        plans,
        [hooks(r, on_job_records=lambda found: writes.append(list(found))) for r in each],
        cache_dir=tmp_path,
    )
    assert [o.status for o in outcomes] == ["succeeded", "diverged", "succeeded"]
    assert each == [[], [], []]  # nothing went through an arm's own hook
    # epoch 0 of all three; then the two that train on (the diverged arm reports no epoch 1)
    assert [[(r.run_id, r.epoch) for r in w] for w in writes] == [
        [(plans[0].run_id, 0), (plans[1].run_id, 0), (plans[2].run_id, 0)],
        *([(plans[0].run_id, e), (plans[2].run_id, e)] for e in range(1, plans[0].epochs + 1)),
    ]
    for k, outcome in enumerate(outcomes):
        assert outcome.records == [r for w in writes for r in w if r.run_id == plans[k].run_id]
    assert_same(alone(plans[0], tmp_path)[1], outcomes[0].records)


def test_a_lone_run_reports_through_its_own_hook_even_with_a_job_writer(tmp_path: Path) -> None:
    mine: list[TrainRecord] = []
    writes: list[Any] = []
    outcome = train(
        plan("adam", tmp_path), cache_dir=tmp_path, hooks=hooks(mine, on_job_records=writes.append)
    )
    assert writes == [] and [r.epoch for r in mine] == [0, 1, 2, 3] == [
        r.epoch for r in outcome.records
    ]


def test_a_fused_group_resumes_from_its_checkpoints_as_if_uninterrupted(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    ids = [uuid.uuid4() for _ in OPTIMIZERS[:3]]
    plans = [
        plan(o, tmp_path, run_id=i, store=store, epochs=4)
        for o, i in zip(OPTIMIZERS, ids, strict=False)
    ]
    first: list[list[TrainRecord]] = [[] for _ in plans]
    stopped = train_group(
        plans,
        [hooks(r, hand_back_requested=lambda r=r: r[-1].epoch >= 2) for r in first],
        cache_dir=tmp_path,
    )
    assert [o.status for o in stopped] == ["handed_back"] * 3
    second: list[list[TrainRecord]] = [[] for _ in plans]
    resumed = train_group(plans, [hooks(r) for r in second], cache_dir=tmp_path)
    assert [o.resumed_from for o in resumed] == [2, 2, 2]
    for p, a, b in zip(plans, first, second, strict=True):
        assert_same(alone(replace(p, run_id=uuid.uuid4(), store=None), tmp_path)[1], a + b)


def test_runs_fuse_only_when_all_but_the_optimizer_is_shared(tmp_path: Path) -> None:
    base = plan("adam", tmp_path)
    assert fuse_key(base) == fuse_key(plan({"name": "sgd", "momentum": 0.5}, tmp_path))
    for change in ({"seed": 6}, {"batch_size": 64}, {"epochs": 4}, {"pause_at": (2,)}):
        assert fuse_key(base) != fuse_key(plan("adam", tmp_path, **change))
    with pytest.raises(ValueError, match="fuse key"):
        train_group(
            [base, plan("adam", tmp_path, seed=6)], [hooks([]), hooks([])], cache_dir=tmp_path
        )


def test_arms_of_an_uploaded_model_fuse_though_each_copy_has_the_files_name(
    tmp_path: Path,
) -> None:
    outcomes, records, plans = _uploaded_group(tmp_path, regularized=False)
    assert [o.summary["fused_with"] for o in outcomes] == [2, 2], outcomes
    for p, fused in zip(plans, records, strict=True):
        assert_same(alone(replace(p, run_id=uuid.uuid4()), tmp_path)[1], fused)
    import keras

    assert plans[0].store is not None
    kept = keras.saving.load_model(plans[0].store.path(f"runs/{plans[1].run_id}/model.keras"))
    assert kept.name == "mine" and type(kept.optimizer).__name__ == "Adam"


def test_a_model_with_regularization_trains_each_arm_alone_with_its_whole_loss(
    tmp_path: Path,
) -> None:
    outcomes, records, plans = _uploaded_group(tmp_path, regularized=True)
    assert [o.summary["fused_with"] for o in outcomes] == [1, 1]
    for p, got in zip(plans, records, strict=True):
        assert_same(alone(replace(p, run_id=uuid.uuid4()), tmp_path)[1], got)


def _uploaded_group(
    tmp_path: Path, *, regularized: bool
) -> tuple[list[RunOutcome], list[list[TrainRecord]], list[TrainingPlan]]:
    """Two arms (SGD, Adam) of an uploaded model named "mine", trained as a group."""
    import io

    import keras
    import numpy as np

    from core.architectures import UploadedModelSpec
    from core.datasets import UploadedDatasetSpec

    store = ArtifactStore(str(tmp_path / "artifacts"))
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(
        buffer, x_train=rng.normal(size=(150, 4)).astype("float32"), y_train=np.arange(150) % 3
    )
    store.write_bytes("uploads/datasets/d.npz", buffer.getvalue())
    penalty = keras.regularizers.L2(0.01) if regularized else None
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, kernel_regularizer=penalty),
            keras.layers.Dense(3, activation="softmax"),
        ],
        name="mine",
    )
    model.save(tmp_path / "m.keras")
    store.write_bytes("uploads/models/m.keras", (tmp_path / "m.keras").read_bytes())
    plans = [
        plan(
            optimizer,
            tmp_path,
            dataset=UploadedDatasetSpec(id=DATA_ID),
            model=UploadedModelSpec(id=MODEL_ID, weights="file"),
            store=store,
            uploads=UPLOADS,
            test_epochs=(),
        )
        for optimizer in ("sgd", "adam")
    ]
    records: list[list[TrainRecord]] = [[], []]
    outcomes = train_group(plans, [hooks(r) for r in records], cache_dir=tmp_path)
    return outcomes, records, plans


def test_epochs_shorter_than_the_poll_interval_are_polled_on_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cancel is asked about every poll interval even when each epoch is shorter."""
    from worker.training import callbacks

    now = [100.0]
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: now[0])
    polled: list[float] = []
    driver = callbacks.EpochDriver(
        begin=lambda epoch: None,
        poll=lambda logs: polled.append(now[0]) is not None,
        end=lambda *args: False,
        poll_seconds=1.0,
    )
    for epoch in range(5):  # epochs of 0.6 s: 3 batches of 0.2 s
        driver.on_epoch_begin(epoch)
        for batch in range(3):
            now[0] += 0.2
            driver.on_train_batch_end(batch)
    assert len(polled) >= 3, polled  # 3 s of training, a poll at least each second
    assert all(b - a <= 1.0 + 0.2 + 1e-9 for a, b in itertools.pairwise(polled))


def _small_group(optimizers: list[Any], steps_per_execution: int) -> tuple[Any, Any, Any]:
    """A fused group of one small classifier, an arm for each optimizer, every arm from the
    same initial weights; and 40 examples for it."""
    import keras

    from worker.training.fused import Group
    from worker.training.objective import Objective

    objective = Objective("classification", "sparse_categorical_crossentropy", 10, None)
    models = []
    for _ in optimizers:
        keras.utils.set_random_seed(0)
        models.append(
            keras.Sequential(
                [
                    keras.Input((8,)),
                    keras.layers.Dense(4, activation="relu"),
                    keras.layers.Dense(10),
                ]
            )
        )
    group = Group(models, optimizers, objective, steps_per_execution=steps_per_execution)
    rng = np.random.default_rng(0)
    return group, rng.random((40, 8), dtype=np.float32), rng.integers(0, 10, 40)


@pytest.mark.parametrize("arms", [1, 2])
def test_a_built_group_evaluates_and_trains_without_creating_a_variable(arms: int) -> None:
    """A variable made inside a step's first trace makes tf.function trace it again (a
    fused group's costliest second): `build` makes every one beforehand."""
    keras = pytest.importorskip("keras")
    tf = pytest.importorskip("tensorflow")
    from worker.training.fused import batched

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the double trace is tf.function's")
    group, x, y = _small_group([keras.optimizers.Adam(), keras.optimizers.SGD()][:arms], 4)
    group.build(x, y)
    made: list[str] = []

    def creator(next_creator: Any, **kwargs: Any) -> Any:
        made.append(str(kwargs.get("name")))
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        group.model.evaluate(batched(x, group.targets(y), 16), verbose=0)
        group.model.fit(batched(x, group.targets(y), 16), epochs=1, verbose=0)
    assert made == []


def test_a_fused_group_traces_one_arms_pass_however_many_arms_it_has() -> None:
    """Tracing is most of a fused job's first epoch: one function computes any arm's pass
    from that arm's weights, traced once for the training step and once for evaluation."""
    keras = pytest.importorskip("keras")
    from worker.training.fused import batched

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the shared step is tf.function's")
    optimizers = [keras.optimizers.Adam(), keras.optimizers.SGD(), keras.optimizers.RMSprop()]
    group, x, y = _small_group(optimizers, 2)
    group.build(x, y)
    group.model.evaluate(batched(x, group.targets(y), 20), verbose=0)
    group.model.fit(batched(x, group.targets(y), 20), epochs=2, verbose=0)
    assert group.model.train_arm.experimental_get_tracing_count() == 1
    assert group.model.test_arm.experimental_get_tracing_count() == 1


def test_fused_arms_of_a_conv_net_with_batch_norm_compute_what_they_compute_alone(
    tmp_path: Path,
) -> None:
    """Batch normalization's moving statistics are state the step updates besides the weights
    (as a dropout generator's is): each arm's moves on from its own."""
    layers = {
        "preset": "layers",
        "layers": [
            {"type": "conv2d", "filters": 4},
            {"type": "batch_norm"},
            {"type": "max_pool2d"},
            {"type": "flatten"},
            {"type": "dropout", "rate": 0.2},
        ],
    }
    spec = TrainSpec.model_validate(
        {"optimizers": ["adam"], "model": layers, "dataset": {"name": "digits"}}
    )
    plans = [plan(o, tmp_path, model=spec.model, epochs=2) for o in OPTIMIZERS[:2]]
    records: list[list[TrainRecord]] = [[] for _ in plans]
    outcomes = train_group(plans, [hooks(r) for r in records], cache_dir=tmp_path)
    for p, outcome, fused in zip(plans, outcomes, records, strict=True):
        lone, lone_records = alone(p, tmp_path)
        assert outcome.status == lone.status == "succeeded"
        assert outcome.summary["fused_with"] == 2
        assert_same(lone_records, fused)
    assert records[0][-1].val_loss != records[1][-1].val_loss
