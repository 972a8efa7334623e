"""A job's sweep expanded into runs."""

from dataclasses import dataclass
from typing import Any

from core.spec import JobSpec, RaceSpec


@dataclass(frozen=True)
class RunSpec:
    """One run: one optimizer at one batch size and seed, trained to the largest budget.

    In a race a run is one optimizer's trajectory: `epochs` counts its steps.
    """

    index: int
    arm: int
    label: str
    optimizer: dict[str, Any]
    batch_size: int
    epochs: int
    seed: int


def expand_job(spec: JobSpec | RaceSpec) -> list[RunSpec]:
    """Every optimizer x batch size x seed; epoch budgets share one run to the largest.

    Runs are ordered seed first, so the arms of one seed finish close together and a
    paired comparison is available as early as possible.
    """
    labels = spec.arm_labels()
    several_sizes = len(spec.batch_size) > 1
    runs: list[RunSpec] = []
    for seed in spec.seeds:
        for batch_size in spec.batch_size:
            for arm, optimizer in enumerate(spec.optimizers):
                label = f"{labels[arm]} bs={batch_size}" if several_sizes else labels[arm]
                runs.append(
                    RunSpec(
                        index=len(runs),
                        arm=arm,
                        label=label,
                        optimizer=dict(optimizer.config),
                        batch_size=batch_size,
                        epochs=spec.max_epochs,
                        seed=seed,
                    )
                )
    return runs
