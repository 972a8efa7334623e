"""`optarena`: submit, watch, compare, plot, list and cancel jobs; upload datasets and models;
download trained models; export runs to TensorBoard or MLflow, from a terminal. Commands of
installed plug-ins (the server's `keys`) join it through the entry point group
`optarena.cli`."""

import sys
import uuid
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from optarena_client.api import ApiError, Unreachable
from optarena_client.client import DEFAULT_URL, Client, read_job

app = typer.Typer(
    help="Compare deep-learning optimizers with an optarena server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


class State:
    url: str = DEFAULT_URL
    api_key: str | None = None


state = State()


@app.callback()
def main_options(
    url: Annotated[
        str, typer.Option("--url", envvar="OPTARENA_URL", help="The optarena API.")
    ] = DEFAULT_URL,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", envvar="OPTARENA_API_KEY", help="Your key (optarena keys create)."
        ),
    ] = None,
) -> None:
    state.url = url
    state.api_key = api_key


def _client() -> Client:
    return Client(state.url, api_key=state.api_key)


def _ints(text: str | None, name: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{name} takes integers separated by commas: {text!r}") from None


def _is_id(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def build_job(
    file: Path | None,
    *,
    optimizers: str | None,
    dataset: str | None,
    epochs: str | None,
    batch_size: str | None,
    seeds: str | None,
    name: str | None,
    model: str | None = None,
    weights: str = "file",
) -> dict[str, Any]:
    """The job body: the file's, with any option given on the command line on top."""
    body: dict[str, Any] = {}
    if file is not None:
        try:
            body = read_job(file)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
    if optimizers:
        body["optimizers"] = [o.strip() for o in optimizers.split(",") if o.strip()]
    if dataset:
        # A built-in dataset by name, or one you uploaded by its id.
        kept = {k: v for k, v in body.get("dataset", {}).items() if k not in ("name", "id")}
        body["dataset"] = {**kept, ("id" if _is_id(dataset) else "name"): dataset}
    if model:
        body["model"] = {"id": model, "weights": weights}
    for key, text in (("epochs", epochs), ("batch_size", batch_size), ("seeds", seeds)):
        values = _ints(text, key.replace("_", "-"))
        if values is not None:
            body[key] = values
    if name:
        body["name"] = name
    if not body:
        raise typer.BadParameter("give a job file or at least --optimizers")
    return body


@app.command()
def submit(
    file: Annotated[Path | None, typer.Argument(help="A job as JSON (see examples/).")] = None,
    optimizers: Annotated[
        str | None, typer.Option(help="Comma-separated: sgd,adam,rmsprop.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="digits, mnist, ... or the id of one you uploaded.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="The id of a model you uploaded (default: an MLP).")
    ] = None,
    weights: Annotated[
        str, typer.Option(help="An uploaded model's start: file or reinitialize.")
    ] = "file",
    epochs: Annotated[str | None, typer.Option(help="A budget or several: 5 or 5,10.")] = None,
    batch_size: Annotated[str | None, typer.Option(help="32 or 32,128.")] = None,
    seeds: Annotated[str | None, typer.Option(help="0 or 0,1,2.")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the job.")] = None,
    watch_job: Annotated[
        bool, typer.Option("--watch", help="Follow the job until it ends.")
    ] = False,
) -> None:
    """Submit a job; prints its id."""
    body = build_job(
        file,
        optimizers=optimizers,
        dataset=dataset,
        epochs=epochs,
        batch_size=batch_size,
        seeds=seeds,
        name=name,
        model=model,
        weights=weights,
    )
    with _client() as client:
        job = client.submit(body)
    if watch_job:
        err.print(f"submitted job {job['id']} ({len(job['runs'])} runs)")
        watch(job["id"])
    else:
        out.print(job["id"])


@app.command()
def watch(job_id: Annotated[str, typer.Argument(help="The job's id.")]) -> None:
    """Follow a job live: a progress bar per run; ends with the comparison."""
    with _client() as client:
        status = client.wait(job_id, progress="rich")["status"]
        out.print(f"job {job_id} {status}")
        _print_comparison(client.comparison(job_id).data)
    if status != "succeeded":
        raise typer.Exit(1)


def _print_comparison(answer: dict[str, Any]) -> None:
    """Any kind's comparison, from the table it carries for people."""
    table = answer["table"]
    shown = Table(title=table["title"])
    for column in table["columns"]:
        shown.add_column(column["title"])
    for row in table["rows"]:
        cells = [row.get(c["key"]) for c in table["columns"]]
        shown.add_row(*("-" if cell is None else str(cell) for cell in cells))
    out.print(shown)
    out.print(table["note"])
    if answer.get("kind") == "tune":
        _print_tuning(answer)


def _print_tuning(answer: dict[str, Any]) -> None:
    """A tuned comparison's search: how much tuning each optimizer needed, and the warnings."""
    for o in answer["optimizers"]:
        curve = [p for p in o["budget_curve"] if p["expected"] is not None]
        if curve:
            marks = sorted({1, max(1, len(curve) // 4), max(1, len(curve) // 2), len(curve)})
            shown = ", ".join(
                f"{p['trials']}: {p['expected']:.4f}" for p in curve if p["trials"] in marks
            )
            out.print(f"{o['label']}: expected best {answer['metric']} after k trials: {shown}")
    spent = answer["spent"]
    out.print(
        f"spent: {spent['tuning_epochs']} tuning epochs ({spent['tuning_seconds']:.1f} s), "
        f"{spent['final_epochs']} final epochs; pruning saved {spent['saved_epochs']} epochs"
    )
    for warning in answer["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {warning}")


@app.command()
def compare(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    metric: Annotated[
        str | None,
        typer.Option(
            help="val_accuracy, val_loss, accuracy, loss (a regression: val_mae, val_rmse, ...); "
            "default: the job's headline metric."
        ),
    ] = None,
    epochs: Annotated[str | None, typer.Option(help="Read at these budgets: 5 or 5,10.")] = None,
    target: Annotated[float | None, typer.Option(help="Time to reach this value.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """The job's comparison as a table: arms ranked over seeds, tied arms grouped."""
    with _client() as client:
        answer = client.comparison(
            job_id, metric=metric, epochs=_ints(epochs, "epochs"), target=target
        ).data
    if as_json:
        out.print_json(data=answer)
    else:
        _print_comparison(answer)


@app.command()
def plot(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="curves.png or curves.svg")] = (
        Path("curves.png")
    ),
    metric: Annotated[str, typer.Option(help="The metric to draw.")] = "val_loss",
    x: Annotated[str, typer.Option(help="epoch, steps, examples or seconds.")] = "epoch",
    view: Annotated[
        str | None,
        typer.Option(
            help="target: the fraction of runs that reached --target (Kaplan-Meier); a tuned "
            "comparison's budget, sensitivity or curves."
        ),
    ] = None,
    target: Annotated[
        float | None, typer.Option(help="view target's value (default: the job's).")
    ] = None,
) -> None:
    """Save the learning curves (a race's contour, a range test's loss against learning rate,
    a tuned comparison's views) as PNG or SVG."""
    fmt = _image_format(output)
    with _client() as client:
        client.plot(job_id, metric=metric, x=x, view=view, target=target, fmt=fmt).save(output)
    out.print(f"saved {output}")


def _image_format(output: Path) -> str:
    fmt = output.suffix.lstrip(".").lower()
    if fmt not in ("png", "svg"):
        raise typer.BadParameter("the output must end in .png or .svg")
    return fmt


@app.command("range-test")
def range_test(
    optimizers: Annotated[str, typer.Option(help="Comma-separated: sgd,adam,rmsprop.")],
    dataset: Annotated[
        str, typer.Option(help="digits, fashion_mnist, ... or the id of one you uploaded.")
    ] = "digits",
    model: Annotated[
        str | None, typer.Option(help="The id of a model you uploaded (default: an MLP).")
    ] = None,
    batch_size: Annotated[str, typer.Option(help="64, or several: 32,128.")] = "32",
    seeds: Annotated[str, typer.Option(help="0 or 0,1,2.")] = "0",
    lr_min: Annotated[float, typer.Option("--min", help="The first step's learning rate.")] = 1e-7,
    lr_max: Annotated[float, typer.Option("--max", help="The last step's learning rate.")] = 10.0,
    steps: Annotated[int, typer.Option(help="Steps per optimizer.")] = 100,
    smoothing: Annotated[float, typer.Option(help="The loss's moving-average beta.")] = 0.98,
    stop_factor: Annotated[
        float | None,
        typer.Option(help="End when the smoothed loss passes this many times its best."),
    ] = 4.0,
    name: Annotated[str | None, typer.Option(help="A name for the job.")] = None,
    watch_job: Annotated[
        bool, typer.Option("--watch", help="Follow the test until it ends.")
    ] = False,
) -> None:
    """Run the learning-rate range test: prints its id (with --watch, the suggestions). A
    tuning job takes an optimizer's interval with {"from_range_test": ID}."""
    body = build_job(
        None,
        optimizers=optimizers,
        dataset=dataset,
        epochs=None,
        batch_size=batch_size,
        seeds=seeds,
        name=name,
        model=model,
    )
    body["kind"] = "lr_range"
    body["lr_range"] = {
        "min": lr_min,
        "max": lr_max,
        "steps": steps,
        "smoothing": smoothing,
        "stop_factor": stop_factor,
    }
    with _client() as client:
        job = client.submit(body)
    if watch_job:
        err.print(f"submitted range test {job['id']} ({len(job['runs'])} runs)")
        watch(job["id"])
    else:
        out.print(job["id"])


@app.command()
def score(
    job_ids: Annotated[list[str], typer.Argument(help="The jobs: each is a workload.")],
    baseline: Annotated[
        str | None,
        typer.Option(help="The arm speedups are against, whose median best is an auto target."),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(help="JOB:VALUE, repeatable; a job without one has target auto."),
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="The metric (default: each job's headline metric).")
    ] = None,
    time: Annotated[str, typer.Option(help="seconds (training), steps or epochs.")] = "seconds",
    r_max: Annotated[float, typer.Option(help="The profile's reach.")] = 4.0,
    plot_file: Annotated[
        Path | None, typer.Option("--plot", help="Also save the profiles: scores.png or .svg")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """Score optimizers across jobs with performance profiles, as MLCommons AlgoPerf does."""
    params: dict[str, Any] = {"time": time, "r_max": r_max, "baseline": baseline}
    params |= {"target": target or None, "metric": metric}
    with _client() as client:
        answer = client.scores(job_ids, **params)
    if as_json:
        out.print_json(data=answer)
    else:
        for w in answer["workloads"]:
            times = ", ".join(
                f"{a['label']} {'never' if a['time'] is None else format(a['time'], '.4g')}"
                for a in w["arms"]
            )
            out.print(
                escape(
                    f"{w['name']} ({w['dataset']}): {w['metric']} {w['target']:.4g} "
                    f"[{w['target_source']}]; {time} to target: {times}"
                ),
                highlight=False,
            )
        _print_comparison(answer)
        for warning in answer["warnings"]:
            out.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    if plot_file is not None:
        fmt = _image_format(plot_file)
        with _client() as client:
            client.scores_plot(job_ids, fmt=fmt, **params).save(plot_file)
        out.print(f"saved {plot_file}")


@app.command()
def jobs(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20) -> None:
    """The newest jobs."""
    with _client() as client:
        page = client.jobs(limit=limit)
    table = Table(title=f"{len(page['items'])} of {page['total']} jobs")
    for column in ("id", "kind", "name", "status", "runs", "created"):
        table.add_column(column)
    for job in page["items"]:
        counts = ", ".join(f"{n} {s}" for s, n in job["runs_by_status"].items())
        table.add_row(job["id"], job["kind"], job["name"], job["status"], counts, job["created_at"])
    out.print(table)


@app.command()
def cancel(job_id: Annotated[str, typer.Argument(help="The job's id.")]) -> None:
    """Cancel a job: queued runs never start, running ones stop after their current batch."""
    with _client() as client:
        job = client.cancel(job_id)
    out.print(f"job {job['id']} {job['status']} (cancel requested)")


datasets = typer.Typer(help="Datasets of your own (.npz or .csv).", no_args_is_help=True)
app.add_typer(datasets, name="datasets")
models = typer.Typer(help="Keras models of your own (.keras).", no_args_is_help=True)
app.add_typer(models, name="models")


@datasets.command("upload")
def datasets_upload(
    file: Annotated[Path, typer.Argument(help="An .npz (x_train, y_train, ...) or a .csv.")],
    label: Annotated[str | None, typer.Option(help="A CSV's label column (default: last).")] = None,
    name: Annotated[str | None, typer.Option(help="A name (default: the file's).")] = None,
) -> None:
    """Upload a dataset; a job trains on it as "dataset": {"id": "<id>"}."""
    found = _upload(lambda c: c.upload_dataset(file, label=label, name=name))
    splits = ", ".join(f"{n} {s}" for s, n in found["splits"].items())
    state_word = "uploaded" if found["new"] else "already uploaded"
    out.print(
        f"{state_word} dataset {found['id']}: {found['task']}, {found['classes']} classes, "
        f"inputs {found['input_shape']}, {splits}"
    )


@datasets.command("list")
def datasets_list() -> None:
    """The built-in datasets and yours."""
    with _client() as client:
        found = client.datasets()
    table = Table(title="datasets")
    for column in ("id", "name", "inputs", "classes", "train", "test", "note"):
        table.add_column(column)
    for d in found:
        table.add_row(
            d["id"] or "-",
            d["name"],
            str(d["input_shape"] or "-"),
            str(d["classes"] or "-"),
            str(d["train_examples"] or "-"),
            str(d.get("test_examples") or "split"),
            d["note"],
        )
    out.print(table)


@models.command("upload")
def models_upload(
    file: Annotated[Path, typer.Argument(help="A Keras 3 .keras file.")],
    name: Annotated[str | None, typer.Option(help="A name (default: the file's).")] = None,
) -> None:
    """Upload a Keras model; a job trains it as "model": {"id": "<id>", "weights": "file"}."""
    found = _upload(lambda c: c.upload_model(file, name=name))
    state_word = "uploaded" if found["new"] else "already uploaded"
    out.print(
        f"{state_word} model {found['id']}: inputs {found['input_shape']}, "
        f"{found['outputs']} outputs, {found['parameters']:,} parameters"
    )


@models.command("list")
def models_list() -> None:
    """Your uploaded models (the presets are in GET /models)."""
    with _client() as client:
        found = client.models()
    table = Table(title="your models")
    for column in ("id", "name", "inputs", "outputs", "parameters"):
        table.add_column(column)
    for m in found:
        table.add_row(
            m["id"], m["name"], str(m["input_shape"]), str(m["outputs"]), f"{m['parameters']:,}"
        )
    out.print(table)


@app.command()
def download(
    run_id: Annotated[str, typer.Argument(help="A finished run's id.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to save it.")] = Path(
        "model.keras"
    ),
) -> None:
    """Save a finished run's trained model (load it with keras.saving.load_model)."""
    with _client() as client:
        client.download_model(run_id, output)
    out.print(f"saved {output} ({output.stat().st_size:,} bytes)")


@app.command()
def export(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    tensorboard: Annotated[
        Path | None,
        typer.Option(help="Write one event-file directory per run here (tensorboard --logdir)."),
    ] = None,
    mlflow: Annotated[
        str | None, typer.Option(help="An MLflow tracking server: http://host:5000.")
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="The MLflow experiment (default: optarena <job>).")
    ] = None,
) -> None:
    """Copy a job's runs into TensorBoard event files or an MLflow tracking server: metrics
    per epoch, the optimizer configuration as hyperparameters."""
    from optarena_client.export import MLflowError, to_mlflow, to_tensorboard

    if tensorboard is None and mlflow is None:
        raise typer.BadParameter("give --tensorboard DIR, --mlflow URI or both")
    with _client() as client:
        if tensorboard is not None:
            made = to_tensorboard(client, job_id, tensorboard)
            out.print(f"wrote {len(made)} runs to {tensorboard}", highlight=False)
        if mlflow is not None:
            try:
                done = to_mlflow(client, job_id, mlflow, experiment=experiment)
            except MLflowError as error:
                err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
                raise typer.Exit(1) from None
            out.print(
                f"exported {len(done['exported'])} runs to {mlflow}"
                + (f" ({len(done['skipped'])} exported before)" if done["skipped"] else ""),
                highlight=False,
            )


def _upload(send: Any) -> dict[str, Any]:
    with _client() as client:
        try:
            found: dict[str, Any] = send(client)
        except FileNotFoundError as error:
            raise typer.BadParameter(str(error)) from None
    return found


def add_plugins() -> None:
    """Sub-commands of installed plug-ins: the server's distribution adds `keys`. Without
    the server, `keys` says where to run it."""
    for plugin in entry_points(group="optarena.cli"):
        if not any(group.name == plugin.name for group in app.registered_groups):
            app.add_typer(plugin.load(), name=plugin.name)
    if not any(group.name == "keys" for group in app.registered_groups) and not any(
        command.name == "keys" for command in app.registered_commands
    ):
        app.command(
            "keys",
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
            help="API keys: the server's command (it needs the server's database).",
        )(_keys_elsewhere)


def _keys_elsewhere() -> None:
    err.print(
        "optarena keys needs the server's database, so it comes with the server, not the "
        "client: run it where the server is installed (scripts/dev: .venv/bin/optarena keys "
        "create --owner you; compose: docker compose exec -T api optarena keys create "
        "--owner you)",
        highlight=False,
    )
    raise typer.Exit(2)


def main() -> None:
    """Entry point: errors are printed as the server said them, never as tracebacks."""
    add_plugins()
    try:
        app()
    except ApiError as error:
        err.print(f"[red]error {error.status}:[/red] {error.message}", highlight=False)
        sys.exit(1)
    except Unreachable as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        sys.exit(2)
