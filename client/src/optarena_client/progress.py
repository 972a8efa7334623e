"""Progress bars for a job's runs, fed by its event stream: tqdm in Jupyter, rich in a
terminal, or none."""

import sys
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn


class RunBars(Protocol):
    def add(self, run: dict[str, Any]) -> None: ...
    def advance(self, run_id: str, *, position: int, metrics: str) -> None: ...
    def status(self, run_id: str, status: str) -> None: ...
    def close(self) -> None: ...


def run_title(run: dict[str, Any], status: str) -> str:
    """`adam bs=32 epochs=5 seed 0 [running]`: what tells one run of a job from another."""
    seed = "" if run.get("seed") is None else f" seed {run['seed']}"
    trial = "" if run.get("trial") is None else f" trial {run['trial']}"
    phase = "" if run.get("phase") is None else f" (phase {run['phase']})"
    return f"{run['label']}{trial}{seed}{phase} [{status}]"


def headline(record: dict[str, Any], metrics: list[str]) -> str:
    """The record's headline metrics: the job lists them, most telling first."""
    shown = [f"{m} {record[m]:.4g}" for m in metrics if isinstance(record.get(m), int | float)]
    return "  ".join(shown[:3])


class RichBars:
    """One rich bar per run, on stderr, so stdout stays the command's answer."""

    def __init__(self, unit: str, console: Console | None = None) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, TaskID] = {}
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit + "s  {task.fields[metrics]}"),
            console=console or Console(stderr=True),
        )
        self.progress.start()

    def add(self, run: dict[str, Any]) -> None:
        self.runs[run["id"]] = run
        self.tasks[run["id"]] = self.progress.add_task(
            escape(run_title(run, run["status"])), total=run["budget"], metrics=""
        )

    def advance(self, run_id: str, *, position: int, metrics: str) -> None:
        self.progress.update(self.tasks[run_id], completed=position, metrics=metrics)

    def status(self, run_id: str, status: str) -> None:
        title = escape(run_title(self.runs[run_id], status))
        self.progress.update(self.tasks[run_id], description=title)

    def close(self) -> None:
        self.progress.stop()


class TqdmBars:
    """One tqdm bar per run: widgets in Jupyter (tqdm.auto), text elsewhere."""

    def __init__(self, unit: str) -> None:
        from tqdm.auto import tqdm

        self.tqdm = tqdm
        self.unit = unit
        self.runs: dict[str, dict[str, Any]] = {}
        self.bars: dict[str, Any] = {}

    def add(self, run: dict[str, Any]) -> None:
        self.runs[run["id"]] = run
        self.bars[run["id"]] = self.tqdm(
            total=run["budget"], desc=run_title(run, run["status"]), unit=self.unit
        )

    def advance(self, run_id: str, *, position: int, metrics: str) -> None:
        bar = self.bars[run_id]
        bar.update(max(0, position - bar.n))
        bar.set_postfix_str(metrics)

    def status(self, run_id: str, status: str) -> None:
        self.bars[run_id].set_description(run_title(self.runs[run_id], status))

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


class NoBars:
    def add(self, run: dict[str, Any]) -> None:
        pass

    def advance(self, run_id: str, *, position: int, metrics: str) -> None:
        pass

    def status(self, run_id: str, status: str) -> None:
        pass

    def close(self) -> None:
        pass


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (IPython's ZMQ shell), not a terminal."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def make_bars(progress: bool | str, *, unit: str) -> RunBars:
    """`True`: tqdm in Jupyter when it is installed, rich otherwise; or name one: "rich",
    "tqdm"; `False`: none."""
    if progress is False:
        return NoBars()
    if progress == "tqdm" or (progress is True and in_notebook() and _has_tqdm()):
        return TqdmBars(unit)
    if progress in (True, "rich"):
        return RichBars(unit)
    raise ValueError(f"progress is True, False, 'rich' or 'tqdm', not {progress!r}")


def _has_tqdm() -> bool:
    try:
        import tqdm.auto  # noqa: F401
    except ImportError:
        return False
    return True
