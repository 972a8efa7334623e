"""The API process as it runs: what its startup made is kept out of the collector's passes."""

import gc

from fastapi.testclient import TestClient

from api.app import create_app
from core.settings import Settings


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
