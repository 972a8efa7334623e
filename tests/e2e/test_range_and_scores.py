"""The learning-rate range test feeding a tuning job, and a score across two real jobs,
through the real API, worker and CLI."""

import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Service
from tests.e2e.test_cli import optarena
from tests.e2e.test_tuning import records_of

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_a_range_test_suggests_learning_rates_and_a_tuning_job_takes_its_interval(
    service: Service, tmp_path: Path
) -> None:
    watched = optarena(
        service,
        "range-test",
        "--optimizers", "sgd,adam",
        "--batch-size", "64",
        "--min", "1e-5",
        "--max", "100",
        "--steps", "60",
        "--smoothing", "0.9",
        "--watch",
    )  # fmt: skip
    assert watched.returncode == 0, watched.stderr
    found = re.search(r"submitted range test ([0-9a-f-]+) \(2 runs\)", watched.stderr)
    assert found, watched.stderr
    job_id = found.group(1)
    assert "learning-rate range test: suggested learning rates" in watched.stdout
    job = service.http.get(f"/jobs/{job_id}").json()
    assert job["kind"] == "lr_range" and job["status"] == "succeeded"
    assert "learning_rate" not in job["spec"]["optimizers"][0]  # the test sets it
    runs = {r["id"]: r for r in job["runs"]}
    # the arms of the seed started from the same weights
    assert len({r["initial_weights_sha256"] for r in runs.values()}) == 1
    records = records_of(service, job_id)
    for run_id, steps in records.items():
        rates = [s["learning_rate"] for s in steps]
        assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))
        assert rates[0] == pytest.approx(1e-5) and rates == sorted(rates)
        summary = runs[run_id]["summary"]
        if summary["stopped_early"]:  # a blow-up is the test's normal end, not a divergence
            assert len(steps) == summary["stopped_at_step"] < 60
        else:
            assert len(steps) == 60
    answer = service.http.get(f"/jobs/{job_id}/comparison").json()
    assert answer["kind"] == "lr_range" and [a["label"] for a in answer["arms"]] == ["sgd", "adam"]
    for arm in answer["arms"]:
        low, high = arm["suggestion"]["usable"]
        assert 1e-5 < low < high <= 100
        assert arm["suggestion"]["minimum_div_10"] == pytest.approx(high / 10)
    picture = service.http.get(f"/jobs/{job_id}/plot.png")
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "lr-range.png").write_bytes(picture.content)

    usable = {a["label"]: a["suggestion"]["usable"] for a in answer["arms"]}
    tuned = service.submit(
        {
            "dataset": {"name": "digits"},
            "optimizers": [
                {"name": "sgd", "search": {"learning_rate": {"from_range_test": job_id}}},
                {"name": "adam", "search": {"learning_rate": {"from_range_test": job_id}}},
            ],
            "tuning": {"trials": 2, "tuning_seeds": [0], "final_seeds": [1]},
            "epochs": 1,
            "batch_size": 64,
        }
    )
    for optimizer in tuned["spec"]["optimizers"]:
        space = optimizer["search"]["learning_rate"]
        assert space["from_range_test"] == job_id
        assert space["log_uniform"] == pytest.approx(usable[optimizer["name"]], rel=1e-5)
    assert service.http.post(f"/jobs/{tuned['id']}/cancel").status_code == 202


def test_a_score_across_two_real_jobs(service: Service, tmp_path: Path) -> None:
    common = {"optimizers": ["sgd", "adam"], "seeds": [0, 1], "epochs": 3, "batch_size": 64}
    digits = service.submit(
        {"dataset": {"name": "digits"}, "model": {"preset": "mlp", "hidden_units": [16]}} | common
    )
    blobs = service.submit(
        {"dataset": {"name": "synthetic", "samples": 600, "features": 8, "classes": 3}} | common
    )
    for job in (digits, blobs):
        assert service.wait(job["id"])["status"] == "succeeded"
    targets = {digits["id"]: 0.85, blobs["id"]: 0.6}
    query: dict[str, Any] = {
        "job_id": list(targets),
        "target": [f"{j}:{v}" for j, v in targets.items()],
        "baseline": "adam",
        "time": "epochs",
    }
    answer = service.http.get("/scores", params=query).json()

    # the same answer, worked out here from the stored epochs
    expected_ratios: dict[str, list[float]] = defaultdict(list)
    for job_id, target in targets.items():
        job = service.http.get(f"/jobs/{job_id}").json()
        records = records_of(service, job_id)
        seed_times: dict[str, list[float]] = defaultdict(list)
        for run in job["runs"]:
            first = next(
                (
                    r["epoch"]
                    for r in records[run["id"]]
                    if r["epoch"] >= 1 and r["val_accuracy"] >= target
                ),
                float("inf"),
            )
            seed_times[run["label"]].append(first)
        times = {label: statistics.median(t) for label, t in seed_times.items()}
        fastest = min(times.values())
        workload = next(w for w in answer["workloads"] if w["job_id"] == job_id)
        shown = {a["label"]: a["time"] for a in workload["arms"]}
        assert shown == {k: (None if v == float("inf") else v) for k, v in times.items()}
        for label, t in times.items():
            expected_ratios[label].append(t / fastest if fastest != float("inf") else float("inf"))
    for arm in answer["arms"]:
        ratios = expected_ratios[arm["label"]]
        expected = sum(max(0.0, 4 - r) for r in ratios) / (len(ratios) * 3)
        assert arm["score"] == pytest.approx(expected) and arm["workloads"] == 2
    given = [arg for t in query["target"] for arg in ("--target", t)]
    plot = str(tmp_path / "scores.png")
    scored = optarena(
        service, "score", *targets, *given, "--baseline", "adam", "--time", "epochs", "--plot", plot
    )
    assert scored.returncode == 0, scored.stderr
    assert "scores across workloads" in scored.stdout and "epochs to target" in scored.stdout
    assert (tmp_path / "scores.png").read_bytes().startswith(b"\x89PNG")
    # the target view of one job: Kaplan-Meier fraction of runs reaching the target
    target_view = service.http.get(
        f"/jobs/{digits['id']}/plot.png",
        params={"view": "target", "target": 0.85, "metric": "val_accuracy"},
    )
    assert target_view.status_code == 200 and target_view.content.startswith(b"\x89PNG")
