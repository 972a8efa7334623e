"""A new user's own data and model through the real API and worker, judged on a held-out test
set; and TensorFlow's basic classification tutorial on the real Fashion-MNIST."""

import io
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import Service

pytestmark = pytest.mark.e2e


def digits_npz() -> tuple[bytes, np.ndarray, np.ndarray]:
    """scikit-learn's digits as a user would save them: 1500 to train, 297 of their own to test."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16.0).astype("float32"), digits.target.astype("int64")
    out = io.BytesIO()
    np.savez(out, x_train=x[:1500], y_train=y[:1500], x_test=x[1500:], y_test=y[1500:])
    return out.getvalue(), x[1500:], y[1500:]


def keras_model(path: Path) -> bytes:
    import keras

    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
    )
    model.save(path)
    return path.read_bytes()


def test_a_new_user_compares_optimizers_on_their_own_data_and_model_and_downloads_the_winner(
    service: Service, tmp_path: Path
) -> None:
    data, x_test, y_test = digits_npz()
    dataset = service.http.post("/datasets", files={"file": ("digits.npz", data)})
    assert dataset.status_code == 201, dataset.text
    assert dataset.json()["splits"] == {"train": 1500, "val": 0, "test": 297}
    model = service.http.post(
        "/models", files={"file": ("mlp.keras", keras_model(tmp_path / "mlp.keras"))}
    )
    assert model.status_code == 201, model.text

    job = service.submit(
        {
            "name": "my data, my model",
            "dataset": {"id": dataset.json()["id"]},
            "model": {"id": model.json()["id"], "weights": "reinitialize"},
            "optimizers": [{"name": "sgd", "learning_rate": 0.05}, "adam", "rmsprop"],
            "epochs": 4,
            "seeds": [0, 1, 2],
        }
    )
    done = service.wait(job["id"])
    assert done["status"] == "succeeded", done
    runs = done["runs"]
    for seed in (0, 1, 2):
        shas = {r["initial_weights_sha256"] for r in runs if r["seed"] == seed}
        assert len(shas) == 1, seed  # arms of a seed start from the same fresh weights
    assert len({r["initial_weights_sha256"] for r in runs}) == 3  # seeds draw their own

    comparison = service.http.get(f"/jobs/{job['id']}/comparison").json()
    assert comparison["test_metric"] == "test_accuracy"
    assert "held-out test set" in comparison["selection"]
    winner = comparison["ranking"][0]
    test = winner["test"]
    assert test["n"] == 3 and test["ci_low"] <= test["mean"] <= test["ci_high"]
    assert 0.5 < test["mean"] <= 1.0
    assert len(comparison["test_pairs"]) == 3

    best_run = winner["run_ids"][0]
    download = service.http.get(f"/runs/{best_run}/model.keras")
    assert download.status_code == 200, download.text
    saved = tmp_path / "winner.keras"
    saved.write_bytes(download.content)
    import keras

    trained = keras.saving.load_model(saved)
    predicted = np.argmax(trained.predict(x_test, verbose=0), axis=1)
    accuracy = float(np.mean(predicted == y_test))
    [run] = [r for r in runs if r["id"] == best_run]
    # The downloaded model is the one the service tested: same test accuracy.
    assert run["summary"]["test"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert run["summary"]["test"]["epoch"] == 4


FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")


def test_the_fashion_mnist_tutorial_reproduces_its_published_test_accuracy(
    service: Service,
) -> None:
    # TensorFlow's "Basic classification": Flatten, Dense(128, relu), Dense(10), Adam, 10
    # epochs on the 60,000 training images; about 0.88 on the 10,000 test images.
    if not FASHION.exists():
        pytest.fail("Debian's dataset-fashion-mnist is missing; scripts/test installs it")
    job = service.submit(
        {
            "name": "tensorflow basic classification",
            "dataset": {"name": "fashion_mnist", "validation_split": 0.0},
            "model": {"preset": "mlp", "hidden_units": [128], "dropout": 0.0},
            "optimizers": ["adam"],
            "batch_size": 32,
            "epochs": 10,
            "evaluate_initial": False,
        }
    )
    done = service.wait(job["id"], timeout=900)
    assert done["status"] == "succeeded", done
    [run] = done["runs"]
    test = run["summary"]["test"]
    assert test["epoch"] == 10
    assert 0.86 <= test["accuracy"] <= 0.90, test
