"""The worker's training path on whatever device Keras sees (the GPU machine runs it with
KERAS_BACKEND=jax), side by side in one run with a bare `model.fit` of the same data:

- seconds of a whole worker run (epoch-0 evaluation, checkpoints, the test set, the trained
  model kept: a user's defaults) against a bare fit, and the test accuracy of each;
- the same run twice: the largest relative difference between their records (0 is bitwise);
- a run paused after an epoch and resumed from its checkpoint, as at a tuning job's rung,
  against the uninterrupted run: the largest relative difference.

Run: .venv/bin/python benchmarks/worker_on_device.py (CPU TensorFlow here). Datasets: digits,
and Fashion-MNIST where its files are (OPTARENA_FASHION_MNIST_DIR, default Debian's)."""

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.backend import configure_backend, describe_environment

configure_backend(os.environ.get("KERAS_BACKEND", "tensorflow"), True)

import keras  # noqa: E402

from core.artifacts import ArtifactStore  # noqa: E402
from core.kinds.train.spec import TrainSpec  # noqa: E402
from worker.runs import RunHooks  # noqa: E402
from worker.training.datasets import load_dataset  # noqa: E402
from worker.training.run import TrainingPlan, train  # noqa: E402

FASHION = Path(os.environ.get("OPTARENA_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
NUMBERS = ("loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
WORKLOADS: dict[str, dict[str, Any]] = {
    "digits": {
        "dataset": {"name": "digits"},
        "model": {"preset": "mlp", "hidden_units": [128], "dropout": 0.2},
        "epochs": int(os.environ.get("DIGITS_EPOCHS", "20")),
    },
    "fashion_mnist": {
        "dataset": {"name": "fashion_mnist", "validation_split": 0.1},
        "model": {"preset": "mlp", "hidden_units": [128], "dropout": 0.0},
        "epochs": int(os.environ.get("FASHION_EPOCHS", "3")),
    },
}
BATCH, SEED = 32, 0


def bare(spec: TrainSpec, cache: Path) -> tuple[float, float]:
    """A hand-written Keras model of the same shape, fitted on the same arrays."""
    data = load_dataset(spec.dataset, seed=SEED, cache_dir=cache, fashion_mnist_dir=FASHION)
    keras.utils.set_random_seed(SEED)
    hidden = spec.model.hidden_units  # type: ignore[union-attr]
    model = keras.Sequential(
        [
            keras.Input(data.input_shape),
            keras.layers.Flatten(),
            *[keras.layers.Dense(units, activation="relu") for units in hidden],
            keras.layers.Dense(data.num_classes),
        ]
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    started = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=spec.max_epochs, batch_size=BATCH, verbose=0)
    seconds = time.perf_counter() - started
    _, accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
    return seconds, float(accuracy)


def worker_run(
    spec: TrainSpec, cache: Path, store: Path, run_id: uuid.UUID, pause_at: tuple[int, ...] = ()
) -> tuple[float, Any]:
    plan = TrainingPlan(
        run_id=run_id,
        dataset=spec.dataset,
        model=spec.model,
        optimizer=spec.optimizers[0].config,
        batch_size=BATCH,
        epochs=spec.max_epochs,
        seed=SEED,
        test_epochs=tuple(spec.epochs),
        store=ArtifactStore(str(store)),
        pause_at=pause_at,
    )
    hooks = RunHooks(on_start=lambda sha, env: None, on_records=list, cancel_requested=bool)
    started = time.perf_counter()
    outcome = train(plan, cache_dir=cache, hooks=hooks, fashion_mnist_dir=FASHION)
    return time.perf_counter() - started, outcome


def difference(a: list[Any], b: list[Any]) -> float:
    """The largest relative difference between two runs' records (they must align)."""
    assert [r.epoch for r in a] == [r.epoch for r in b], "the runs' epochs differ"
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        for name in NUMBERS:
            u, v = getattr(x, name), getattr(y, name)
            if u is None or v is None:
                assert u is v, name
                continue
            worst = max(worst, abs(u - v) / max(1.0, abs(v)))
    return worst


def main() -> None:
    environment = describe_environment()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for name, workload in WORKLOADS.items():
            if name == "fashion_mnist" and not (FASHION / "train-images-idx3-ubyte.gz").exists():
                print(f"skipping {name}: no files in {FASHION}")
                continue
            spec = TrainSpec.model_validate(
                {**workload, "optimizers": ["adam"], "batch_size": BATCH, "seeds": [SEED]}
            )
            cache, store = root / "cache", root / name
            bare_seconds, bare_accuracy = bare(spec, cache)
            seconds, first = worker_run(spec, cache, store, uuid.uuid4())
            again_seconds, again = worker_run(spec, cache, store, uuid.uuid4())
            rung = max(1, spec.max_epochs // 2)
            paused_id = uuid.uuid4()
            _, paused = worker_run(spec, cache, store, paused_id, pause_at=(rung,))
            assert paused.status == "paused" and paused.completed == rung, paused.status
            _, resumed = worker_run(spec, cache, store, paused_id)
            assert resumed.resumed_from == rung
            rows.append(
                {
                    "workload": f"{name}, {spec.max_epochs} epochs",
                    "bare_fit_seconds": round(bare_seconds, 2),
                    "bare_test_accuracy": round(bare_accuracy, 4),
                    "worker_seconds": round(seconds, 2),
                    "worker_seconds_again": round(again_seconds, 2),
                    "worker_test_accuracy": round(first.summary["test"]["accuracy"], 4),
                    "ratio": round(seconds / bare_seconds, 2),
                    "same_run_twice_max_rel_diff": difference(first.records, again.records),
                    "paused_at": rung,
                    "paused_resumed_max_rel_diff": difference(first.records, resumed.records),
                }
            )
    print(json.dumps({"environment": environment, "xla_flags": os.environ.get("XLA_FLAGS")}))
    header = (
        f"{'workload':<26}{'bare fit s':>11}{'worker s':>10}{'ratio':>7}{'bare acc':>10}"
        f"{'worker acc':>11}{'twice: max diff':>17}{'pause+resume: max diff':>24}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['workload']:<26}{r['bare_fit_seconds']:>11.2f}{r['worker_seconds']:>10.2f}"
            f"{r['ratio']:>7.2f}{r['bare_test_accuracy']:>10.4f}{r['worker_test_accuracy']:>11.4f}"
            f"{r['same_run_twice_max_rel_diff']:>17.3g}{r['paused_resumed_max_rel_diff']:>24.3g}"
        )
    out = os.environ.get("OUT")
    if out:
        tag = os.environ.get("RUN_TAG", "")
        name = f"worker_on_device_{environment.get('backend')}{'_' + tag if tag else ''}.json"
        Path(out, name).write_text(json.dumps({"environment": environment, "rows": rows}))


if __name__ == "__main__":
    main()
