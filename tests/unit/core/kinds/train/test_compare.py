import uuid
from datetime import UTC, datetime

from core.kinds.train.arms import RunFacts
from core.kinds.train.compare import rank_runs
from core.kinds.train.reading import best_of, time_to_target
from core.kinds.train.records import TrainRecord


def record(
    run_id: uuid.UUID,
    epoch: int,
    val_accuracy: float | None,
    val_loss: float | None = None,
    seconds: float = 1.0,
) -> TrainRecord:
    return TrainRecord(
        run_id=run_id,
        epoch=epoch,
        loss=1.0,
        accuracy=0.5,
        val_loss=val_loss,
        val_accuracy=val_accuracy,
        learning_rate=0.01,
        epoch_seconds=seconds,
        examples_seen=100 * epoch,
        steps=4 * epoch,  # 100 examples an epoch at batch size 32
        time=datetime.now(UTC),
    )


def facts(index: int, label: str, status: str = "succeeded", epochs: int = 3) -> RunFacts:
    return RunFacts(
        id=uuid.uuid4(),
        index=index,
        label=label,
        arm_label=label,
        optimizer={"name": label},
        batch_size=32,
        epochs=epochs,
        seed=0,
        status=status,
    )


def test_best_of_prefers_the_earliest_epoch_on_a_tie() -> None:
    assert best_of([(1, 0.5), (2, 0.9), (3, 0.9)], higher=True) == (2, 0.9)
    assert best_of([(1, 0.5), (2, 0.2), (3, 0.2)], higher=False) == (2, 0.2)
    assert best_of([], higher=True) is None


def test_runs_rank_best_first_and_losses_lowest_first() -> None:
    sgd, adam = facts(0, "sgd"), facts(1, "adam")
    records = {
        sgd.id: [
            record(sgd.id, 0, 0.1, 2.3),
            record(sgd.id, 1, 0.5, 1.5),
            record(sgd.id, 2, 0.6, 1.2),
            record(sgd.id, 3, 0.7, 1.0),
        ],
        adam.id: [
            record(adam.id, 1, 0.8, 0.6),
            record(adam.id, 2, 0.95, 0.2),
            record(adam.id, 3, 0.9, 0.3),
        ],
    }
    by_acc = rank_runs([sgd, adam], records, metric="val_accuracy", budgets=[3])
    assert [r.label for r in by_acc] == ["adam", "sgd"]
    top = by_acc[0]
    assert (top.rank, top.best, top.best_epoch, top.final, top.final_epoch) == (1, 0.95, 2, 0.9, 3)
    by_loss = rank_runs([sgd, adam], records, metric="val_loss", budgets=[3])
    assert [r.label for r in by_loss] == ["adam", "sgd"]
    assert by_loss[0].best == 0.2


def test_epoch_zero_is_not_a_trained_result() -> None:
    run = facts(0, "sgd", epochs=1)
    records = {run.id: [record(run.id, 0, 0.99), record(run.id, 1, 0.3)]}
    [row] = rank_runs([run], records, metric="val_accuracy", budgets=[1])
    assert row.best == 0.3 and row.best_epoch == 1 and row.seconds == 1.0


def test_each_budget_is_reported_and_the_ranking_can_be_cut_at_one() -> None:
    fast, slow = facts(0, "fast", epochs=4), facts(1, "slow", epochs=4)
    records = {
        fast.id: [record(fast.id, e, v) for e, v in [(1, 0.7), (2, 0.8), (3, 0.81), (4, 0.82)]],
        slow.id: [record(slow.id, e, v) for e, v in [(1, 0.3), (2, 0.6), (3, 0.85), (4, 0.9)]],
    }
    full = rank_runs([fast, slow], records, metric="val_accuracy", budgets=[2, 4])
    assert [r.label for r in full] == ["slow", "fast"]
    slow_row = full[0]
    assert [(b.epochs, b.best, b.final) for b in slow_row.budgets] == [(2, 0.6, 0.6), (4, 0.9, 0.9)]
    cut = rank_runs([fast, slow], records, metric="val_accuracy", budgets=[2, 4], at_epochs=2)
    assert [r.label for r in cut] == ["fast", "slow"] and cut[0].final_epoch == 2


def test_time_to_target_counts_epochs_steps_seconds_and_examples() -> None:
    run_id = uuid.uuid4()
    records = [
        record(run_id, e, v, seconds=2.0) for e, v in [(0, 0.1), (1, 0.5), (2, 0.91), (3, 0.95)]
    ]
    reached = time_to_target(records, "val_accuracy", 0.9, higher=True)
    assert (reached.reached, reached.epochs, reached.steps, reached.seconds, reached.examples) == (
        True,
        2,
        8,
        4.0,
        200,
    )
    missed = time_to_target(records, "val_accuracy", 0.99, higher=True)
    assert not missed.reached and missed.epochs is None


def test_runs_without_values_rank_last_and_keep_their_reason() -> None:
    ok, failed = facts(0, "ok"), facts(1, "broken", status="failed")
    failed = RunFacts(**{**failed.__dict__, "error": "dataset 'mnist' is not in the cache"})
    records = {ok.id: [record(ok.id, 1, 0.2)], failed.id: []}
    ranking = rank_runs([failed, ok], records, metric="val_accuracy", budgets=[3], target=0.5)
    assert [r.label for r in ranking] == ["ok", "broken"]
    assert ranking[1].best is None and ranking[1].error is not None
    assert ranking[0].target is not None and not ranking[0].target.reached


def test_time_to_target_counts_the_runs_that_never_got_there_as_censored() -> None:
    """Fast reaches 0.9 at epochs 1, 2 on two seeds and never on the third (4 epochs trained);
    slow at epoch 4 on one seed, never on two. The Kaplan-Meier estimate keeps the runs that
    missed (censored at 4 epochs), and the log-rank test compares the arms."""
    from dataclasses import replace

    from core.kinds.train.compare import compare_runs
    from core.survival import Observation, kaplan_meier, logrank

    curves = {
        ("fast", 0): [0.5, 0.95, 0.95, 0.95],
        ("fast", 1): [0.5, 0.6, 0.91, 0.92],
        ("fast", 2): [0.5, 0.6, 0.7, 0.8],
        ("slow", 0): [0.5, 0.6, 0.7, 0.9],
        ("slow", 1): [0.5, 0.6, 0.7, 0.8],
        ("slow", 2): [0.4, 0.5, 0.6, 0.7],
    }
    runs, records = [], {}
    for i, ((label, seed), values) in enumerate(curves.items()):
        run = replace(facts(i, label, epochs=4), seed=seed)
        runs.append(run)
        records[run.id] = [record(run.id, e, v, seconds=0.5) for e, v in enumerate(values, start=1)]
    found = compare_runs(runs, records, metric="val_accuracy", budgets=[4], target=0.9)
    fast = next(a for a in found.ranking if a.label == "fast").target
    slow = next(a for a in found.ranking if a.label == "slow").target
    assert fast is not None and slow is not None
    assert (fast.reached, fast.runs, slow.reached) == (2, 3, 1)
    # The reached-only mean hides the miss (2.5 epochs); Kaplan-Meier's median is epoch 3.
    assert fast.epochs.mean == 2.5 and fast.estimate.epochs.median == 3
    assert slow.estimate.epochs.median is None  # two of three never got there
    assert fast.estimate.epochs == kaplan_meier(
        [Observation(2, True), Observation(3, True), Observation(4, False)]
    )
    assert fast.estimate.seconds.median == 1.5  # training seconds: 3 epochs x 0.5
    assert fast.estimate.steps.median == 12
    [pair] = found.target_pairs
    expected = logrank(
        [Observation(2, True), Observation(3, True), Observation(4, False)],
        [Observation(4, True), Observation(4, False), Observation(4, False)],
    )
    assert (pair.statistic, pair.p_value) == expected
    assert pair.p_holm == pair.p_value and pair.time == "epochs"
    assert "median 3 epochs" in found.table.rows[0]["target"]
