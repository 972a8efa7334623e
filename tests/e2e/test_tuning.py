"""A tuned comparison through the real API and worker: phase 1 searches with pruning, the
service queues phase 2 itself, and the verdict comes from the final seeds' test set."""

import csv
import io
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Service
from tests.e2e.test_cli import optarena

pytestmark = pytest.mark.e2e

SMALL: dict[str, Any] = {
    "name": "tuned sgd vs adam",
    "dataset": {"name": "digits"},
    "model": {"preset": "mlp", "hidden_units": [32]},
    "optimizers": [
        {"name": "sgd", "momentum": 0.9, "search": {"learning_rate": {"log_uniform": [1e-3, 1.0]}}},
        {"name": "adam", "search": {"learning_rate": {"log_uniform": [1e-4, 1e-1]}}},
    ],
    "tuning": {
        "trials": 4,
        "tuning_seeds": [0],
        "final_seeds": [1, 2, 3],
        "prune": {"rungs": [1], "keep": 0.5},
    },
    "epochs": 3,
    "batch_size": 64,
}


def records_of(service: Service, job_id: str) -> dict[str, list[dict[str, Any]]]:
    page = service.http.get(f"/jobs/{job_id}/metrics", params={"limit": 10000}).json()
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in page["items"]:
        found[item["run_id"]].append(item)
    return found


def test_a_tuned_comparison_searches_prunes_chooses_on_validation_and_judges_on_fresh_seeds(
    service: Service, tmp_path: Path
) -> None:
    (tmp_path / "tuned.json").write_text(json.dumps(SMALL))
    watched = optarena(service, "submit", str(tmp_path / "tuned.json"), "--watch", timeout=600)
    assert watched.returncode == 0, watched.stderr
    job_id = re.search(r"submitted job ([0-9a-f-]+) \(8 runs\)", watched.stderr)
    assert job_id, watched.stderr  # phase 2 is not planned yet: 8 runs at submit
    job = {"id": job_id.group(1)}
    # the watch learned of phase 2's runs as they came, and ended with the comparison
    assert len(re.findall(r"trial \d seed 0 \(phase 1\) \[pruned", watched.stderr)) == 4
    assert len(re.findall(r"trial \d seed \d \(phase 2\) \[succeeded\]", watched.stderr)) == 6
    for shown in (
        "tuned comparison by val_accuracy",
        "chosen configuration",
        "expected best",
        "warning: only 3 final seeds",
        "equal search budget of 4 trials",
    ):
        assert shown in " ".join(watched.stdout.split()), watched.stdout
    done = service.wait(job["id"], timeout=600)
    assert done["status"] == "succeeded", [(r["status"], r["error"]) for r in done["runs"]]
    runs = done["runs"]
    phase1 = [r for r in runs if r["phase"] == 1]
    phase2 = [r for r in runs if r["phase"] == 2]
    assert len(phase1) == 8 and len(phase2) == 6
    records = records_of(service, job["id"])

    # every record exactly once, and phase 1 never touched the test set
    for run in runs:
        epochs = [r["epoch"] for r in records[run["id"]]]
        assert epochs == sorted(set(epochs))
    assert all(r["test_accuracy"] is None for run in phase1 for r in records[run["id"]])

    # the rung: per optimizer, two of four trials went on (paused, resumed), two were pruned
    for arm in (0, 1):
        trials = [r for r in phase1 if r["arm"] == arm]
        at_rung = {r["trial"]: records[r["id"]][1]["val_accuracy"] for r in trials}
        pruned = [r for r in trials if r["status"] == "pruned"]
        kept = [r for r in trials if r["status"] == "succeeded"]
        assert len(pruned) == 2 and len(kept) == 2, [r["status"] for r in trials]
        assert min(at_rung[r["trial"]] for r in kept) >= max(at_rung[r["trial"]] for r in pruned)
        for run in pruned:
            assert run["summary"]["pruned_at"] == 1 and "pruned at epoch 1" in run["error"]
            assert [r["epoch"] for r in records[run["id"]]] == [0, 1]
        for run in kept:
            assert run["cleared_at"] == 1 and run["attempt"] == 2  # paused, then resumed
            assert [r["epoch"] for r in records[run["id"]]] == [0, 1, 2, 3]

    # the choice: the best validation value among complete trials; phase 2 trains it
    answer = service.http.get(f"/jobs/{job['id']}/comparison").json()
    assert answer["kind"] == "tune" and answer["phase"] == "done"
    assert answer["protocol"]["equal_budget"] is True
    for arm, tuned in enumerate(answer["optimizers"]):
        complete = [r for r in phase1 if r["arm"] == arm and r["status"] == "succeeded"]
        best = max(
            complete,
            key=lambda r: (
                max(x["val_accuracy"] for x in records[r["id"]] if x["epoch"] >= 1),
                -r["trial"],
            ),
        )
        assert tuned["chosen"]["trial"] == best["trial"]
        finals = [r for r in phase2 if r["arm"] == arm]
        assert sorted(r["seed"] for r in finals) == [1, 2, 3]
        assert all(
            r["optimizer"] == best["optimizer"] and r["trial"] == best["trial"] for r in finals
        )
        tests = [
            next(x["test_accuracy"] for x in records[r["id"]] if x["epoch"] == 3) for r in finals
        ]
        assert tuned["final_test"]["n"] == 3
        assert tuned["final_test"]["mean"] == pytest.approx(statistics.mean(tests))
        assert (
            tuned["final_test"]["ci_low"]
            < tuned["final_test"]["mean"]
            < tuned["final_test"]["ci_high"]
        )
        # budget curve: k = 1 is the mean of the trials' values, rising with k
        values = [t["value"] for t in tuned["trials"]]
        curve = [p["expected"] for p in tuned["budget_curve"]]
        assert len(curve) == 4 and curve[0] == pytest.approx(statistics.mean(values))
        assert curve == sorted(curve) and curve[-1] <= max(values) + 1e-12
    # arms of a final seed start from the same weights
    for seed in (1, 2, 3):
        assert len({r["initial_weights_sha256"] for r in phase2 if r["seed"] == seed}) == 1
    assert {v["label"] for v in answer["verdict"]} == {"sgd(momentum=0.9)", "adam"}
    assert len(answer["final"]["test_pairs"]) == 1
    assert answer["spent"]["saved_epochs"] == 2 * 2 * 2  # two pruned trials x two epochs each
    assert any("final seeds" in w for w in answer["warnings"])  # three are fewer than five

    for view in ("budget", "sensitivity", "curves"):
        image = service.http.get(f"/jobs/{job['id']}/plot.png", params={"view": view})
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    rows = list(csv.DictReader(io.StringIO(service.http.get(f"/jobs/{job['id']}/export.csv").text)))
    assert {(r["phase"], r["status"]) for r in rows} >= {("1", "pruned"), ("2", "succeeded")}


def test_a_tuning_job_with_a_bad_search_is_refused_with_where_and_why(service: Service) -> None:
    body = {
        **SMALL,
        "optimizers": [{"name": "sgd", "search": {"momentum": {"uniform": [0.5, 1.5]}}}, "adam"],
    }
    answer = service.http.post("/jobs", json=body)
    assert answer.status_code == 422
    assert "1.5 is not a value sgd takes" in answer.text
    unequal = {**SMALL, "optimizers": [SMALL["optimizers"][0], "adam"]}
    answer = service.http.post("/jobs", json=unequal)
    assert answer.status_code == 422 and "budgets differ" in answer.text
