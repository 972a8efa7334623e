"""TensorFlow's "Basic classification" tutorial on the real Fashion-MNIST (Debian's
dataset-fashion-mnist), side by side in one run: a bare `model.fit` as the tutorial writes it,
and the same training as optarena's worker runs it (epoch-0 evaluation, per-epoch
checkpoints, the test set at the end, the trained model kept: the defaults a user gets).
Run: .venv/bin/python benchmarks/fashion_mnist_tutorial.py (CPU TensorFlow, a few minutes)."""

import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.backend import configure_backend

configure_backend("tensorflow", True)

import keras  # noqa: E402

from core.artifacts import ArtifactStore  # noqa: E402
from core.kinds.train.spec import TrainSpec  # noqa: E402
from worker.runs import RunHooks  # noqa: E402
from worker.training.datasets import load_dataset  # noqa: E402
from worker.training.run import TrainingPlan, train  # noqa: E402

SYSTEM = Path("/usr/share/datasets/fashion-mnist")
EPOCHS, BATCH, SEED = 10, 32, 0
JOB = {
    "dataset": {"name": "fashion_mnist", "validation_split": 0.0},
    "model": {"preset": "mlp", "hidden_units": [128], "dropout": 0.0},
    "optimizers": ["adam"],
    "batch_size": BATCH,
    "epochs": EPOCHS,
    "seeds": [SEED],
}


def bare(cache: Path) -> tuple[float, float]:
    """The tutorial's code on the same arrays: seconds of fit, test accuracy."""
    spec = TrainSpec.model_validate(JOB)
    data = load_dataset(spec.dataset, seed=SEED, cache_dir=cache, fashion_mnist_dir=SYSTEM)
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    started = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=EPOCHS, batch_size=BATCH, verbose=0)
    seconds = time.perf_counter() - started
    _, accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
    return seconds, float(accuracy)


def optarena(cache: Path, store: Path) -> tuple[float, float]:
    """The worker's training of the same job: seconds of the whole run (reading the data, the
    epoch-0 evaluation, checkpoints, the test set and saving the model included), test
    accuracy."""
    spec = TrainSpec.model_validate(JOB)
    plan = TrainingPlan(
        run_id=uuid.uuid4(),
        dataset=spec.dataset,
        model=spec.model,
        optimizer=spec.optimizers[0].config,
        batch_size=BATCH,
        epochs=EPOCHS,
        seed=SEED,
        test_epochs=tuple(spec.epochs),
        store=ArtifactStore(str(store)),
    )
    hooks = RunHooks(on_start=lambda sha, env: None, on_records=list, cancel_requested=bool)
    started = time.perf_counter()
    outcome = train(plan, cache_dir=cache, hooks=hooks, fashion_mnist_dir=SYSTEM)
    seconds = time.perf_counter() - started
    return seconds, float(outcome.summary["test"]["accuracy"])


def main() -> None:
    if not SYSTEM.exists():
        sys.exit("install Debian's dataset-fashion-mnist first (scripts/tools does)")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        bare_seconds, bare_accuracy = bare(root / "cache")
        ours_seconds, ours_accuracy = optarena(root / "cache", root / "artifacts")
    print(
        f"Fashion-MNIST, Flatten-Dense(128, relu)-Dense(10), Adam, batch {BATCH}, {EPOCHS} epochs"
    )
    print(f"60,000 training images, tested on the official 10,000; seed {SEED}")
    print(f"{'':<52}{'seconds':>10}{'test accuracy':>16}")
    print(f"{'bare model.fit (the tutorial)':<52}{bare_seconds:>10.1f}{bare_accuracy:>16.4f}")
    print(
        f"{'optarena worker (whole run, defaults)':<52}{ours_seconds:>10.1f}{ours_accuracy:>16.4f}"
    )
    print(f"ratio {ours_seconds / bare_seconds:.2f}x; TensorFlow's tutorial reports about 0.88")


if __name__ == "__main__":
    main()
