"""What the service costs over bare Keras: one run through the worker's service path (claim,
training with a user's defaults: epoch-0 evaluation, validation every epoch, checkpoints, the
test set at the end, every record into Postgres and Redis, the trained model kept, the outcome
stored) beside a bare `model.fit` of the same model, data split, seed and epochs, in one run.

Three bare baselines: `fit` alone, as a tutorial writes it; `fit` with the same validation
data every epoch (the numbers the run records; the like-for-like figure); and that `fit`
compiled with the worker's `steps_per_execution` (what the worker's speed comes from). The
worker is warm: a short run trains first, so no figure pays for importing or tracing.

Run: .venv/bin/python benchmarks/overhead.py (Postgres and Redis as for the tests; Fashion-MNIST
from OPTARENA_FASHION_MNIST_DIR, default Debian's). REPEATS=3 by default; medians are shown."""

import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import speed_noted
from worker.backend import configure_backend

configure_backend(os.environ.get("KERAS_BACKEND", "tensorflow"), True)

import keras  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from api.app import create_app  # noqa: E402
from core.db import make_engine, make_session_factory  # noqa: E402
from core.kinds.train.spec import TrainSpec  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.stream import MetricsStream, make_redis  # noqa: E402
from tests.conftest import (  # noqa: E402
    REDIS_URL,
    add_test_keys,
    auth,
    create_database,
    drop_database,
    migrate,
)
from worker.service import WorkerContext, execute_run  # noqa: E402
from worker.training.datasets import load_dataset  # noqa: E402

FASHION = Path(os.environ.get("OPTARENA_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
REPEATS = int(os.environ.get("REPEATS", "3"))
BATCH, SEED = 32, 0
WORKLOADS: dict[str, dict[str, Any]] = {
    "fashion_mnist": {"dataset": {"name": "fashion_mnist"}, "epochs": 3},
    "digits": {"dataset": {"name": "digits"}, "epochs": 20},
}
MODEL = {"preset": "mlp", "hidden_units": [128], "dropout": 0.0}


def bare(spec: TrainSpec, cache: Path, *, validate: bool, steps_per_execution: int = 1) -> float:
    """The tutorial's model, written by hand, fitted on the run's own split."""
    data = load_dataset(spec.dataset, seed=SEED, cache_dir=cache, fashion_mnist_dir=FASHION)
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(
        [
            keras.Input(data.input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(data.num_classes),
        ]
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    extra: dict[str, Any] = {}
    if validate:
        extra = {"validation_data": (data.x_val, data.y_val), "validation_batch_size": 1024}
    started = time.perf_counter()
    model.fit(
        data.x_train, data.y_train, epochs=spec.max_epochs, batch_size=BATCH, verbose=0, **extra
    )
    return time.perf_counter() - started


def service_run(client: TestClient, ctx: WorkerContext, body: dict[str, Any]) -> float:
    """Submit the job through the API and run its one run through the worker's service path."""
    job = client.post("/jobs", json=body)
    assert job.status_code == 201, job.text
    run_id = uuid.UUID(job.json()["runs"][0]["id"])
    started = time.perf_counter()
    status = execute_run(run_id, ctx)
    seconds = time.perf_counter() - started
    assert status == "succeeded", status
    return seconds


def main() -> None:
    url = create_database("optarena_bench_overhead")
    migrate(url)
    add_test_keys(url)
    root = Path(".data/bench-overhead")
    settings = Settings(
        database_url=url,
        redis_url=REDIS_URL,
        task_queue="optarena.bench",  # nobody consumes it: the benchmark runs the runs
        rate_limit_per_minute=0,
        dataset_cache_dir=root / "datasets",
        artifacts_url=str(root / "artifacts"),
        fashion_mnist_dir=FASHION,
    )
    ctx = WorkerContext(
        settings=settings,
        sessions=make_session_factory(make_engine(url)),
        stream=MetricsStream(make_redis(REDIS_URL), maxlen=100_000, ttl_seconds=600),
    )
    rows = []
    try:
        with TestClient(create_app(settings), headers=auth()) as client:
            common = {"model": MODEL, "optimizers": ["adam"], "batch_size": BATCH, "seeds": [SEED]}
            service_run(client, ctx, common | {"dataset": {"name": "digits"}, "epochs": 1})  # warm
            for name, workload in WORKLOADS.items():
                if (
                    name == "fashion_mnist"
                    and not (FASHION / "train-images-idx3-ubyte.gz").exists()
                ):
                    print(f"skipping {name}: no files in {FASHION}")
                    continue
                body = common | workload
                spec = TrainSpec.model_validate(body)
                times: dict[str, list[float]] = {
                    "bare": [],
                    "bare+val": [],
                    "bare+val+steps": [],
                    "service": [],
                }
                cache, steps = settings.dataset_cache_dir, settings.steps_per_execution
                for _ in range(REPEATS):
                    times["bare"].append(bare(spec, cache, validate=False))
                    times["bare+val"].append(bare(spec, cache, validate=True))
                    times["bare+val+steps"].append(
                        bare(spec, cache, validate=True, steps_per_execution=steps)
                    )
                    times["service"].append(service_run(client, ctx, body))
                median = {k: statistics.median(v) for k, v in times.items()}
                rows.append((f"{name}, {spec.max_epochs} epochs, batch {BATCH}", median))
    finally:
        drop_database("optarena_bench_overhead")
    steps = settings.steps_per_execution
    print(
        f"{'workload':<32}{'bare fit s':>11}{'fit+val s':>11}{f'+{steps} a call s':>15}"
        f"{'service s':>11}{'vs fit':>8}{'vs fit+val':>12}{f'vs +{steps} a call':>16}"
    )
    for label, m in rows:
        print(
            f"{label:<32}{m['bare']:>11.2f}{m['bare+val']:>11.2f}{m['bare+val+steps']:>15.2f}"
            f"{m['service']:>11.2f}{m['service'] / m['bare']:>8.2f}"
            f"{m['service'] / m['bare+val']:>12.2f}{m['service'] / m['bare+val+steps']:>16.2f}"
        )
    print(
        f"(medians of {REPEATS}; {os.cpu_count()} CPUs, backend {keras.backend.backend()}; "
        f"the worker runs {steps} steps a call)"
    )


if __name__ == "__main__":
    with speed_noted():
        main()
