"""The MLflow half of benchmarks/history.py, run by that benchmark with the Python of its own
MLflow virtual environment (MLflow is no dependency of the project): the same history written
and read through an MLflow tracking server. Prints one JSON object of seconds."""

import json
import statistics
import sys
import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def main() -> None:
    url, runs, epochs, chunk, singles = sys.argv[1], *map(int, sys.argv[2:6])
    client = MlflowClient(tracking_uri=url)
    experiment = client.create_experiment(f"history-{time.time_ns()}")
    ids = [client.create_run(experiment).info.run_id for _ in range(runs)]
    now = int(time.time() * 1000)

    def metrics(epoch_range: range) -> list[Metric]:
        return [
            Metric(name, 1.0 / (epoch + 1) + i, now + epoch, epoch)
            for epoch in epoch_range
            for i, name in enumerate(METRICS)
        ]

    # One epoch a call first, on a store not yet loaded (as on optarena's side).
    single = []
    spare = client.create_run(experiment).info.run_id
    for epoch in range(1, singles + 1):
        started = time.perf_counter()
        client.log_batch(spare, metrics=metrics(range(epoch, epoch + 1)))
        single.append(time.perf_counter() - started)

    started = time.perf_counter()
    for run_id in ids:
        for first in range(1, epochs + 1, chunk):
            client.log_batch(run_id, metrics=metrics(range(first, min(first + chunk, epochs + 1))))
    write = time.perf_counter() - started

    started = time.perf_counter()
    points = 0
    for run_id in ids:
        for name in METRICS:
            points += len(client.get_metric_history(run_id, name))
    read = time.perf_counter() - started
    print(
        json.dumps(
            {
                "write_seconds": write,
                "read_seconds": read,
                "points_read": points,
                "one_epoch_ms": 1000 * statistics.median(single),
            }
        )
    )


if __name__ == "__main__":
    main()
