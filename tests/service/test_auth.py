"""Who gets in and how much they may ask: keys, owners, idempotent submits and the limits."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from api.app import create_app
from api.auth import KeyCache
from core.db import transaction
from core.keys import KeyRepository
from core.settings import Settings, get_settings
from tests.conftest import auth
from tests.service.test_api import record, store, submit, worker_context

JOB = {"optimizers": ["sgd", "adam"], "epochs": 2}


def job_paths(job_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/jobs/{job_id}"),
        ("GET", f"/jobs/{job_id}/metrics"),
        ("GET", f"/jobs/{job_id}/comparison"),
        ("GET", f"/jobs/{job_id}/export.csv"),
        ("GET", f"/jobs/{job_id}/plot.png"),
        ("GET", f"/jobs/{job_id}/plot.svg"),
        ("GET", f"/jobs/{job_id}/events"),
        ("POST", f"/jobs/{job_id}/cancel"),
    ]


def test_every_endpoint_but_health_wants_a_key(client: TestClient) -> None:
    job = submit(client, JOB)
    anonymous = {"authorization": ""}
    for method, path in [*job_paths(job["id"]), ("GET", "/jobs"), ("POST", "/jobs")]:
        answer = client.request(method, path, headers=anonymous, json=JOB)
        assert answer.status_code == 401, (path, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "optarena keys create" in answer.json()["detail"]
    wrong = client.get("/jobs", headers={"authorization": "Bearer oa_guessed"})
    assert wrong.status_code == 401 and "not valid" in wrong.json()["detail"]
    basic = client.get("/jobs", headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/"):
        assert client.get(path, headers=anonymous).status_code == 200, path


def test_another_owners_job_is_not_found_anywhere_and_admins_see_all(
    client: TestClient, sessions: sessionmaker[Session], test_settings: Settings, stream: Any
) -> None:
    job = submit(client, JOB)
    store(
        job, [record(job["runs"][0]["id"], 1, 0.5)], worker_context(test_settings, sessions, stream)
    )
    for method, path in job_paths(job["id"]):
        answer = client.request(method, path, headers=auth("other"))
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json() == {"detail": f"no job {job['id']}"}
    assert client.get("/jobs", headers=auth("other")).json()["total"] == 0
    across = client.post(
        "/comparisons", json={"run_ids": [job["runs"][0]["id"]]}, headers=auth("other")
    )
    assert across.status_code == 404 and "no run" in across.json()["detail"]
    mine = client.get("/jobs").json()
    assert mine["total"] == 1 and mine["items"][0]["owner"] == "tester"
    admin = client.get(f"/jobs/{job['id']}", headers=auth("admin"))
    assert admin.status_code == 200 and admin.json()["owner"] == "tester"
    assert client.get("/jobs", headers=auth("admin")).json()["total"] == 1


def test_keys_are_stored_hashed_and_revoked_keys_are_refused(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    with transaction(sessions) as session:
        key, secret = KeyRepository(session).create(owner="carol")
    with sessions() as session:
        stored = session.execute(text("SELECT key_sha256, prefix FROM api_keys")).all()
    assert all(secret not in row.key_sha256 for row in stored)
    assert secret.startswith(key.prefix) and len(secret) > 40
    carol = {"authorization": f"Bearer {secret}"}
    assert client.get("/session", headers=carol).json() == {"owner": "carol", "admin": False}
    with transaction(sessions) as session:
        assert [k.id for k in KeyRepository(session).revoke(key.prefix)] == [key.id]
    assert client.get("/jobs", headers=carol).status_code == 401


def test_a_cached_key_is_refused_once_its_window_has_passed_after_revocation(
    test_settings: Settings, db_engine: object, sessions: sessionmaker[Session]
) -> None:
    now = [1000.0]
    with transaction(sessions) as session:
        key, secret = KeyRepository(session).create(owner="erin")
    erin = {"authorization": f"Bearer {secret}"}
    settings = test_settings.model_copy(update={"key_cache_seconds": 30})
    with TestClient(create_app(settings)) as api:
        api.app.state.keys = KeyCache(30, clock=lambda: now[0])  # type: ignore[attr-defined]
        assert api.get("/session", headers=erin).status_code == 200
        with transaction(sessions) as session:
            KeyRepository(session).revoke(key.prefix)
        now[0] += 29  # within the window the process still trusts what it looked up
        assert api.get("/session", headers=erin).status_code == 200
        now[0] += 2
        assert api.get("/session", headers=erin).status_code == 401
        assert api.get("/session", headers={"authorization": "Bearer oa_wrong"}).status_code == 401


def test_the_dashboard_session_cookie_authenticates_and_is_httponly(
    test_settings: Settings, db_engine: object, redis_client: object
) -> None:
    with TestClient(create_app(test_settings)) as browser:
        assert browser.get("/session").status_code == 401
        opened = browser.post("/session", headers=auth())
        assert opened.status_code == 200 and opened.json()["owner"] == "tester"
        cookie = opened.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert browser.get("/jobs").status_code == 200  # the cookie alone
        assert browser.delete("/session").status_code == 204
        browser.cookies.clear()
        assert browser.get("/jobs").status_code == 401


def test_the_same_idempotency_key_returns_the_same_job_and_refuses_another_body(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    first = client.post("/jobs", json=JOB, headers={"idempotency-key": "retry-1"})
    again = client.post("/jobs", json=JOB, headers={"idempotency-key": "retry-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    # The same body spelled differently (key order, defaults written out) is the same request.
    spelled = client.post(
        "/jobs",
        json={"epochs": 2, "optimizers": ["sgd", "adam"]},
        headers={"idempotency-key": "retry-1"},
    )
    assert spelled.status_code == 200 and spelled.json()["id"] == first.json()["id"]
    other = client.post("/jobs", json={**JOB, "epochs": 3}, headers={"idempotency-key": "retry-1"})
    assert other.status_code == 422 and "another request" in other.json()["detail"]
    theirs = client.post("/jobs", json=JOB, headers={"idempotency-key": "retry-1", **auth("other")})
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    with sessions() as session:
        assert session.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 2


@pytest.fixture
def limited(
    test_settings: Settings, db_engine: object, redis_client: object
) -> Iterator[TestClient]:
    settings = test_settings.model_copy(
        update={"max_body_bytes": 2048, "max_active_runs_per_owner": 5, "rate_limit_per_minute": 8}
    )
    with TestClient(create_app(settings), headers=auth()) as client:
        yield client


def test_a_body_over_the_limit_is_413_declared_or_streamed(limited: TestClient) -> None:
    big = {**JOB, "name": "x" * 4000}
    answer = limited.post("/jobs", json=big)
    assert answer.status_code == 413 and "limit of 2048 bytes" in answer.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"name": "'
        for _ in range(10):
            yield b"y" * 400
        yield b'"}'

    streamed = limited.post("/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


def test_queued_runs_per_owner_and_requests_per_minute_are_limited(limited: TestClient) -> None:
    submit(limited, {"optimizers": ["sgd", "adam"], "seeds": [0, 1]})  # 4 runs
    over = limited.post("/jobs", json=JOB)  # 2 more: 6 > 5
    assert over.status_code == 429
    assert (
        "4 runs queued or running" in over.json()["detail"]
        and "limit is 5" in over.json()["detail"]
    )
    assert limited.post("/jobs", json={"optimizers": ["sgd"]}).status_code == 201  # exactly 5
    assert limited.post("/jobs", json=JOB, headers=auth("other")).status_code == 201
    codes = [limited.get("/jobs").status_code for _ in range(8)]
    assert codes[-1] == 429 and codes.count(429) >= 1
    refused = limited.get("/jobs")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) <= 60
    assert "requests a minute" in refused.json()["detail"]
    assert limited.get("/jobs", headers=auth("other")).status_code == 200  # per key
    assert limited.get("/healthz").status_code == 200


def test_keys_are_made_listed_and_revoked_with_the_command(
    test_settings: Settings, db_engine: object, monkeypatch: pytest.MonkeyPatch, client: TestClient
) -> None:
    from optarena_client.cli import add_plugins, app

    add_plugins()

    monkeypatch.setenv("OPTARENA_DATABASE_URL", test_settings.database_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        made = runner.invoke(app, ["keys", "create", "--owner", "dave", "--admin"])
        assert made.exit_code == 0, made.output
        secret = made.stdout.strip().splitlines()[-1]
        who = client.get("/session", headers={"authorization": f"Bearer {secret}"}).json()
        assert who == {"owner": "dave", "admin": True}
        listed = runner.invoke(app, ["keys", "list", "--owner", "dave"])
        assert "dave" in listed.stdout and secret not in listed.stdout
        revoked = runner.invoke(app, ["keys", "revoke", secret[:10]])
        assert revoked.exit_code == 0 and "revoked" in revoked.stdout
        assert client.get("/jobs", headers={"authorization": f"Bearer {secret}"}).status_code == 401
        assert runner.invoke(app, ["keys", "revoke", "nonsense"]).exit_code != 0
        assert runner.invoke(app, ["keys", "create", "--owner", " "]).exit_code != 0
    finally:
        get_settings.cache_clear()


def test_the_cli_sends_its_key(client: TestClient) -> None:
    from optarena_client import Client

    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"items": [], "total": 0, "limit": 20, "offset": 0})

    with Client("http://api", api_key="oa_k", transport=httpx.MockTransport(handler)) as c:
        c.json("GET", "/jobs")
    assert seen == ["Bearer oa_k"]
