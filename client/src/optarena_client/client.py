"""The notebook client: a job in, its progress, metrics as a DataFrame, its comparison and
plots out, uploads and downloads; every error is the server's own message."""

import json
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import httpx

from optarena_client.api import Api, ApiError
from optarena_client.progress import headline, make_bars

if TYPE_CHECKING:
    import pandas

DEFAULT_URL = "http://127.0.0.1:8000"
JobRef = Union[str, uuid.UUID, dict[str, Any]]  # noqa: UP007 (a runtime alias on Python 3.10)


def job_id(job: JobRef) -> str:
    """A job's id from the id itself or from an answer that carries it (submit's, job's)."""
    if isinstance(job, dict):
        return str(job["id"])
    return str(job)


def require_pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("DataFrames need pandas: pip install 'optarena-client[pandas]'") from None
    return pandas


class Comparison:
    """A job's comparison as the server answered it (`data`), with its table as a DataFrame."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def kind(self) -> str:
        return str(self.data["kind"])

    @property
    def note(self) -> str:
        return str(self.data["table"]["note"])

    def ranking_frame(self) -> "pandas.DataFrame":
        """The ranking, best first, one row per arm (a race's trajectory): its numbers as
        columns, a value over seeds as `<name>_mean`, `_std`, `_ci_low`, `_ci_high` and
        `_n`. A kind without a ranking list gives its table's cells."""
        pandas = require_pandas()
        ranking = self.data.get("ranking")
        if isinstance(ranking, list) and all(isinstance(row, dict) for row in ranking):
            return pandas.DataFrame([flat_row(row) for row in ranking])
        table = self.data["table"]
        keys = [c["key"] for c in table["columns"]]
        return pandas.DataFrame([{k: row.get(k) for k in keys} for row in table["rows"]])

    def _repr_html_(self) -> str:
        table = self.data["table"]
        head = "".join(f"<th>{c['title']}</th>" for c in table["columns"])
        rows = "".join(
            "<tr>"
            + "".join(f"<td>{_cell(row.get(c['key']))}</td>" for c in table["columns"])
            + "</tr>"
            for row in table["rows"]
        )
        return (
            f"<p><b>{table['title']}</b></p><table><tr>{head}</tr>{rows}</table>"
            f"<p>{table['note']}</p>"
        )


def flat_row(row: dict[str, Any]) -> dict[str, Any]:
    """A ranking entry's scalars, and its summaries over seeds spread into columns."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or isinstance(value, bool | int | float | str):
            flat[key] = value
        elif isinstance(value, dict) and "mean" in value:
            for part in ("mean", "std", "ci_low", "ci_high", "n"):
                flat[f"{key}_{part}"] = value.get(part)
    return flat


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


class Plot:
    """An image the server drew; Jupyter shows it inline, `save` writes it."""

    def __init__(self, data: bytes, fmt: str) -> None:
        self.data = data
        self.format = fmt

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.data)
        return path

    def _repr_png_(self) -> bytes | None:
        return self.data if self.format == "png" else None

    def _repr_svg_(self) -> str | None:
        return self.data.decode() if self.format == "svg" else None


class Client(Api):
    """An optarena server, by URL and key (default: $OPTARENA_URL and $OPTARENA_API_KEY)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            url or os.environ.get("OPTARENA_URL") or DEFAULT_URL,
            api_key=api_key if api_key is not None else os.environ.get("OPTARENA_API_KEY"),
            timeout=timeout,
            transport=transport,
        )

    # jobs

    def submit(
        self, job: dict[str, Any] | str | Path, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Submit a job (a dict, or a JSON file's path); the accepted job with its runs."""
        body = job if isinstance(job, dict) else read_job(Path(job))
        headers = {"idempotency-key": idempotency_key} if idempotency_key else {}
        answer: dict[str, Any] = self.json("POST", "/jobs", json=body, headers=headers)
        return answer

    def job(self, job: JobRef) -> dict[str, Any]:
        """The job, its spec and every run with status, error and summary."""
        answer: dict[str, Any] = self.json("GET", f"/jobs/{job_id(job)}")
        return answer

    def jobs(self, *, limit: int = 20, offset: int = 0) -> dict[str, Any]:
        """A page of your jobs, newest first: `items` and `total`."""
        answer: dict[str, Any] = self.json(
            "GET", "/jobs", params={"limit": limit, "offset": offset}
        )
        return answer

    def cancel(self, job: JobRef) -> dict[str, Any]:
        """Cancel: queued runs never start, running ones stop after their current batch."""
        answer: dict[str, Any] = self.json("POST", f"/jobs/{job_id(job)}/cancel")
        return answer

    def wait(self, job: JobRef, *, progress: bool | str = True) -> dict[str, Any]:
        """Follow the job's events until it ends, a bar per run; the finished job."""
        ident = job_id(job)
        found = self.job(ident)
        unit, metrics = found["unit"], found["metrics"]
        bars = make_bars(progress, unit=unit)
        known: set[str] = set()

        def add_new(runs: list[dict[str, Any]]) -> None:
            for run in runs:
                if run["id"] not in known:
                    known.add(run["id"])
                    bars.add(run)

        try:
            add_new(found["runs"])
            for event in self.events(ident):
                data = event.data
                if event.event in ("record", "run") and data.get("run_id") not in known:
                    add_new(self.job(ident)["runs"])  # a run the job added as it went
                if event.event == "record" and data["run_id"] in known:
                    bars.advance(
                        data["run_id"], position=data[unit], metrics=headline(data, metrics)
                    )
                elif event.event == "run" and data["run_id"] in known:
                    why = f": {data['error']}" if data.get("error") else ""
                    bars.status(data["run_id"], data["status"] + why)
        finally:
            bars.close()
        return self.job(ident)

    # what the job produced

    def records(self, job: JobRef, *, after: int = 0) -> list[dict[str, Any]]:
        """Every record stored so far, in cursor order, each once (newline-delimited JSON
        pages, Optarena-Next-Cursor passed back until the server has no more)."""
        ident, cursor = job_id(job), after
        found: list[dict[str, Any]] = []
        while True:
            response = self.request(
                "GET", f"/jobs/{ident}/metrics.ndjson", params={"after": cursor}
            )
            found.extend(json.loads(line) for line in response.text.splitlines() if line)
            following = int(response.headers["optarena-next-cursor"])
            if response.headers.get("optarena-done") == "true" or following == cursor:
                return found
            cursor = following

    def metrics(self, job: JobRef) -> "pandas.DataFrame":
        """One row per record with its run's label, arm, seed, batch size (and a tuning
        job's phase and trial): ready to group by arm and average over seeds."""
        pandas = require_pandas()
        ident = job_id(job)
        runs = {run["id"]: run for run in self.job(ident)["runs"]}
        rows = []
        for record in self.records(ident):
            if record["run_id"] not in runs:  # a run the job added after it was read
                runs = {run["id"]: run for run in self.job(ident)["runs"]}
            run = runs[record["run_id"]]
            rows.append(
                {
                    "label": run["label"],
                    "arm": run["arm"],
                    "seed": run["seed"],
                    "batch_size": run["batch_size"],
                    "phase": run.get("phase"),
                    "trial": run.get("trial"),
                    **record,
                }
            )
        frame = pandas.DataFrame(rows)
        if "cursor" in frame:
            frame["cursor"] = frame["cursor"].astype(int)
        if "time" in frame:
            frame["time"] = pandas.to_datetime(frame["time"], utc=True)
        return frame

    def comparison(
        self,
        job: JobRef,
        *,
        metric: str | None = None,
        epochs: Sequence[int] | None = None,
        target: float | None = None,
    ) -> Comparison:
        """The job's comparison in its kind's terms (`ranking_frame()` for a DataFrame)."""
        params: dict[str, Any] = {}
        params |= {"metric": metric} if metric else {}
        params |= {"epochs": list(epochs)} if epochs else {}
        params |= {"target": target} if target is not None else {}
        return Comparison(self.json("GET", f"/jobs/{job_id(job)}/comparison", params=params))

    def plot(
        self,
        job: JobRef,
        *,
        metric: str = "val_loss",
        x: str = "epoch",
        view: str | None = None,
        target: float | None = None,
        fmt: str = "png",
    ) -> Plot:
        """The job drawn by the server (learning curves, a race's contour, a tuned job's
        views), shown inline in Jupyter."""
        params: dict[str, Any] = {"metric": metric, "x": x}
        params |= {"view": view} if view else {}
        params |= {"target": target} if target is not None else {}
        return self.image(f"/jobs/{job_id(job)}/plot", params, fmt=fmt)

    def scores(self, jobs: Sequence[JobRef], **params: Any) -> dict[str, Any]:
        """Optimizers scored across jobs with performance profiles (GET /scores's params:
        baseline, target as ["JOB:VALUE"], metric, time, r_max)."""
        answer: dict[str, Any] = self.json("GET", "/scores", params=score_params(jobs, params))
        return answer

    def scores_plot(self, jobs: Sequence[JobRef], *, fmt: str = "png", **params: Any) -> Plot:
        return self.image("/scores/plot", score_params(jobs, params), fmt=fmt)

    def image(self, path: str, params: dict[str, Any], *, fmt: str) -> Plot:
        if fmt not in ("png", "svg"):
            raise ValueError(f"an image is png or svg, not {fmt!r}")
        return Plot(self.request("GET", f"{path}.{fmt}", params=params).content, fmt)

    # uploads and downloads

    def upload_dataset(
        self, path: str | Path, *, label: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """Upload an .npz or .csv; a job trains on it as {"dataset": {"id": ...}}. The answer
        has `new`: false when the same bytes were uploaded before."""
        form = {k: v for k, v in (("label", label), ("name", name)) if v is not None}
        return self.upload("/datasets", Path(path), form)

    def upload_model(self, path: str | Path, *, name: str | None = None) -> dict[str, Any]:
        """Upload a Keras 3 .keras file; a job trains it as {"model": {"id": ...}}."""
        return self.upload("/models", Path(path), {"name": name} if name else {})

    def upload(self, endpoint: str, path: Path, form: dict[str, str]) -> dict[str, Any]:
        if not path.is_file():
            raise FileNotFoundError(f"{path} is not a file")
        with path.open("rb") as file:
            response = self.request(
                "POST", endpoint, files={"file": (path.name, file)}, data=form, timeout=600
            )
        answer: dict[str, Any] = response.json()
        answer["new"] = response.status_code == 201
        return answer

    def datasets(self) -> list[dict[str, Any]]:
        """The built-in datasets and yours."""
        answer: list[dict[str, Any]] = self.json("GET", "/datasets")
        return answer

    def models(self) -> list[dict[str, Any]]:
        """Your uploaded models."""
        answer: list[dict[str, Any]] = self.json("GET", "/models/uploaded")
        return answer

    def download_model(self, run: str, path: str | Path = "model.keras") -> Path:
        """Save a finished run's trained model (keras.saving.load_model reads it)."""
        path = Path(path)
        path.write_bytes(self.request("GET", f"/runs/{run}/model.keras", timeout=600).content)
        return path

    def stream(self, job: JobRef, *, after: str | None = None) -> Iterator[Any]:
        """The job's live events (record, run, done) as an iterator that resumes after a
        dropped connection; it ends with `done`."""
        return self.events(job_id(job), after=after)


def read_job(path: Path) -> dict[str, Any]:
    """A job from a JSON file: one object."""
    try:
        body = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    if not isinstance(body, dict):
        raise ValueError(f"{path} must hold one JSON object, a job")
    return body


def score_params(jobs: Sequence[JobRef], params: dict[str, Any]) -> dict[str, Any]:
    return {"job_id": [job_id(j) for j in jobs]} | {
        k: v for k, v in params.items() if v is not None
    }


__all__ = ["ApiError", "Client", "Comparison", "Plot"]
