"""The optarena command against the real API and worker, as a user runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import Service

pytestmark = pytest.mark.e2e

OPTARENA = str(Path(sys.executable).parent / "optarena")


def optarena(
    service: Service, *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPTARENA, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={
            **os.environ,
            "OPTARENA_URL": service.url,
            "OPTARENA_API_KEY": service.key,
            "COLUMNS": "200",
        },
    )


def test_submit_with_flags_and_watch_until_the_ranking(service: Service, tmp_path: Path) -> None:
    done = optarena(
        service,
        "submit",
        "--optimizers",
        "sgd,adam,rmsprop",
        "--dataset",
        "digits",
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--watch",
    )
    assert done.returncode == 0, done.stderr
    job_id = done.stderr.split("submitted job ")[1].split()[0]
    assert f"job {job_id} succeeded" in done.stdout
    for arm in ("adam bs=32 epochs=3", "sgd bs=32 epochs=3", "rmsprop bs=32 epochs=3"):
        assert arm in done.stdout
    assert "3/3 epochs" in done.stderr and "val_accuracy" in done.stderr
    assert "no significance can be claimed" in done.stdout

    answer = json.loads(optarena(service, "compare", job_id, "--json").stdout)
    assert [a["label"] for a in answer["ranking"]][-1] == "sgd"
    picture = tmp_path / "curves.png"
    saved = optarena(service, "plot", job_id, "-o", str(picture), "--metric", "val_accuracy")
    assert saved.returncode == 0 and picture.read_bytes().startswith(b"\x89PNG")
    listing = optarena(service, "jobs")
    assert job_id in listing.stdout and "succeeded" in listing.stdout

    refused = optarena(service, "cancel", job_id)
    assert refused.returncode == 1
    assert "error 409" in refused.stderr and "already ended" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_job_file_then_watch_by_id(service: Service) -> None:
    submitted = optarena(service, "submit", "examples/rosenbrock-race.json")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    watched = optarena(service, "watch", job_id)
    assert watched.returncode == 0, watched.stderr
    assert "rosenbrock" in watched.stdout and "momentum" in watched.stdout
    assert "500/500 steps" in watched.stderr


def test_errors_are_the_servers_words_not_tracebacks(service: Service, tmp_path: Path) -> None:
    bad = optarena(service, "submit", "--optimizers", "sgd", "--epochs", "0")
    assert bad.returncode == 1
    assert "error 422: epochs.0: Input should be greater than or equal to 1" in bad.stderr
    unknown = optarena(service, "compare", "00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == 1 and "no job" in unknown.stderr
    broken = tmp_path / "job.json"
    broken.write_text("{not json")
    unreadable = optarena(service, "submit", str(broken))
    assert unreadable.returncode == 2 and "cannot read" in unreadable.stderr
    nowhere = subprocess.run(
        [OPTARENA, "--url", "http://127.0.0.1:9", "jobs"], capture_output=True, text=True
    )
    assert nowhere.returncode == 2 and "cannot reach the optarena API" in nowhere.stderr
    for result in (bad, unknown, unreadable, nowhere):
        assert "Traceback" not in result.stderr


def test_upload_a_dataset_and_a_model_train_them_and_download_the_result(
    service: Service, tmp_path: Path
) -> None:
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    np.savez(tmp_path / "mine.npz", x_train=x, y_train=y)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
    model.save(tmp_path / "linear.keras")

    refused = optarena(service, "datasets", "upload", str(tmp_path / "broken.npz"))
    assert refused.returncode == 1 and "error 422" in refused.stderr
    assert "not an .npz file" in refused.stderr and "Traceback" not in refused.stderr
    made = optarena(service, "datasets", "upload", str(tmp_path / "mine.npz"), "--name", "mine")
    assert made.returncode == 0, made.stderr
    assert "uploaded dataset" in made.stdout and "2 classes" in made.stdout
    dataset_id = made.stdout.split("dataset ")[1].split(":")[0]
    again = optarena(service, "datasets", "upload", str(tmp_path / "mine.npz"))
    assert f"already uploaded dataset {dataset_id}" in again.stdout
    listed = optarena(service, "datasets", "list")
    assert dataset_id in listed.stdout and "fashion_mnist" in listed.stdout
    linear = optarena(service, "models", "upload", str(tmp_path / "linear.keras"))
    assert linear.returncode == 0 and "2 outputs, 14 parameters" in linear.stdout, linear
    model_id = linear.stdout.split("model ")[1].split(":")[0]

    submitted = optarena(
        service,
        "submit",
        "--optimizers",
        "adam",
        "--dataset",
        dataset_id,
        "--model",
        model_id,
        "--epochs",
        "2",
    )
    assert submitted.returncode == 0, submitted.stderr
    done = service.wait(submitted.stdout.strip())
    assert done["status"] == "succeeded", done
    [run] = done["runs"]
    saved = tmp_path / "trained.keras"
    got = optarena(service, "download", run["id"], "-o", str(saved))
    assert got.returncode == 0, got.stderr
    trained = keras.saving.load_model(saved)
    assert trained.count_params() == 14
    assert not np.array_equal(trained.get_weights()[0], model.get_weights()[0])
