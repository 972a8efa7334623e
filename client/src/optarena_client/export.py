"""A job's runs copied where people already look: TensorBoard event files (one directory per
run, its optimizer configuration through the hparams plugin) and an MLflow tracking server
(its REST API, so the client needs no MLflow)."""

import json
import math
import re
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from optarena_client.api import Unreachable
from optarena_client.client import Client, JobRef, job_id
from optarena_client.tfevents import EventFile

NOT_SCALARS = {"cursor", "run_id", "time"}
MLFLOW_STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "diverged": "FAILED"}
MLFLOW_STATUS |= {"cancelled": "KILLED"}
TENSORBOARD_STATUS = {"succeeded": "success", "failed": "failure", "diverged": "failure"}
TENSORBOARD_STATUS |= {"cancelled": "failure"}


def hparams(run: dict[str, Any]) -> dict[str, float | str | bool]:
    """What the run was trained with, flat: the optimizer's name and each of its settings
    (a nested one as JSON), batch size, seed, arm and the tuning trial."""
    optimizer = dict(run["optimizer"])
    found: dict[str, float | str | bool] = {"optimizer": str(optimizer.pop("name", "?"))}
    for key, value in sorted(optimizer.items()):
        if value is None:
            continue
        scalar = isinstance(value, bool | int | float | str)
        found[f"optimizer.{key}"] = value if scalar else json.dumps(value, sort_keys=True)
    for key in ("batch_size", "seed", "arm", "trial", "phase", "budget"):
        if run.get(key) is not None:
            found[key] = run[key]
    found["label"] = run["label"]
    return found


def scalars(record: dict[str, Any], unit: str) -> dict[str, float]:
    """A record's finite numbers, by metric; its position (the step) and ids left out."""
    return {
        key: float(value)
        for key, value in record.items()
        if key not in NOT_SCALARS
        and key != unit
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    }


def wall_time(record: dict[str, Any], default: float) -> float:
    text = record.get("time")
    if not isinstance(text, str):
        return default
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_name(run: dict[str, Any]) -> str:
    """`adam_bs=32_epochs=5-seed0-1a2b3c4d`: readable, unique in the job, safe as a path."""
    label = re.sub(r"[^A-Za-z0-9._=-]+", "_", run["label"]).strip("_")
    trial = "" if run.get("trial") is None else f"-trial{run['trial']}"
    seed = "" if run.get("seed") is None else f"-seed{run['seed']}"
    return f"{label}{trial}{seed}-{run['id'][:8]}"


def _by_run(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record["run_id"], []).append(record)
    return grouped


def to_tensorboard(client: Client, job: JobRef, directory: str | Path) -> list[Path]:
    """One event-file directory per run under `directory`; `tensorboard --logdir` it.
    Exporting again replaces each run's event file (a finished run then has all its epochs
    once, not twice)."""
    ident, root = job_id(job), Path(directory)
    found = client.job(ident)
    records = _by_run(client.records(ident))
    unit, made = found["unit"], []
    for run in found["runs"]:
        run_dir = root / run_name(run)
        for old in run_dir.glob("events.out.tfevents.*"):
            old.unlink()
        start = _timestamp(run.get("started_at") or run.get("created_at")) or time.time()
        events = EventFile(run_dir, wall_time=start)
        try:
            events.hparams(hparams(run), start=start)
            last = start
            for record in records.get(run["id"], []):
                last = wall_time(record, last)
                events.scalars(record[unit], scalars(record, unit), wall_time=last)
            if run["status"] in TENSORBOARD_STATUS:
                end = _timestamp(run.get("finished_at")) or last
                events.session_end(TENSORBOARD_STATUS[run["status"]], end=end)
        finally:
            events.close()
        made.append(run_dir)
    return made


def _timestamp(text: str | None) -> float | None:
    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class MLflow:
    """An MLflow tracking server through its REST API (/api/2.0/mlflow)."""

    def __init__(self, uri: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.http = httpx.Client(
            base_url=f"{self.uri}/api/2.0/mlflow", timeout=60.0, transport=transport
        )

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise Unreachable(f"cannot reach MLflow at {self.uri}: {error}") from error
        if response.status_code >= 400:
            raise MLflowError(response.status_code, response.text.strip()[:500])
        answer: dict[str, Any] = response.json() if response.content else {}
        return answer

    def experiment(self, name: str) -> str:
        """The experiment's id, made when there is none of that name."""
        try:
            found = self.call("GET", "/experiments/get-by-name", params={"experiment_name": name})
            return str(found["experiment"]["experiment_id"])
        except MLflowError as error:
            if error.status != 404:
                raise
        return str(self.call("POST", "/experiments/create", json={"name": name})["experiment_id"])

    def exported(self, experiment: str, job: str) -> dict[str, str]:
        """optarena run id -> MLflow run id, for the job's runs already in the experiment."""
        found: dict[str, str] = {}
        token: str | None = None
        while True:
            body: dict[str, Any] = {
                "experiment_ids": [experiment],
                "filter": f"tags.`optarena.job` = '{job}'",
                "max_results": 1000,
            }
            if token:
                body["page_token"] = token
            page = self.call("POST", "/runs/search", json=body)
            for run in page.get("runs", []):
                tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
                found[tags["optarena.run"]] = run["info"]["run_id"]
            token = page.get("next_page_token")
            if not token:
                return found

    def log_batch(
        self,
        run: str,
        *,
        params: list[dict[str, str]] | None = None,
        metrics: list[dict[str, Any]] | None = None,
    ) -> None:
        """In the server's limits: 100 parameters and 1,000 metrics a call."""
        params, metrics = params or [], metrics or []
        for start in range(0, len(params), 100):
            self.call(
                "POST",
                "/runs/log-batch",
                json={"run_id": run, "params": params[start : start + 100]},
            )
        for start in range(0, len(metrics), 1000):
            self.call(
                "POST",
                "/runs/log-batch",
                json={"run_id": run, "metrics": metrics[start : start + 1000]},
            )

    def close(self) -> None:
        self.http.close()


class MLflowError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"MLflow answered {status}: {message}")
        self.status = status


def to_mlflow(
    client: Client,
    job: JobRef,
    uri: str,
    *,
    experiment: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, list[str]]:
    """Each run as an MLflow run in `experiment` (default: "optarena <job name or id>"):
    parameters are its optimizer configuration, batch size and seed, metrics each record by
    its step, tags the job, run, arm and seed. Runs exported before are left as they are;
    the answer says which were `exported` and which `skipped`."""
    ident = job_id(job)
    found = client.job(ident)
    records = _by_run(client.records(ident))
    mlflow = MLflow(uri, transport=transport)
    answer: dict[str, list[str]] = {"exported": [], "skipped": []}
    try:
        experiment_id = mlflow.experiment(experiment or f"optarena {found['name'] or ident}")
        before = mlflow.exported(experiment_id, ident)
        for run in found["runs"]:
            if run["id"] in before:
                answer["skipped"].append(run["id"])
                continue
            _export_run(mlflow, experiment_id, found, run, records.get(run["id"], []))
            answer["exported"].append(run["id"])
    finally:
        mlflow.close()
    return answer


def _export_run(
    mlflow: MLflow,
    experiment_id: str,
    job: dict[str, Any],
    run: dict[str, Any],
    records: list[dict[str, Any]],
) -> None:
    unit = job["unit"]
    start = _timestamp(run.get("started_at") or run.get("created_at")) or time.time()
    tags = {"optarena.job": job["id"], "optarena.run": run["id"], "optarena.arm": run["arm"]}
    tags |= {"optarena.seed": run["seed"], "optarena.kind": job["kind"]}
    tags |= {"optarena.status": run["status"]}
    created = mlflow.call(
        "POST",
        "/runs/create",
        json={
            "experiment_id": experiment_id,
            "run_name": run_name(run),
            "start_time": int(start * 1000),
            "tags": [{"key": k, "value": str(v)} for k, v in tags.items() if v is not None],
        },
    )
    mlflow_run = created["run"]["info"]["run_id"]
    params = [{"key": k, "value": str(v)[:6000]} for k, v in hparams(run).items()]
    metrics = []
    last = start
    for record in records:
        last = wall_time(record, last)
        for key, value in scalars(record, unit).items():
            metrics.append(
                {"key": key, "value": value, "timestamp": int(last * 1000), "step": record[unit]}
            )
    mlflow.log_batch(mlflow_run, params=params, metrics=metrics)
    status = MLFLOW_STATUS.get(run["status"])
    if status is not None:
        end = _timestamp(run.get("finished_at")) or last
        mlflow.call(
            "POST",
            "/runs/update",
            json={"run_id": mlflow_run, "status": status, "end_time": int(end * 1000)},
        )
