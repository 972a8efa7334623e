"""The API process as it runs: what its startup made is kept out of the collector's passes,
and a burst of one owner's requests, larger than its pools, is answered in full."""

import asyncio
import gc

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from core.settings import Settings
from tests.conftest import auth


def test_the_apis_startup_objects_are_frozen_out_of_the_collectors_full_passes_once(
    test_settings: Settings,
) -> None:
    gc.unfreeze()  # as a new process: an earlier app of this test process froze its startup
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(test_settings)) as api:
        assert api.get("/healthz").status_code == 200
        # every module, the app and its schemas: well over 100,000 objects
        frozen = gc.get_freeze_count()
        assert frozen > 100_000
    with TestClient(create_app(test_settings)) as again:  # a second app is left collectable
        assert again.get("/healthz").status_code == 200
        assert gc.get_freeze_count() <= frozen  # (frozen objects freed since count no more)


def test_one_owners_burst_larger_than_the_pools_is_answered_in_full(
    live_url: str, db_engine: object
) -> None:
    """60 submissions at once from one key: more than the process's 15 connections and 40
    threads. They queue on the owner's lock in Postgres; without the admission limit the
    ones holding connections waited for threads held by ones waiting for connections, until
    the pool's timeout failed them with 500s."""
    burst = 60

    async def submit_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=burst, max_keepalive_connections=burst)
        async with httpx.AsyncClient(
            base_url=live_url, headers=auth(), timeout=300, limits=limits
        ) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/jobs",
                        json={"optimizers": ["sgd"], "epochs": 1},
                        headers={"idempotency-key": f"burst-{i}"},
                    )
                    for i in range(burst)
                )
            )

    answers = asyncio.run(submit_all())
    assert [a.status_code for a in answers] == [201] * burst, [a.text for a in answers][:3]
    assert len({a.json()["id"] for a in answers}) == burst
    with db_engine.connect() as conn:  # type: ignore[attr-defined]
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == burst
