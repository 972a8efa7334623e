"""What every kind's run function is given and gives back. A run function (worker/kinds/<kind>)
trains or steps one run from its spec; it reports through the hooks and returns plain data."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.artifacts import ArtifactStore
from core.kinds.base import JobSpec
from core.records import Record
from core.runs import RunInfo
from core.uploads import Stored


class RunFailed(Exception):
    """The run cannot go on, for a reason the user can act on: the message is stored on the
    run as it is (no traceback)."""


def _never() -> bool:
    return False


@dataclass(frozen=True)
class RunHooks:
    """How a run reports: its start (initial weights' hash, environment), its records in order,
    and whether to stop (cancel) or hand back (shutdown)."""

    on_start: Callable[[str, dict[str, Any]], None]
    on_records: Callable[[Sequence[Record]], object]
    cancel_requested: Callable[[], bool]
    poll_seconds: float = 0.2
    # Asked after each checkpointed epoch: True stops there, to be resumed elsewhere.
    hand_back_requested: Callable[[], bool] = _never
    # Stores records of this run and of the runs of its job it trains with, in one call: a
    # fused group's epoch is one write. None: each run's records go through its on_records.
    on_job_records: Callable[[Sequence[Record]], object] | None = None


@dataclass(frozen=True)
class RunContext:
    run: RunInfo
    spec: JobSpec
    hooks: RunHooks
    cache_dir: Path  # where datasets are cached
    # Uploads, checkpoints and trained models; None: no checkpoints (a retried run starts
    # over) and no trained model kept.
    store: ArtifactStore | None
    fashion_mnist_dir: Path | None = None
    keep_trained_model: bool = True
    # The uploads the job names, by id.
    uploads: Mapping[Any, Stored] = field(default_factory=dict)
    # Training steps in one call of the compiled step (where the backend allows it).
    steps_per_execution: int = 1


# paused: checkpointed at a position where its group decides (a tuning job's rung).
Status = Literal["succeeded", "diverged", "cancelled", "handed_back", "paused"]


@dataclass
class RunOutcome:
    """How the run ended, in the kind's words: `reason` says why it diverged or stopped."""

    status: Status
    completed: int  # the last position reached: the epoch, the step
    initial_weights_sha256: str
    records: list[Any] = field(default_factory=list)
    diverged_at: int | None = None
    reason: str | None = None
    resumed_from: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)


RunFunction = Callable[[RunContext], RunOutcome]
# Runs that may train together share a key (None: this one trains alone); a group function
# trains such runs and gives each its outcome, in order.
GroupKey = Callable[[JobSpec, RunInfo], str | None]
GroupRunFunction = Callable[[Sequence[RunContext]], list[RunOutcome]]
