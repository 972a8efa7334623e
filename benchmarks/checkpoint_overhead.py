"""What per-epoch checkpoints cost: seconds per epoch with and without them, side by side, and
what a crash costs with them (the epoch in flight) against without (everything so far).
Run: .venv/bin/python benchmarks/checkpoint_overhead.py (CPU TensorFlow, a few minutes)."""

import itertools
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.backend import configure_backend

configure_backend("tensorflow", True)

from core.artifacts import ArtifactStore, checkpoint_key  # noqa: E402
from core.kinds.train.spec import TrainSpec  # noqa: E402
from worker.runs import RunHooks  # noqa: E402
from worker.training.run import TrainingPlan, train  # noqa: E402

EPOCHS = 6
MODELS = {
    "mlp 128 (digits)": {"preset": "mlp", "hidden_units": [128], "dropout": 0.2},
    "mlp 1024x1024 (digits)": {"preset": "mlp", "hidden_units": [1024, 1024], "dropout": 0.2},
    "cnn 32-64 (digits 8x8)": {"preset": "cnn", "filters": [32, 64], "dense_units": 128},
}


def epoch_seconds(model: dict[str, object], checkpoints: Path | None) -> tuple[float, int]:
    spec = TrainSpec.model_validate({"optimizers": ["adam"], "model": model})
    plan = TrainingPlan(
        run_id=uuid.uuid4(),
        dataset=spec.dataset,
        model=spec.model,
        optimizer=spec.optimizers[0].config,
        batch_size=32,
        epochs=EPOCHS,
        seed=0,
        evaluate_initial=False,
        store=ArtifactStore(str(checkpoints)) if checkpoints else None,
        keep_trained_model=False,
    )
    ends: list[float] = []
    hooks = RunHooks(
        on_start=lambda sha, env: ends.append(time.perf_counter()),
        on_records=lambda records: ends.append(time.perf_counter()),
        cancel_requested=lambda: False,
    )
    with tempfile.TemporaryDirectory() as cache:
        train(plan, cache_dir=Path(cache), hooks=hooks)
    # Epoch n's time runs from the end of epoch n-1's record to the end of epoch n's, so it
    # includes the checkpoint written after epoch n-1; the first epoch (tracing) is left out.
    per_epoch = [b - a for a, b in itertools.pairwise(ends[1:])]
    size = (checkpoints / checkpoint_key(plan.run_id)).stat().st_size if checkpoints else 0
    return statistics.median(per_epoch), size


def main() -> None:
    print(f"Adam, batch 32, {EPOCHS} epochs; median seconds per epoch (first epoch excluded)")
    print(f"{'model':<26}{'no checkpoints':>16}{'checkpoints':>14}{'overhead':>10}{'file':>10}")
    for name, model in MODELS.items():
        baseline, _ = epoch_seconds(model, None)
        with tempfile.TemporaryDirectory() as directory:
            with_checkpoints, size = epoch_seconds(model, Path(directory))
        overhead = (with_checkpoints - baseline) / baseline * 100
        print(
            f"{name:<26}{baseline:>16.3f}{with_checkpoints:>14.3f}{overhead:>9.1f}%"
            f"{size / 1e6:>8.1f} MB"
        )
    print("A crash costs, with checkpoints: the epoch in flight; without: every epoch so far.")


if __name__ == "__main__":
    main()
