"""Arms fused into one compiled step against the same arms trained one by one, in one run:
K = 1, 2, 4, 8 arms of one seed and batch size (eight different optimizer configurations),
digits, an MLP with dropout, checkpoints on, as the worker trains them. For each K: seconds one
by one, seconds fused, fused seconds over one arm's, a fused epoch's training time over one
arm's past the first epoch (which traces the step), and the largest relative difference
between any fused arm's records and its solo run's (0 is bitwise).

Run: .venv/bin/python benchmarks/fused.py (no services needed). On the device machine:
KERAS_BACKEND=jax, the same command. EPOCHS=10 and BATCH=32 by default; steps a call as the
worker's settings say (OPTARENA_STEPS_PER_EXECUTION). Then PAIRS (5) pairs of one arm and 8
fused arms, each pair back to back, and the median of their ratios: the figure of the goal,
steadier than the table's single runs on a machine whose speed swings."""

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import speed_noted
from worker.backend import configure_backend, describe_environment

configure_backend(os.environ.get("KERAS_BACKEND", "tensorflow"), True)

from core.artifacts import ArtifactStore  # noqa: E402
from core.kinds.train.records import TrainRecord  # noqa: E402
from core.kinds.train.spec import TrainSpec  # noqa: E402
from core.settings import Settings  # noqa: E402
from worker.runs import RunHooks  # noqa: E402
from worker.training.run import TrainingPlan, train, train_group  # noqa: E402

EPOCHS = int(os.environ.get("EPOCHS", "10"))
BATCH = int(os.environ.get("BATCH", "32"))
STEPS = Settings().steps_per_execution
PAIRS = int(os.environ.get("PAIRS", "5"))
OPTIMIZERS: list[Any] = [
    "adam",
    {"name": "sgd", "momentum": 0.9},
    "rmsprop",
    "adamw",
    "nadam",
    {"name": "lion", "learning_rate": 1e-4},
    "adagrad",
    "sgd",
]
NUMBERS = ("loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")


def plans(k: int, store: ArtifactStore) -> list[TrainingPlan]:
    spec = TrainSpec.model_validate(
        {
            "dataset": {"name": "digits"},
            "model": {"preset": "mlp", "hidden_units": [128], "dropout": 0.2},
            "optimizers": OPTIMIZERS[:k],
            "epochs": EPOCHS,
            "batch_size": BATCH,
        }
    )
    return [
        TrainingPlan(
            run_id=uuid.uuid4(),
            dataset=spec.dataset,
            model=spec.model,
            optimizer=optimizer.config,
            batch_size=BATCH,
            epochs=EPOCHS,
            seed=0,
            test_epochs=tuple(spec.epochs),
            store=store,
            steps_per_execution=STEPS,
        )
        for optimizer in spec.optimizers
    ]


def hooks(records: list[TrainRecord]) -> RunHooks:
    return RunHooks(
        on_start=lambda sha, env: None, on_records=records.extend, cancel_requested=bool
    )


def difference(a: list[TrainRecord], b: list[TrainRecord]) -> float:
    assert [r.epoch for r in a] == [r.epoch for r in b]
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        for name in NUMBERS:
            u, v = getattr(x, name), getattr(y, name)
            if u is not None and v is not None:
                worst = max(worst, abs(u - v) / max(1.0, abs(u)))
    return worst


def steady_epoch(records: list[TrainRecord]) -> float:
    """The median training seconds of an epoch after the first (which traces the step)."""
    return statistics.median(r.epoch_seconds for r in records if r.epoch >= 2)


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        cache, store = Path(scratch, "cache"), ArtifactStore(str(Path(scratch, "artifacts")))
        train(plans(1, store)[0], cache_dir=cache, hooks=hooks([]))  # warm: imports, tracing
        solo: list[tuple[float, list[TrainRecord]]] = []
        for plan in plans(8, store):
            records: list[TrainRecord] = []
            started = time.perf_counter()
            train(plan, cache_dir=cache, hooks=hooks(records))
            solo.append((time.perf_counter() - started, records))
        one, one_epoch = solo[0][0], steady_epoch(solo[0][1])
        print(f"digits MLP-128 dropout 0.2, batch {BATCH}, {EPOCHS} epochs, {STEPS} steps a call")
        print(describe_environment())
        print(
            f"{'arms':>5}{'one by one s':>14}{'fused s':>10}{'fused / one arm':>17}"
            f"{'one by one / fused':>20}{'epoch / one arm':>17}{'max rel diff vs solo':>22}"
        )
        for k in (1, 2, 4, 8):
            grouped: list[list[TrainRecord]] = [[] for _ in range(k)]
            started = time.perf_counter()
            train_group(plans(k, store), [hooks(r) for r in grouped], cache_dir=cache)
            fused = time.perf_counter() - started
            serial = sum(seconds for seconds, _ in solo[:k])
            worst = max(difference(solo[i][1], grouped[i]) for i in range(k))
            print(
                f"{k:>5}{serial:>14.2f}{fused:>10.2f}{fused / one:>17.2f}"
                f"{serial / fused:>20.2f}{steady_epoch(grouped[0]) / one_epoch:>17.2f}"
                f"{worst:>22.3g}"
            )
        print(
            "epoch / one arm: a fused epoch's training seconds over one arm's, past the first "
            "epoch (whose tracing of the step grows with the arms)"
        )
        # This machine's speed swings within a minute (CPU steal): one arm and the 8 fused,
        # each pair run back to back, and the median of the pairs' ratios
        ratios = []
        for _ in range(PAIRS):
            started = time.perf_counter()
            train(plans(1, store)[0], cache_dir=cache, hooks=hooks([]))
            alone = time.perf_counter() - started
            started = time.perf_counter()
            train_group(plans(8, store), [hooks([]) for _ in range(8)], cache_dir=cache)
            ratios.append((time.perf_counter() - started) / alone)
        print(
            f"8 fused / one arm, {PAIRS} pairs back to back: median "
            f"{statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)})"
        )


if __name__ == "__main__":
    with speed_noted():
        main()
