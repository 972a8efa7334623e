from core.expand import expand_job
from core.spec import JobSpec


def test_job_is_optimizers_times_batch_sizes_times_seeds() -> None:
    spec = JobSpec.model_validate(
        {
            "optimizers": ["sgd", "adam", "rmsprop"],
            "batch_size": [32, 128],
            "seeds": [0, 1],
            "epochs": [5, 10],
        }
    )
    runs = expand_job(spec)
    assert len(runs) == 12
    assert [r.index for r in runs] == list(range(12))
    combos = {(r.optimizer["name"], r.batch_size, r.seed) for r in runs}
    assert len(combos) == 12


def test_epoch_budgets_share_one_run_to_the_largest() -> None:
    spec = JobSpec.model_validate({"optimizers": ["adam"], "epochs": [20, 5, 10]})
    [run] = expand_job(spec)
    assert run.epochs == 20


def test_runs_of_one_seed_come_together_and_labels_show_the_batch_size() -> None:
    spec = JobSpec.model_validate(
        {"optimizers": ["sgd", "adam"], "batch_size": [16, 64], "seeds": [7, 8]}
    )
    runs = expand_job(spec)
    assert [r.seed for r in runs] == [7, 7, 7, 7, 8, 8, 8, 8]
    assert runs[0].label == "sgd bs=16" and runs[3].label == "adam bs=64"
    assert [r.arm for r in runs[:4]] == [0, 1, 0, 1]


def test_single_batch_size_keeps_plain_labels() -> None:
    spec = JobSpec.model_validate({"optimizers": [{"name": "adam", "label": "mine"}]})
    assert expand_job(spec)[0].label == "mine"
