"""Arms over seeds (core.kinds.train.arms and compare_runs), against scipy and by hand."""

import math
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import stats

from core.kinds.train.arms import Cut, RunFacts
from core.kinds.train.compare import compare_runs
from core.kinds.train.reading import area_under_curve, generalization_gap
from core.kinds.train.records import TrainRecord
from core.statistics import holm, summarize

# ---------------------------------------------------------------- curve measures


def test_area_under_the_curve_is_the_average_level() -> None:
    assert area_under_curve([(0, 0.0), (1, 1.0), (2, 1.0)]) == pytest.approx(0.75)
    assert area_under_curve([(1, 0.4)]) == 0.4
    assert area_under_curve([(0, 0.1), (2, 0.9)]) is None  # a missing epoch
    assert area_under_curve([]) is None


def rec(
    run_id: uuid.UUID,
    epoch: int,
    val_accuracy: float | None,
    *,
    accuracy: float | None = None,
    seconds: float = 1.0,
) -> TrainRecord:
    return TrainRecord(
        run_id=run_id,
        epoch=epoch,
        loss=1.0 - (accuracy or 0.0),
        accuracy=accuracy,
        val_loss=None if val_accuracy is None else 1.0 - val_accuracy,
        val_accuracy=val_accuracy,
        learning_rate=0.001,
        epoch_seconds=seconds,
        examples_seen=1000 * epoch,
        steps=32 * epoch,
        time=datetime.now(UTC),
    )


def test_generalization_gap_is_train_minus_validation_of_the_metric_family() -> None:
    r = rec(uuid.uuid4(), 3, 0.9, accuracy=0.97)
    assert generalization_gap(r, "val_accuracy") == pytest.approx(0.07)
    assert generalization_gap(r, "val_loss") == pytest.approx((1 - 0.97) - (1 - 0.9))
    assert generalization_gap(rec(uuid.uuid4(), 1, None, accuracy=0.5), "accuracy") is None


# ---------------------------------------------------------------- arms over seeds


def run(
    arm: str,
    seed: int,
    *,
    batch_size: int = 32,
    epochs: int = 3,
    status: str = "succeeded",
    diverged_epoch: int | None = None,
) -> RunFacts:
    return RunFacts(
        id=uuid.uuid4(),
        index=0,
        label=arm,
        arm_label=arm,
        optimizer={"name": arm},
        batch_size=batch_size,
        epochs=epochs,
        seed=seed,
        status=status,
        diverged_epoch=diverged_epoch,
    )


def curve(run_facts: RunFacts, values: list[float]) -> list[TrainRecord]:
    return [rec(run_facts.id, e, v, accuracy=min(1.0, v + 0.05)) for e, v in enumerate(values)]


ADAM = {0: [0.1, 0.80, 0.90, 0.93], 1: [0.1, 0.82, 0.91, 0.95], 2: [0.1, 0.79, 0.88, 0.94]}
RMSPROP = {0: [0.1, 0.80, 0.89, 0.925], 1: [0.1, 0.83, 0.92, 0.94], 2: [0.1, 0.78, 0.87, 0.945]}
SGD = {0: [0.1, 0.40, 0.55, 0.70], 1: [0.1, 0.45, 0.60, 0.72], 2: [0.1, 0.42, 0.58, 0.69]}


def three_arms() -> tuple[list[RunFacts], dict[uuid.UUID, list[TrainRecord]]]:
    runs, records = [], {}
    for seed in range(3):
        for arm, table in (("sgd", SGD), ("adam", ADAM), ("rmsprop", RMSPROP)):
            r = run(arm, seed)
            runs.append(r)
            records[r.id] = curve(r, table[seed])
    return runs, records


def test_arms_aggregate_over_seeds_and_tied_arms_share_a_group() -> None:
    runs, records = three_arms()
    result = compare_runs(runs, records, metric="val_accuracy", budgets=[3], target=0.9)
    assert [a.label for a in result.ranking] == ["adam", "rmsprop", "sgd"]
    adam, rmsprop, sgd = result.ranking
    assert adam.best.values == [0.93, 0.95, 0.94] and adam.best.mean == pytest.approx(0.94)
    assert adam.best == summarize([0.93, 0.95, 0.94])
    assert adam.seeds == [0, 1, 2] and adam.final.n == 3
    # Adam and RMSprop differ by noise; SGD is far behind in every seed.
    assert (adam.group, rmsprop.group, sgd.group) == (1, 1, 2)
    assert adam.tied_with == [rmsprop.key] and sgd.tied_with == []

    pairs = {frozenset((p.a, p.b)): p for p in result.pairs}
    assert len(pairs) == 3
    adam_sgd = pairs[frozenset((adam.key, sgd.key))]
    expected = stats.ttest_rel([0.93, 0.95, 0.94], [0.70, 0.72, 0.69])
    assert adam_sgd.p_value == pytest.approx(expected.pvalue)
    raw = [p.p_value or 0.0 for p in result.pairs]
    assert [p.p_holm for p in result.pairs] == pytest.approx(holm(raw))
    assert adam_sgd.significant and not pairs[frozenset((adam.key, rmsprop.key))].significant
    assert "Holm" in result.significance and result.seeds == [0, 1, 2]


def test_the_mean_curve_has_a_band_and_the_measures_are_per_seed() -> None:
    runs, records = three_arms()
    result = compare_runs(runs, records, metric="val_accuracy", budgets=[3], target=0.9)
    adam = result.ranking[0]
    assert [p.epoch for p in adam.curve] == [0, 1, 2, 3]
    at2 = adam.curve[2]
    assert at2.mean == pytest.approx(np.mean([0.90, 0.91, 0.88]))
    expected_low, _ = stats.t.interval(
        0.95, 2, loc=np.mean([0.90, 0.91, 0.88]), scale=stats.sem([0.90, 0.91, 0.88])
    )
    assert at2.ci_low == pytest.approx(expected_low)
    # AUC: the average of the curve from epoch 0 to 3, trapezoid rule, one value per seed.
    auc_seed0 = (0.1 / 2 + 0.80 + 0.90 + 0.93 / 2) / 3
    assert adam.auc.values[0] == pytest.approx(auc_seed0)
    assert adam.generalization_gap.mean == pytest.approx(0.05)
    assert adam.stability == pytest.approx(np.std([0.93, 0.95, 0.94], ddof=1))
    # Target 0.9: Adam reaches it at epoch 2 in seeds 0 and 1, at epoch 3 in seed 2.
    assert adam.target is not None
    assert (adam.target.reached, adam.target.epochs.values) == (3, [2, 2, 3])
    sgd = result.ranking[2]
    assert sgd.target is not None and sgd.target.reached == 0
    assert sgd.target.not_reached_seeds == [0, 1, 2]


def test_one_seed_claims_no_significance() -> None:
    runs, records = three_arms()
    seed0 = [r for r in runs if r.seed == 0]
    result = compare_runs(seed0, records, metric="val_accuracy", budgets=[3])
    assert "no significance can be claimed" in result.significance
    assert all(a.group is None and a.tied_with == [] for a in result.ranking)
    assert all(p.p_value is None and not p.significant for p in result.pairs)
    assert [a.label for a in result.ranking] == ["adam", "rmsprop", "sgd"]


def test_losses_rank_lowest_first_and_final_can_rank() -> None:
    runs, records = three_arms()
    result = compare_runs(runs, records, metric="val_loss", budgets=[3], ranked_by="final")
    assert [a.label for a in result.ranking][-1] == "sgd"
    assert not result.higher_is_better and result.ranked_by == "final"
    assert result.ranking[0].ranked_value == result.ranking[0].final


def test_cuts_compare_batch_sizes_at_different_budgets_in_one_answer() -> None:
    runs, records = [], {}
    for seed in range(3):
        small = run("adam", seed, batch_size=32, epochs=4)
        large = run("adam", seed, batch_size=128, epochs=4)
        runs += [small, large]
        records[small.id] = curve(small, [0.1, 0.8, 0.85, 0.86 + seed / 100, 0.87])
        records[large.id] = curve(large, [0.1, 0.5, 0.7, 0.8, 0.9 + seed / 100])
    result = compare_runs(
        runs,
        records,
        metric="val_accuracy",
        budgets=[2, 4],
        cuts=[Cut(batch_size=32, epochs=2), Cut(batch_size=128, epochs=4)],
    )
    assert [a.key for a in result.ranking] == ["adam bs=128 epochs=4", "adam bs=32 epochs=2"]
    assert result.ranking[1].best.values == [0.85, 0.85, 0.85]
    assert [b.epochs for b in result.ranking[0].budgets] == [2]  # the other listed budget
    assert result.ranking[0].budgets[0].final.mean == pytest.approx(0.7)


def test_diverged_and_failed_runs_are_reported_with_their_epoch_and_reason() -> None:
    ok = [run("adam", s) for s in range(2)]
    bad = run("sgd", 0, status="diverged", diverged_epoch=2)
    broken = RunFacts(**{**run("sgd", 1, status="failed").__dict__, "error": "out of memory"})
    records = {r.id: curve(r, [0.1, 0.5, 0.6, 0.7]) for r in ok}
    records[bad.id] = [rec(bad.id, 0, 0.1), rec(bad.id, 1, 0.3), rec(bad.id, 2, math.nan)]
    result = compare_runs([*ok, bad, broken], records, metric="val_accuracy", budgets=[3])
    sgd = next(a for a in result.ranking if a.label == "sgd")
    assert [(n.seed, n.epoch) for n in sgd.diverged] == [(0, 2)]
    assert [(n.seed, n.reason) for n in sgd.failed] == [(1, "out of memory")]
    assert sgd.best.n == 1 and sgd.final.n == 0  # the diverged run never reached epoch 3
    assert [r.status for r in result.runs][-1] == "failed"


def test_the_test_set_reports_beside_the_ranking_and_never_changes_it() -> None:
    # Validation ranks adam first; on the held-out test set (at the budget, epoch 3) rmsprop
    # happens to do better. The ranking stays validation's; the test figures sit beside it.
    runs, records = three_arms()
    held_out = {"sgd": [0.60, 0.61, 0.62], "adam": [0.80, 0.82, 0.81], "rmsprop": [0.9, 0.91, 0.92]}
    for r in runs:
        last = records[r.id][-1]
        value = held_out[r.arm_label][r.seed]
        records[r.id][-1] = last.model_copy(update={"test_accuracy": value, "test_loss": 1 - value})
    result = compare_runs(runs, records, metric="val_accuracy", budgets=[3])
    assert [a.label for a in result.ranking] == ["adam", "rmsprop", "sgd"]
    adam, rmsprop, _ = result.ranking
    assert result.test_metric == "test_accuracy"
    assert adam.test == summarize([0.80, 0.82, 0.81])
    assert rmsprop.test.mean == pytest.approx(0.91)
    pairs = {frozenset((p.a, p.b)): p for p in result.test_pairs}
    expected = stats.ttest_rel([0.80, 0.82, 0.81], [0.9, 0.91, 0.92])
    assert pairs[frozenset((adam.key, rmsprop.key))].p_value == pytest.approx(expected.pvalue)
    assert "validation data" in result.selection and "held-out test set" in result.selection
    assert result.table.rows[0]["test"].startswith("0.8100")
    by_loss = compare_runs(runs, records, metric="val_loss", budgets=[3])
    assert by_loss.test_metric == "test_loss"
    # Read at an epoch the test set was not evaluated at, there is no test figure, and the
    # answer says why.
    early = compare_runs(runs, records, metric="val_accuracy", budgets=[3], cuts=[Cut(32, 2)])
    assert all(a.test.n == 0 for a in early.ranking) and "no test figures" in early.selection
