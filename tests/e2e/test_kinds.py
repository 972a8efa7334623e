"""A job kind is a plug-in: a kind that ships outside the source tree (tests/e2e/plugins) is
submitted, run by the real worker, streamed, stored, paged, compared, exported and drawn by
the real API, none of whose routes, stream, cursor or repositories know it."""

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from optarena_client import Client

from tests.e2e.conftest import Service, start_service

pytestmark = pytest.mark.e2e

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture(scope="module")
def with_countdown(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from start_service(
        f"optarena_e2e_kinds_{os.getpid()}",
        tmp_path_factory.mktemp("kinds"),
        extra_path=PLUGINS,
    )


def test_a_kind_in_a_folder_of_its_own_runs_through_the_whole_service(
    with_countdown: Service,
) -> None:
    service = with_countdown
    kinds = {k["name"]: k for k in service.http.get("/kinds").json()}
    assert (
        set(kinds) == {"train", "race", "tune", "lr_range", "countdown"}
        and kinds["countdown"]["unit"] == "step"
    )
    schema = service.http.get("/openapi.json").json()
    assert "CountdownSpec" in schema["components"]["schemas"]
    bad = service.http.post("/jobs", json={"kind": "countdown", "optimizers": ["sgd"], "steps": 99})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "steps"]

    body = {"kind": "countdown", "optimizers": [{"name": "sgd", "learning_rate": 0.5}, "adam"]}
    job = service.wait(service.submit(body)["id"])
    assert job["status"] == "succeeded" and job["unit"] == "step"
    assert [r["budget"] for r in job["runs"]] == [5, 5]

    page = service.http.get(f"/jobs/{job['id']}/metrics").json()
    assert page["kind"] == "countdown" and page["done"]
    assert [(i["step"], i["value"]) for i in page["items"][:6]] == [
        (s, 0.5 * (5 - s)) for s in range(6)
    ]
    with Client(service.url, api_key=service.key) as client:
        events = [e for e in client.events(job["id"]) if e.event == "record"]
    assert [e.id for e in events] == [str(n) for n in range(1, 13)]

    answer = service.http.get(f"/jobs/{job['id']}/comparison").json()
    assert answer["kind"] == "countdown" and answer["finals"] == {"sgd(lr=0.5)": 0.0, "adam": 0.0}
    rows = list(csv.DictReader(io.StringIO(service.http.get(f"/jobs/{job['id']}/export.csv").text)))
    assert len(rows) == 12 and {"step", "value"} <= set(rows[0])
    picture = service.http.get(f"/jobs/{job['id']}/plot.png")
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
