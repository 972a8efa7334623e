import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from core.kinds import parse_job
from core.kinds.base import Progress
from core.kinds.train.records import TrainRecord
from core.kinds.tune.protocol import advance, decide_rung, keep_count
from core.kinds.tune.spec import TuneSpec
from core.models import RunStatus
from core.runs import RunInfo
from core.statistics import expected_best, expected_best_band


def test_expected_best_matches_a_direct_simulation() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0.8, 0.05, size=12)
    ks = [1, 2, 4, 8, 12]
    draws = rng.choice(values, size=(200_000, 12))
    simulated = [draws[:, :k].max(axis=1).mean() for k in ks]
    assert np.allclose(expected_best(values, ks), simulated, atol=1e-3)
    simulated_min = [draws[:, :k].min(axis=1).mean() for k in ks]
    assert np.allclose(expected_best(values, ks, higher=False), simulated_min, atol=1e-3)


def test_expected_best_starts_at_the_mean_and_rises_to_the_best() -> None:
    values = [0.1, 0.5, 0.9, 0.3]
    curve = expected_best(values, [1, 2, 3, 1000])
    assert curve[0] == pytest.approx(np.mean(values))
    assert curve == sorted(curve) and curve[-1] == pytest.approx(0.9, abs=1e-6)
    low, high = expected_best_band(values, [1, 2, 3])
    assert all(lo <= e <= hi for lo, e, hi in zip(low, curve, high, strict=False))
    assert (low, high) == expected_best_band(values, [1, 2, 3])  # a fixed seed: the same band


@pytest.mark.parametrize(
    ("n", "keep", "kept"), [(4, 0.5, 2), (5, 0.5, 3), (16, 0.25, 4), (1, 0.1, 1)]
)
def test_keep_count_rounds_up_and_keeps_one(n: int, keep: float, kept: int) -> None:
    assert keep_count(n, keep) == kept


def test_a_rung_keeps_the_best_by_value_ties_by_trial_and_no_value_last() -> None:
    kept, threshold = decide_rung({0: 0.5, 1: 0.9, 2: None, 3: 0.9}, keep=0.5, higher=True)
    assert kept == [1, 3] and threshold == 0.9
    kept, threshold = decide_rung({0: 0.5, 1: 0.9, 2: None, 3: 0.2}, keep=0.5, higher=False)
    assert kept == [0, 3] and threshold == 0.5


SPEC: dict[str, Any] = {
    "dataset": {"name": "digits"},
    "optimizers": [
        {"name": "sgd", "search": {"learning_rate": {"log_uniform": [1e-3, 1.0]}}},
        {"name": "adam", "search": {"learning_rate": {"log_uniform": [1e-4, 1e-1]}}},
    ],
    "tuning": {
        "trials": 4,
        "tuning_seeds": [0, 7],
        "final_seeds": [1, 2, 3],
        "prune": {"rungs": [1], "keep": 0.5},
    },
    "epochs": 3,
}


class Job:
    """A tuning job's runs and records, moved by hand."""

    def __init__(self) -> None:
        spec = parse_job(SPEC)
        assert isinstance(spec, TuneSpec)
        self.spec = spec
        self.runs = {
            plan.index: RunInfo(
                id=uuid.uuid4(),
                index=plan.index,
                arm=plan.arm,
                label=plan.label,
                optimizer=plan.optimizer,
                seed=plan.seed,
                batch_size=plan.batch_size,
                budget=plan.budget,
                phase=plan.phase,
                trial=plan.trial,
                status=RunStatus.QUEUED,
                attempt=0,
                handbacks=0,
                heartbeat_at=None,
                error=None,
                diverged_at=None,
                initial_weights_sha256=None,
                summary=None,
                environment=None,
                started_at=None,
                finished_at=None,
            )
            for plan in spec.expand()
        }
        self.records: dict[uuid.UUID, list[TrainRecord]] = {r.id: [] for r in self.runs.values()}

    def of(self, arm: int, trial: int) -> list[RunInfo]:
        return [r for r in self.runs.values() if r.arm == arm and r.trial == trial]

    def reach(self, run: RunInfo, epoch: int, value: float, *, pause: bool = True) -> None:
        self.records[run.id].append(
            TrainRecord(
                run_id=run.id,
                epoch=epoch,
                loss=1.0,
                accuracy=0.5,
                val_loss=1 - value,
                val_accuracy=value,
                learning_rate=0.01,
                epoch_seconds=1.0,
                examples_seen=epoch,
                steps=epoch,
                time=datetime.now(UTC),
            )
        )
        status = RunStatus.PAUSED if pause else RunStatus.SUCCEEDED
        self.set(run, status=status, waiting_at=epoch if pause else None)

    def set(self, run: RunInfo, **changes: Any) -> None:
        self.runs[run.index] = run.model_copy(update=changes)

    def advance(self) -> Any:
        steps = advance(
            Progress(
                spec=self.spec,
                runs=list(self.runs.values()),
                records=lambda ids: {i: self.records[i] for i in ids},
            )
        )
        for run in self.runs.values():
            if run.id in steps.resume:
                self.set(run, status=RunStatus.QUEUED, cleared_at=run.waiting_at, waiting_at=None)
            if run.id in steps.prune:
                self.set(run, status=RunStatus.PRUNED, summary=steps.prune[run.id][1])
        return steps


def test_a_rung_waits_for_every_trial_of_the_optimizer_then_prunes_whole_configurations() -> None:
    job = Job()
    values = {0: 0.6, 1: 0.9, 2: 0.7, 3: 0.8}  # sgd's trials at epoch 1, mean of both seeds
    for trial, value in values.items():
        for seed_offset, run in enumerate(job.of(0, trial)):
            job.reach(run, 1, value + (0.01 if seed_offset else -0.01))
            if (trial, seed_offset) != (3, 1):
                assert not job.advance()  # someone of sgd has not arrived: nothing decided
    steps = job.advance()  # the last one arrived: decided now
    assert len(steps.resume) == 4 and len(steps.prune) == 4 and not steps.create
    assert not job.advance()  # and once
    statuses = {t: {r.status for r in job.of(0, t)} for t in values}
    assert statuses == {
        0: {RunStatus.PRUNED},
        1: {RunStatus.QUEUED},
        2: {RunStatus.PRUNED},
        3: {RunStatus.QUEUED},
    }
    pruned = job.of(0, 2)[0]
    assert pruned.summary is not None and pruned.summary["pruned_at"] == 1
    assert pruned.summary["threshold"] == pytest.approx(0.8)
    assert all(r.status == RunStatus.QUEUED for r in job.of(1, 0))  # adam is not touched


def test_the_decision_does_not_depend_on_arrival_order() -> None:
    outcomes = []
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        job = Job()
        for trial in order:
            for run in job.of(0, trial):
                job.reach(run, 1, [0.6, 0.9, 0.7, 0.8][trial])
                job.advance()
        outcomes.append({t: job.of(0, t)[0].status for t in range(4)})
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_a_diverged_trial_counts_as_arrived_and_ranks_last() -> None:
    job = Job()
    for trial in range(4):
        for run in job.of(0, trial):
            if trial == 0:
                job.set(run, status=RunStatus.DIVERGED, diverged_at=1)
            else:
                job.reach(run, 1, 0.5 + trial / 10)
    job.advance()
    assert {r.status for r in job.of(0, 0)} == {RunStatus.DIVERGED}
    assert {r.status for r in job.of(0, 1)} == {RunStatus.PRUNED}
    assert {r.status for r in job.of(0, 3)} == {RunStatus.QUEUED}


def test_phase_two_is_planned_once_phase_one_ends_with_the_best_complete_trials() -> None:
    job = Job()
    for arm in (0, 1):
        for trial in range(4):
            for run in job.of(arm, trial):
                job.reach(run, 1, 0.5 + trial / 10)
    job.advance()
    for arm in (0, 1):
        for trial in (2, 3):
            for run in job.of(arm, trial):
                job.reach(run, 3, 0.95 - trial / 100, pause=False)
                steps = job.advance()
    assert len(steps.create) == 2 * 3
    assert {(p.arm, p.trial) for p in steps.create} == {(0, 2), (1, 2)}  # 0.93 beats 0.92
    assert {p.seed for p in steps.create} == {1, 2, 3} and {p.phase for p in steps.create} == {2}
    assert [p.index for p in steps.create] == list(range(16, 22))
    assert steps.create[0].optimizer == job.of(0, 2)[0].optimizer


def test_a_reviewer_warns_of_asymmetric_searches_edges_and_few_final_seeds() -> None:
    from core.kinds.tune.compare import warnings_of
    from core.kinds.tune.protocol import Trial

    spec = parse_job(
        SPEC
        | {
            "optimizers": [
                {"name": "rmsprop", "search": {"learning_rate": {"log_uniform": [1e-4, 1e-1]}}},
                {
                    "name": "adam",
                    "search": {
                        "learning_rate": {"log_uniform": [1e-4, 1e-1]},
                        "epsilon": {"log_uniform": [1e-10, 1.0]},
                    },
                },
            ],
            "tuning": SPEC["tuning"] | {"sampler": "grid"},
        }
    )
    assert isinstance(spec, TuneSpec)
    drawn = spec.drawn()
    assert drawn[0][1] == {"learning_rate": pytest.approx(1e-3)}  # inside its range
    assert drawn[1][0] == {"epsilon": pytest.approx(1e-10), "learning_rate": pytest.approx(1e-4)}
    chosen = {
        0: Trial(arm=0, trial=1, config={}, runs=[], value=0.9, complete=True),
        1: Trial(arm=1, trial=0, config={}, runs=[], value=0.9, complete=True),
    }
    found = warnings_of(spec, chosen, spec.arm_labels())
    text = " | ".join(found)
    assert "rmsprop's epsilon is fixed (1e-07) while adam's search covers it" in text
    assert "only 3 final seeds" in text
    assert "adam's chosen learning_rate 0.0001 lies at the edge" in text
    assert "adam's chosen epsilon 1e-10 lies at the edge" in text
    assert "rmsprop's chosen" not in text
    assert len(found) == 4


def test_a_trial_that_died_before_a_rung_is_not_counted_again_at_the_next() -> None:
    spec = parse_job(
        SPEC
        | {
            "tuning": SPEC["tuning"]
            | {"tuning_seeds": [0], "prune": {"rungs": [1, 2], "keep": 0.5}}
        }
    )
    assert isinstance(spec, TuneSpec)
    job = Job()
    job.spec = spec
    job.runs = {i: r for i, r in job.runs.items() if r.seed == 0}
    for trial in range(4):
        [run] = job.of(0, trial)
        if trial == 0:
            job.set(run, status=RunStatus.DIVERGED, diverged_at=1)  # dies before rung 1
        else:
            job.reach(run, 1, 0.5 + trial / 10)
    job.advance()  # rung 1: 4 contenders (the dead one last), 2 go on: trials 3 and 2
    assert {t: job.of(0, t)[0].status for t in range(4)} == {
        0: RunStatus.DIVERGED,
        1: RunStatus.PRUNED,
        2: RunStatus.QUEUED,
        3: RunStatus.QUEUED,
    }
    for trial in (2, 3):
        job.reach(job.of(0, trial)[0], 2, 0.5 + trial / 10)
    job.advance()  # rung 2: 2 contenders (not the one dead since rung 1): 1 goes on
    assert {t: job.of(0, t)[0].status for t in (2, 3)} == {2: RunStatus.PRUNED, 3: RunStatus.QUEUED}
