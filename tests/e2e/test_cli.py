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
