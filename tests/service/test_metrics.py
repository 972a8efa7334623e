"""GET /metrics: Prometheus's text format with the API's requests and the service's state."""

import re

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from core.settings import Settings
from tests.conftest import auth
from tests.service.test_api import submit


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_by_route_and_read_the_queue_from_postgres(
    client: TestClient,
) -> None:
    before = samples(client.get("/metrics", headers=auth("admin")).text)
    job = submit(client, {"optimizers": ["sgd", "adam"], "epochs": 2})
    assert client.get(f"/jobs/{job['id']}", headers=auth()).status_code == 200
    assert client.get("/jobs/not-a-uuid", headers=auth()).status_code == 422
    answer = client.get("/metrics", headers=auth("admin"))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    after = samples(answer.text)
    counted = "optarena_http_requests_total"
    for route, status, more in (("/jobs", "201", 1), ("/jobs/{job_id}", "200", 1)):
        method = "POST" if status == "201" else "GET"
        labels = {"method": method, "route": route, "status": status}
        assert value(after, counted, **labels) - value(before, counted, **labels) == more
    assert value(after, counted, method="GET", route="/jobs/{job_id}", status="422") >= 1
    # One series per route, not per job: no id in any label.
    assert not re.search(r'route="[^"]*[0-9a-f]{8}-', answer.text)
    assert value(after, "optarena_http_request_seconds_count", method="POST", route="/jobs") >= 1
    assert value(after, "optarena_runs", status="queued") == 2
    assert value(after, "optarena_jobs", status="queued") == 1
    assert value(after, "optarena_queue_depth") == 2
    assert value(after, "optarena_oldest_queued_run_age_seconds") >= 0
    assert value(after, "optarena_postgres_up") == 1
    assert "optarena_sse_streams_open" in answer.text and "optarena_sse_lag_seconds" in answer.text


def test_metrics_need_an_admin_key_unless_made_public(
    test_settings: Settings, db_engine: object
) -> None:
    with TestClient(create_app(test_settings)) as keyless:
        refused = keyless.get("/metrics")
        assert refused.status_code == 401 and "admin key" in refused.json()["detail"]
        assert keyless.get("/metrics", headers=auth()).status_code == 403
    public = test_settings.model_copy(update={"metrics_public": True})
    with TestClient(create_app(public)) as open_client:
        assert open_client.get("/metrics").status_code == 200


def exported_series(text: str) -> set[str]:
    """Every series name a scrape of this text can hold: a counter's `_total`, a histogram's
    `_bucket`, `_sum` and `_count`, even before a sample exists."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
    return names


def test_the_grafana_dashboard_asks_only_for_series_the_service_exports(
    client: TestClient,
) -> None:
    import json

    from prometheus_client import REGISTRY, generate_latest

    import worker.metrics  # noqa: F401 (registers the worker's series here, as in a worker)
    from tests.conftest import ROOT

    api = client.get("/metrics", headers=auth("admin")).text
    exported = exported_series(api) | exported_series(generate_latest(REGISTRY).decode())
    dashboard = json.loads(
        (ROOT / "deploy" / "grafana" / "dashboards" / "optarena.json").read_text()
    )
    asked = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\boptarena_[a-z_]+", target["expr"])
    }
    assert len(asked) >= 10
    assert asked <= exported, sorted(asked - exported)
