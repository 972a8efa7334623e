"""Which job or run a request is about, for its log lines."""

from api.logs import about

JOB = "0b5f3c1e-7a2d-4c8e-9f10-1234567890ab"


def test_a_request_under_a_job_or_run_is_about_it() -> None:
    assert about(f"/jobs/{JOB}") == {"job_id": JOB}
    assert about(f"/jobs/{JOB}/metrics.ndjson") == {"job_id": JOB}
    assert about(f"/jobs/{JOB.upper()}/plot.png") == {"job_id": JOB}
    assert about(f"/runs/{JOB}/model.keras") == {"run_id": JOB}


def test_other_requests_are_about_nothing() -> None:
    assert about("/jobs") == about("/healthz") == about("/jobs/not-an-id") == {}
    assert about(f"/jobs/{JOB}x") == {}
