"""The notebook client and the exports against the real API and worker: a virtual environment
with only `pip install ./client[pandas]`, TensorBoard files read back with tbparse, and a real
MLflow tracking server."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, install, make_venv, wait_for
from tests.e2e.conftest import Service, free_port
from tests.mlflow_server import mlflow_server

pytestmark = pytest.mark.e2e

OPTARENA = str(Path(sys.executable).parent / "optarena")
CLIENT_VENV = ROOT / ".data" / "venv-client"
JOB = {
    "name": "client e2e",
    "dataset": {"name": "digits"},
    "optimizers": ["sgd", {"name": "adam", "learning_rate": 0.003}],
    "epochs": 2,
    "batch_size": 64,
    "seeds": [0, 1],
}

NOTEBOOK = """
import importlib.util, json, sys
from optarena_client import Client

for server_side in ("sqlalchemy", "celery", "tensorflow", "keras", "core", "api", "worker"):
    assert importlib.util.find_spec(server_side) is None, server_side

client = Client()  # OPTARENA_URL and OPTARENA_API_KEY
job = client.submit(json.loads(sys.argv[1]))
done = client.wait(job)
frame = client.metrics(job)
ranking = client.comparison(job, metric="val_accuracy").ranking_frame()
wanted = {"rank", "label", "ranked_value_mean", "ranked_value_ci_low", "test_mean"}
assert wanted <= set(ranking.columns), ranking.columns
picture = client.plot(job, metric="val_accuracy")
picture.save(sys.argv[2])
means = frame[frame.epoch == 2].groupby("label").val_accuracy.mean()
print(json.dumps({
    "status": done["status"],
    "rows": len(frame),
    "columns": sorted(frame.columns),
    "seeds": sorted(frame.seed.unique().tolist()),
    "ranking": ranking.label.tolist(),
    "means": means.to_dict(),
    "png": picture._repr_png_()[:4].hex(),
    "python": sys.version_info[:2],
}))
"""


def client_python() -> Path:
    """A virtual environment of the client alone (no --system-site-packages), made again when
    the client's metadata changes; the client itself is reinstalled each time."""
    python = CLIENT_VENV / "bin" / "python"
    stamp = CLIENT_VENV / ".installed"
    want = hashlib.sha256((ROOT / "client" / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != want:
        make_venv(CLIENT_VENV, f"{ROOT / 'client'}[pandas]")
        stamp.write_text(want)
    else:
        install(python, str(ROOT / "client"), reinstall=True)
    return python


def as_user(service: Service) -> dict[str, str]:
    return {**os.environ, "OPTARENA_URL": service.url, "OPTARENA_API_KEY": service.key}


@pytest.fixture(scope="module")
def finished(service: Service) -> dict[str, Any]:
    job = service.submit({**JOB, "name": "export e2e"})
    done = service.wait(job["id"])
    assert done["status"] == "succeeded", done
    return done


def records(service: Service, job_id: str) -> list[dict[str, Any]]:
    page = service.http.get(f"/jobs/{job_id}/metrics", params={"limit": 10_000}).json()
    return list(page["items"])


def test_a_notebook_script_runs_with_only_the_client_installed(
    service: Service, tmp_path: Path
) -> None:
    python = client_python()
    picture = tmp_path / "curves.png"
    ran = subprocess.run(
        [str(python), "-c", NOTEBOOK, json.dumps(JOB), str(picture)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**as_user(service), "PYTHONPATH": "", "COLUMNS": "200"},
        cwd=tmp_path,  # not the checkout: nothing of the server importable from the cwd
    )
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout.strip().splitlines()[-1])
    assert found["status"] == "succeeded"
    assert found["rows"] == 2 * 2 * 3  # arms x seeds x (epoch 0 evaluation + 2 epochs)
    assert {"label", "arm", "seed", "batch_size", "epoch", "val_accuracy", "cursor"} <= set(
        found["columns"]
    )
    assert found["seeds"] == [0, 1]
    assert sorted(found["ranking"]) == ["adam(lr=0.003)", "sgd"]
    assert found["png"] == b"\x89PNG".hex() and picture.read_bytes().startswith(b"\x89PNG")
    assert "2/2 epochs" in ran.stderr  # the progress bars, on stderr
    elsewhere = subprocess.run(
        [str(python.parent / "optarena"), "keys", "create", "--owner", "x"],
        capture_output=True,
        text=True,
        env={**as_user(service), "COLUMNS": "200"},
    )  # the server's command, absent here, says where to run it
    assert elsewhere.returncode == 2 and "comes with the server" in elsewhere.stderr
    job_id = service.http.get("/jobs", params={"limit": 1}).json()["items"][0]["id"]
    stored = [r for r in records(service, job_id) if r["epoch"] == 2]
    runs = {r["id"]: r["label"] for r in service.http.get(f"/jobs/{job_id}").json()["runs"]}
    for label, mean in found["means"].items():
        mine = [r["val_accuracy"] for r in stored if runs[r["run_id"]] == label]
        assert mean == pytest.approx(sum(mine) / len(mine), rel=1e-12)


def test_export_to_tensorboard_reads_back_with_tbparse(
    service: Service, finished: dict[str, Any], tmp_path: Path
) -> None:
    from tbparse import SummaryReader

    logdir = tmp_path / "tb"
    made = subprocess.run(
        [OPTARENA, "export", finished["id"], "--tensorboard", str(logdir)],
        capture_output=True,
        text=True,
        env=as_user(service),
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    assert "wrote 4 runs" in made.stdout
    reader = SummaryReader(str(logdir), extra_columns={"dir_name"})
    scalars, hparams = reader.scalars, reader.hparams
    assert scalars.dir_name.nunique() == 4
    for run in finished["runs"]:
        [run_dir] = [d for d in scalars.dir_name.unique() if d.endswith(run["id"][:8])]
        mine = scalars[(scalars.dir_name == run_dir) & (scalars.tag == "val_loss")]
        stored = [r for r in records(service, finished["id"]) if r["run_id"] == run["id"]]
        assert mine.step.tolist() == [r["epoch"] for r in stored]
        # event files hold 32-bit floats
        assert mine.value.tolist() == pytest.approx([r["val_loss"] for r in stored], rel=1e-6)
        mine_hp = hparams[hparams.dir_name == run_dir].set_index("tag").value
        assert mine_hp["optimizer"] == run["optimizer"]["name"]
        assert mine_hp["seed"] == run["seed"] and mine_hp["batch_size"] == 64
        assert mine_hp["optimizer.learning_rate"] == pytest.approx(
            run["optimizer"]["learning_rate"]
        )
    read_by_tensorboard(logdir, runs=4)


def read_by_tensorboard(logdir: Path, *, runs: int) -> None:
    """TensorBoard itself, serving the directory: every run's scalars, and the hparams
    dashboard's experiment (inferred from the runs' session records) with each session."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "tensorboard"), "--logdir", str(logdir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"]
    board = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def tags() -> dict[str, Any] | None:
        if board.poll() is not None:
            raise AssertionError("tensorboard exited")
        try:
            found: dict[str, Any] = httpx.get(f"{url}/data/plugin/scalars/tags", timeout=10).json()
        except (httpx.TransportError, ValueError):
            return None
        return found if len(found) == runs else None

    try:
        found = wait_for("tensorboard to read every run", tags, timeout=180, every=0.5)
        assert all({"val_loss", "val_accuracy"} <= set(run) for run in found.values())
        experiment = httpx.post(
            f"{url}/data/plugin/hparams/experiment", json={"experimentName": ""}, timeout=30
        ).json()
        names = {info["name"] for info in experiment["hparamInfos"]}
        assert {"optimizer", "optimizer.learning_rate", "batch_size", "seed"} <= names
        groups = httpx.post(
            f"{url}/data/plugin/hparams/session_groups",
            json={
                "experimentName": "",
                "allowedStatuses": ["STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 100,
            },
            timeout=30,
        ).json()
        assert groups["totalSize"] == runs
        for group in groups["sessionGroups"]:
            [session] = group["sessions"]
            assert session["status"] == "STATUS_SUCCESS"
    finally:
        board.terminate()
        board.wait(timeout=30)


def test_export_to_a_real_mlflow_server_and_again_adds_nothing(
    service: Service, finished: dict[str, Any], tmp_path: Path
) -> None:
    backend = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with mlflow_server(
        backend=backend, artifacts=tmp_path / "mlruns", port=free_port(), log=tmp_path / "log"
    ) as url:

        def export() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [OPTARENA, "export", finished["id"], "--mlflow", url, "--experiment", "hw1"],
                capture_output=True,
                text=True,
                env=as_user(service),
                timeout=300,
            )

        first = export()
        assert first.returncode == 0, first.stderr
        assert "exported 4 runs" in first.stdout
        mlflow = httpx.Client(base_url=f"{url}/api/2.0/mlflow", timeout=60)
        experiment = mlflow.get(
            "/experiments/get-by-name", params={"experiment_name": "hw1"}
        ).json()["experiment"]["experiment_id"]
        found = mlflow.post("/runs/search", json={"experiment_ids": [experiment]}).json()
        assert len(found["runs"]) == 4
        stored = records(service, finished["id"])
        for theirs in found["runs"]:
            tags = {t["key"]: t["value"] for t in theirs["data"]["tags"]}
            params = {p["key"]: p["value"] for p in theirs["data"]["params"]}
            [run] = [r for r in finished["runs"] if r["id"] == tags["optarena.run"]]
            assert tags["optarena.job"] == finished["id"]
            assert tags["optarena.seed"] == str(run["seed"])
            assert params["optimizer"] == run["optimizer"]["name"]
            assert params["batch_size"] == "64" and params["seed"] == str(run["seed"])
            assert theirs["info"]["status"] == "FINISHED"
            history = mlflow.get(
                "/metrics/get-history",
                params={"run_id": theirs["info"]["run_id"], "metric_key": "val_accuracy"},
            ).json()["metrics"]
            mine = [r for r in stored if r["run_id"] == run["id"]]
            assert sorted((m["step"], m["value"]) for m in history) == [
                (r["epoch"], r["val_accuracy"]) for r in mine
            ]

        second = export()
        assert second.returncode == 0, second.stderr
        assert "exported 0 runs" in second.stdout and "4 exported before" in second.stdout
        again = mlflow.post("/runs/search", json={"experiment_ids": [experiment]}).json()
        assert len(again["runs"]) == 4


def test_export_says_what_is_wrong(service: Service, finished: dict[str, Any]) -> None:
    neither = subprocess.run(
        [OPTARENA, "export", finished["id"]], capture_output=True, text=True, env=as_user(service)
    )
    assert neither.returncode == 2 and "--tensorboard" in neither.stderr
    nowhere = subprocess.run(
        [OPTARENA, "export", finished["id"], "--mlflow", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        env=as_user(service),
    )
    assert nowhere.returncode == 2 and "cannot reach MLflow" in nowhere.stderr
    assert "Traceback" not in neither.stderr + nowhere.stderr
