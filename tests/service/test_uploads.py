"""Uploads over HTTP against real Postgres and a real artifact store, each test run twice: on a
directory and on S3 (moto's server, a real S3-compatible process on a spare port)."""

import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.artifacts import ArtifactStore, open_store
from core.settings import Settings
from tests.conftest import S3Server, auth


@pytest.fixture(params=["directory", "s3"])
def store_settings(
    request: pytest.FixtureRequest, test_settings: Settings, tmp_path: Path
) -> Settings:
    settings = test_settings.model_copy(
        update={"artifacts_url": str(tmp_path / "artifacts"), "max_upload_bytes": 200_000}
    )
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        settings = server.settings(settings, server.bucket())
    return settings


@pytest.fixture
def api(store_settings: Settings, db_engine: object, redis_client: object) -> Iterator[TestClient]:
    with TestClient(create_app(store_settings), headers=auth()) as client:
        yield client


@pytest.fixture
def store(store_settings: Settings) -> ArtifactStore:
    return open_store(store_settings)


def stored(store: ArtifactStore) -> list[str]:
    if not store.fs.exists(store.root):
        return []
    return sorted(p for p in store.fs.find(store.root) if not p.endswith("/"))


def npz(**arrays: Any) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 4)).astype("float32")
Y = np.arange(60) % 3
GOOD = npz(x_train=X, y_train=Y, x_test=X[:12], y_test=Y[:12])


def upload(client: TestClient, path: str, name: str, data: bytes, **form: str) -> Any:
    return client.post(path, files={"file": (name, data)}, data=form)


def test_a_dataset_is_checked_kept_once_and_seen_only_by_its_owner(
    api: TestClient, store: ArtifactStore
) -> None:
    first = upload(api, "/datasets", "blobs.npz", GOOD)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["task"] == "classification" and body["classes"] == 3
    assert body["input_shape"] == [4] and body["splits"] == {"train": 60, "val": 0, "test": 12}
    assert body["name"] == "blobs.npz" and body["bytes"] == len(GOOD) and len(body["sha256"]) == 64
    again = upload(api, "/datasets", "renamed.npz", GOOD)
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert len(stored(store)) == 1

    listed = api.get("/datasets").json()
    assert {"digits", "fashion_mnist", "synthetic"} <= {d["name"] for d in listed}
    mine = [d for d in listed if d["id"] == body["id"]]
    assert mine and mine[0]["test_examples"] == 12
    assert api.get(f"/datasets/{body['id']}").json() == body
    other = auth("other")
    assert api.get(f"/datasets/{body['id']}", headers=other).status_code == 404
    assert all(d["id"] != body["id"] for d in api.get("/datasets", headers=other).json())
    assert api.delete(f"/datasets/{body['id']}", headers=other).status_code == 404


def test_numeric_targets_make_a_regression_dataset(api: TestClient) -> None:
    answer = upload(api, "/datasets", "prices.npz", npz(x_train=X, y_train=X[:, 0] * 3.5))
    assert answer.status_code == 201, answer.text
    assert answer.json()["task"] == "regression" and answer.json()["classes"] is None
    counts = upload(api, "/datasets", "counts.npz", npz(x_train=X, y_train=Y), task="regression")
    assert counts.json()["task"] == "regression"
    sparse = {"optimizers": ["adam"], "loss": "sparse_categorical_crossentropy"}
    refused = api.post("/jobs", json={**sparse, "dataset": {"id": answer.json()["id"]}})
    assert refused.status_code == 422 and "needs class labels" in refused.text
    job = api.post("/jobs", json={"optimizers": ["adam"], "dataset": {"id": answer.json()["id"]}})
    assert job.status_code == 201, job.text
    spec = job.json()["spec"]
    assert (spec["task"], spec["loss"]) == ("regression", "mean_squared_error")
    assert job.json()["metrics"][:3] == ["val_loss", "val_mae", "val_rmse"]


def test_a_csv_dataset_takes_its_label_column(api: TestClient) -> None:
    rows = "\n".join(f"{a:.3f},{b},{a * 2:.3f}" for a, b in zip(X[:, 0], Y, strict=True))
    data = f"f1,species,f2\n{rows}\n".encode()
    answer = upload(api, "/datasets", "iris.csv", data, label="species")
    assert answer.status_code == 201, answer.text
    assert answer.json()["input_shape"] == [2] and answer.json()["classes"] == 3
    assert answer.json()["label"] == "species" and answer.json()["format"] == "csv"
    missing = upload(api, "/datasets", "iris.csv", data, label="colour")
    assert missing.status_code == 422 and "no column 'colour'" in missing.json()["detail"]


def pickled() -> bytes:
    out = io.BytesIO()
    np.savez(out, x_train=np.array([{"a": 1}] * 3, dtype=object), y_train=np.zeros(3))
    return out.getvalue()


BAD = {
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "photo.png", "neither an .npz"),
    "text": (b"hello, world", "notes.txt", "the CSV has a header but no rows"),
    "fake npz": (b"not a zip at all", "data.npz", "not an .npz file"),
    "pickle": (pickled(), "data.npz", "object (pickled) array"),
    "no x_train": (npz(y_train=Y), "data.npz", "x_train is missing"),
    "lengths": (npz(x_train=X, y_train=Y[:50]), "data.npz", "the lengths differ"),
    "nan": (npz(x_train=np.where(X > 2, np.nan, X), y_train=Y), "data.npz", "NaN"),
    "negative label": (npz(x_train=X, y_train=Y - 1), "data.npz", "class labels start at 0"),
    "one-hot": (npz(x_train=X, y_train=np.eye(3)[Y]), "data.npz", "one value per example"),
    "fractional labels": (
        npz(x_train=X, y_train=X[:, 0]),
        "data.npz?task=classification",
        "non-integer values",
    ),
    "empty split": (
        npz(x_train=X, y_train=Y, x_val=X[:0], y_val=Y[:0]),
        "data.npz",
        "the val split is empty",
    ),
    "unknown array": (npz(x_train=X, y_train=Y, extra=Y), "data.npz", "unknown arrays extra"),
    "csv text": (b"a,b\n1,x\n", "d.csv", "'x' is not a number"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_every_bad_dataset_is_refused_with_its_reason_and_leaves_nothing(
    api: TestClient, store: ArtifactStore, case: str
) -> None:
    data, name, reason = BAD[case]
    name, _, task = name.partition("?task=")
    answer = upload(api, "/datasets", name, data, **({"task": task} if task else {}))
    assert answer.status_code == 422, answer.text
    assert reason in answer.json()["detail"], answer.json()
    assert stored(store) == []
    assert [d for d in api.get("/datasets").json() if d["id"]] == []


def test_a_compressed_npz_may_not_expand_past_ten_times_the_limit(
    api: TestClient, store: ArtifactStore
) -> None:
    out = io.BytesIO()
    np.savez_compressed(out, x_train=np.zeros((100_000, 6), "float32"), y_train=np.zeros(100_000))
    assert len(out.getvalue()) < 200_000
    answer = upload(api, "/datasets", "bomb.npz", out.getvalue())
    assert answer.status_code == 422 and "expand to" in answer.json()["detail"]
    assert stored(store) == []


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(
    api: TestClient, store: ArtifactStore
) -> None:
    big = npz(x_train=np.zeros((10_000, 4), "float32"), y_train=np.zeros(10_000, "int64"))
    assert len(big) > 200_000
    answer = upload(api, "/datasets", "big.npz", big)
    assert answer.status_code == 413 and "200000 bytes" in answer.json()["detail"]
    assert stored(store) == []


# ---------------------------------------------------------------- models


def altered(original: bytes, change: Any) -> bytes:
    """The .keras file with its config.json changed by `change`."""
    source = zipfile.ZipFile(io.BytesIO(original))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                change(config)
                data = json.dumps(config).encode()
            target.writestr(item, data)
    return out.getvalue()


def with_lambda(config: dict[str, Any]) -> None:
    config["config"]["layers"][1] = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {"name": "double", "function": {"class_name": "__lambda__", "config": {}}},
        "registered_name": None,
    }


def with_custom(config: dict[str, Any]) -> None:
    layer = config["config"]["layers"][1]
    layer.update(module="mypackage.layers", class_name="Sneaky", registered_name="my>Sneaky")


def test_a_keras_model_is_read_without_keras_and_refused_when_it_holds_code(
    api: TestClient, store: ArtifactStore, keras_file: bytes
) -> None:
    good = upload(api, "/models", "mlp.keras", keras_file)
    assert good.status_code == 201, good.text
    body = good.json()
    assert body["input_shape"] == [4] and body["outputs"] == 3
    assert body["parameters"] == 4 * 8 + 8 + 8 * 3 + 3 and body["output_activation"] == "linear"
    assert api.get(f"/models/{body['id']}").json() == body
    assert [m["id"] for m in api.get("/models/uploaded").json()] == [body["id"]]
    kept = stored(store)
    for data, reason in (
        (altered(keras_file, with_lambda), "Lambda layer 'double' is a Lambda"),
        (altered(keras_file, with_custom), "custom object (mypackage.layers.Sneaky)"),
        (b"PK\x03\x04 broken", "not a .keras file"),
        (GOOD, "config.json is missing"),
    ):
        refused = upload(api, "/models", "m.keras", data)
        assert refused.status_code == 422 and reason in refused.json()["detail"], refused.json()
    assert stored(store) == kept


# ---------------------------------------------------------------- jobs on uploads


def job(dataset: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    return {"dataset": dataset, "model": model, "optimizers": ["sgd", "adam"], "epochs": 2}


def test_a_job_on_uploads_is_checked_against_their_facts(
    api: TestClient, store: ArtifactStore, keras_file: bytes
) -> None:
    data = upload(api, "/datasets", "blobs.npz", GOOD).json()
    model = upload(api, "/models", "mlp.keras", keras_file).json()
    images = upload(
        api, "/datasets", "img.npz", npz(x_train=np.zeros((20, 8, 8, 1)), y_train=np.arange(20) % 2)
    ).json()

    wrong = api.post("/jobs", json=job({"id": images["id"]}, {"id": model["id"]}))
    assert wrong.status_code == 422
    detail = wrong.json()["detail"]
    assert detail[0]["loc"][-2:] == ["model", "id"], detail
    assert "[4]" in detail[0]["msg"] and "[8, 8, 1]" in detail[0]["msg"]
    other = api.post(
        "/jobs", json=job({"id": data["id"]}, {"preset": "mlp"}), headers=auth("other")
    )
    assert other.status_code == 422 and f"no dataset {data['id']}" in other.text
    cnn = api.post("/jobs", json=job({"id": data["id"]}, {"preset": "cnn"}))
    assert cnn.status_code == 422 and "image data" in cnn.text

    fits = api.post("/jobs", json=job({"id": data["id"]}, {"id": model["id"], "weights": "file"}))
    assert fits.status_code == 201, fits.text
    job_id = fits.json()["id"]
    busy = api.delete(f"/datasets/{data['id']}")
    assert busy.status_code == 409 and job_id in busy.json()["detail"]
    assert api.delete(f"/models/{model['id']}").status_code == 409
    run = fits.json()["runs"][0]["id"]
    early = api.get(f"/runs/{run}/model.keras")
    assert early.status_code == 409 and "queued" in early.json()["detail"]

    assert api.post(f"/jobs/{job_id}/cancel").status_code in (200, 202)
    assert api.delete(f"/datasets/{data['id']}").status_code == 204
    assert api.get(f"/datasets/{data['id']}").status_code == 404
    assert not any(str(data["id"]) in key for key in stored(store))
    assert api.get(f"/runs/{uuid.uuid4()}/model.keras").status_code == 404


def test_a_trained_model_downloads_until_its_retention_ends(
    api: TestClient, store: ArtifactStore, sessions: Any
) -> None:
    from core.artifacts import trained_model_key
    from core.db import transaction
    from core.models import RunStatus
    from core.reaper import expire_models
    from core.repositories import RunRepository

    job = api.post("/jobs", json={"optimizers": ["adam"], "epochs": 1}).json()
    run_id = uuid.UUID(job["runs"][0]["id"])
    model = b"PK" + bytes(range(256)) * 40
    store.write_bytes(trained_model_key(run_id), model)
    with transaction(sessions) as session:
        RunRepository(session).claim(run_id, worker="test")
        RunRepository(session).finish(
            run_id, status=RunStatus.SUCCEEDED, summary={"model_bytes": len(model)}
        )
    got = api.get(f"/runs/{run_id}/model.keras")
    assert got.status_code == 200 and got.content == model
    assert "attachment" in got.headers["content-disposition"]
    assert api.get(f"/runs/{run_id}/model.keras", headers=auth("other")).status_code == 404

    assert expire_models(sessions, store, kept_for=3600) == 0  # not yet
    assert expire_models(sessions, store, kept_for=0) == 1
    assert not store.exists(trained_model_key(run_id))
    gone = api.get(f"/runs/{run_id}/model.keras")
    assert gone.status_code == 410 and "OPTARENA_TRAINED_MODEL_RETENTION_SECONDS" in gone.text
