import gzip
from pathlib import Path

import numpy as np
import pytest

from core.datasets import NamedDatasetSpec, SyntheticDatasetSpec
from worker.training import datasets
from worker.training.datasets import DatasetUnavailable, load_dataset


def test_digits_loads_offline_scaled_and_split_by_seed(tmp_path: Path) -> None:
    spec = NamedDatasetSpec(name="digits", validation_split=0.2)
    data = load_dataset(spec, seed=0, cache_dir=tmp_path)
    assert data.input_shape == (8, 8, 1) and data.num_classes == 10
    assert data.x_val is not None and data.x_test is not None and data.y_test is not None
    assert len(data.x_test) == 359 and len(data.x_val) == 288 and len(data.x_train) == 1150
    assert data.x_train.min() >= 0.0 and data.x_train.max() <= 1.0
    again = load_dataset(spec, seed=0, cache_dir=tmp_path)
    other = load_dataset(spec, seed=1, cache_dir=tmp_path)
    assert np.array_equal(data.y_val, again.y_val)
    assert not np.array_equal(data.y_val, other.y_val)


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x}


def test_the_test_set_is_the_same_for_every_seed_and_never_trained_or_validated_on(
    tmp_path: Path,
) -> None:
    spec = SyntheticDatasetSpec(name="synthetic", samples=500, features=7, classes=3)
    a, b = (load_dataset(spec, seed=s, cache_dir=tmp_path) for s in (0, 9))
    assert a.x_test is not None and b.x_test is not None and len(a.x_test) == 100
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_test, b.y_test)
    assert a.x_val is not None and not np.array_equal(a.x_val, b.x_val)
    for data in (a, b):
        assert not _rows(data.x_test) & (_rows(data.x_train) | _rows(data.x_val))
    none = load_dataset(spec.model_copy(update={"test_split": 0.0}), seed=0, cache_dir=tmp_path)
    assert none.x_test is None and len(none.x_train) + len(none.x_val) == 500


def test_an_official_test_set_cannot_be_replaced_by_a_split() -> None:
    with pytest.raises(ValueError, match="official test set of 10,000"):
        NamedDatasetSpec(name="fashion_mnist", test_split=0.1)
    # What is stored is read back as it was (the worker parses the stored spec).
    spec = NamedDatasetSpec(name="fashion_mnist", validation_split=0.0)
    assert NamedDatasetSpec.model_validate(spec.model_dump(mode="json")) == spec


def _fashion_files(system: Path, *, train: int, seed: int = 0) -> None:
    system.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", train), ("t10k", 12)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        with gzip.open(system / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(b"\0" * 16 + images.tobytes())
        with gzip.open(system / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(b"\0" * 8 + labels.tobytes())


def test_fashion_mnist_is_read_from_the_debian_package_directory(tmp_path: Path) -> None:
    system = tmp_path / "system"
    _fashion_files(system, train=30)
    data = load_dataset(
        NamedDatasetSpec(name="fashion_mnist", validation_split=0.0),
        seed=0,
        cache_dir=tmp_path / "cache",
        fashion_mnist_dir=system,
    )
    assert len(data.x_train) == 30 and data.x_test is not None and len(data.x_test) == 12
    assert data.x_train.max() <= 1.0 and not (tmp_path / "cache").exists()


def test_a_worker_decodes_a_dataset_once_until_its_files_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "system"
    _fashion_files(system, train=30)
    decoded = []
    images = datasets._images
    monkeypatch.setattr(datasets, "_images", lambda raw: decoded.append(1) or images(raw))
    spec = NamedDatasetSpec(name="fashion_mnist", validation_split=0.2)

    def load(seed: int) -> datasets.Dataset:
        return load_dataset(spec, seed=seed, cache_dir=tmp_path / "cache", fashion_mnist_dir=system)

    first, second = load(0), load(1)
    assert len(decoded) == 2  # train and test images, once for both runs
    assert not np.array_equal(first.x_train, second.x_train)  # each seed its own split
    assert first.x_test is second.x_test and not first.x_test.flags.writeable
    _fashion_files(system, train=40, seed=1)  # the files replaced: decoded anew
    assert len(load(0).x_train) == 32 and len(decoded) == 4


def test_limit_takes_the_same_subset_for_every_seed(tmp_path: Path) -> None:
    spec = NamedDatasetSpec(name="digits", validation_split=0.0, limit=100)
    a = load_dataset(spec, seed=0, cache_dir=tmp_path)
    b = load_dataset(spec, seed=5, cache_dir=tmp_path)
    assert len(a.x_train) == 80 and a.x_val is None and len(a.x_test) == 20
    assert sorted(a.y_train.tolist()) == sorted(b.y_train.tolist())


def test_synthetic_data_is_fixed_by_its_data_seed(tmp_path: Path) -> None:
    spec = SyntheticDatasetSpec(name="synthetic", samples=500, features=7, classes=3)
    a = load_dataset(spec, seed=0, cache_dir=tmp_path)
    b = load_dataset(spec, seed=0, cache_dir=tmp_path)
    assert a.input_shape == (7,) and a.num_classes == 3 and len(a.x_train) == 320
    assert np.array_equal(a.x_train, b.x_train)


def test_mnist_offline_without_cache_names_the_file_to_place(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset(NamedDatasetSpec(name="mnist"), seed=0, cache_dir=tmp_path)
    message = str(info.value)
    assert "dataset 'mnist' is not in the cache" in message
    assert "Place mnist.npz" in message and str(tmp_path / "mnist.npz") in message
    assert not (tmp_path / "mnist.npz").exists()


def test_a_placed_mnist_file_is_used_without_download(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "mnist.npz",
        x_train=rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, size=50, dtype=np.uint8),
        x_test=np.zeros((1, 28, 28), np.uint8),
        y_test=np.zeros(1, np.uint8),
    )
    data = load_dataset(NamedDatasetSpec(name="mnist"), seed=0, cache_dir=tmp_path)
    assert data.input_shape == (28, 28, 1) and len(data.x_train) == 40
    assert data.x_test is not None and len(data.x_test) == 1
    assert data.x_train.max() <= 1.0


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10"])
def test_other_keras_datasets_fail_offline_with_a_clear_message(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetUnavailable, match=f"dataset '{name}' is not in the cache"):
        load_dataset(
            NamedDatasetSpec(name=name),  # type: ignore[arg-type]
            seed=0,
            cache_dir=tmp_path,
            fashion_mnist_dir=tmp_path / "not-installed",
        )


class _Bomb:
    """A pickle that, if ever loaded, leaves a file behind."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def test_a_placed_cifar_archive_that_is_not_the_official_one_is_never_unpickled(
    tmp_path: Path,
) -> None:
    import io
    import pickle
    import tarfile

    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Bomb(marker))
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        for i in range(1, 6):
            info = tarfile.TarInfo(f"cifar-10-batches-py/data_batch_{i}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(DatasetUnavailable) as refused:
        load_dataset(NamedDatasetSpec(name="cifar10"), seed=0, cache_dir=tmp_path)
    assert "not the official CIFAR-10 archive" in str(refused.value)
    assert not marker.exists()
    # An npz is read with allow_pickle=False: an object array in a placed mnist.npz is refused.
    np.savez(tmp_path / "mnist.npz", x_train=np.array([_Bomb(marker)], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        load_dataset(NamedDatasetSpec(name="mnist"), seed=0, cache_dir=tmp_path)
    assert not marker.exists()
