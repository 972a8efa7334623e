"""Datasets as float32 arrays: a test set held out once and for all, then training and
validation data split by the run's seed. Keras datasets come from a cache directory (or, for
Fashion-MNIST, from Debian's dataset-fashion-mnist package)."""

import gzip
import hashlib
import io
import pickle
import tarfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from core.artifacts import ArtifactStore
from core.datasets import (
    TEST_HOLDOUT_SEED,
    NamedDatasetSpec,
    SyntheticDatasetSpec,
    UploadedDatasetSpec,
)
from core.uploads import Stored
from worker.runs import RunFailed

KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
CIFAR10_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# Keras's own checksums of the files it downloads.
SHA256 = {
    "mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    "cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
}


class DatasetUnavailable(RunFailed):
    """The dataset is neither cached nor downloadable; the message says what to place where."""


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    num_classes: int
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


@dataclass(frozen=True)
class Arrays:
    """A dataset's examples, with its official test set (and validation data) where it has
    them."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


def load_dataset(
    spec: NamedDatasetSpec | SyntheticDatasetSpec | UploadedDatasetSpec,
    *,
    seed: int,
    cache_dir: Path,
    fashion_mnist_dir: Path | None = None,
    store: ArtifactStore | None = None,
    upload: Stored | None = None,
) -> Dataset:
    """The dataset split three ways.

    The test set is the official one (an upload's x_test), or `test_split` of the (limited)
    data held out by a fixed data seed: the same for every run seed and arm, never trained or
    selected on. The rest is split into training and validation data by the run's seed,
    unless the dataset brings its own validation data.
    """
    if isinstance(spec, UploadedDatasetSpec):
        if store is None or upload is None:
            raise RunFailed(f"dataset {spec.id} is an upload and no artifact store is set")
        data = read_upload(store, upload)
        num_classes = int(upload.meta["classes"] or 0)
    else:
        data = _arrays(spec, cache_dir, fashion_mnist_dir)
        num_classes = spec.info().num_classes
    x, y = data.x, data.y
    if spec.limit is not None and spec.limit < len(x):
        # A fixed subset, the same for every seed, so seeds vary the split and not the data.
        keep = np.sort(np.random.default_rng(0).permutation(len(x))[: spec.limit])
        x, y = x[keep], y[keep]
    x_test, y_test = data.x_test, data.y_test
    if x_test is None and spec.held_out > 0:
        x, y, x_test, y_test = hold_out(x, y, spec.held_out)
    if data.x_val is not None:
        return Dataset(x, y, data.x_val, data.y_val, num_classes, x_test, y_test)
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = round(len(x) * spec.validation_split)
    val, train = order[:n_val], order[n_val:]
    return Dataset(
        x_train=x[train],
        y_train=y[train],
        x_val=x[val] if n_val else None,
        y_val=y[val] if n_val else None,
        num_classes=num_classes,
        x_test=x_test,
        y_test=y_test,
    )


def read_upload(store: ArtifactStore, upload: Stored) -> Arrays:
    """An uploaded dataset's arrays (checked at upload: numbers only, read without pickles)."""
    raw = io.BytesIO(store.read(upload.key))
    target = "int32" if upload.meta["task"] == "classification" else "float32"
    if upload.meta["format"] == "csv":
        columns = upload.meta["columns"]
        at = columns.index(upload.meta["label"])
        table = np.loadtxt(raw, delimiter=",", skiprows=1, dtype="float64", ndmin=2)
        x = np.delete(table, at, axis=1).astype("float32")
        return Arrays(x, table[:, at].astype(target))
    with np.load(raw, allow_pickle=False) as f:

        def pair(split: str) -> tuple[np.ndarray | None, np.ndarray | None]:
            if f"x_{split}" not in f.files:
                return None, None
            return f[f"x_{split}"].astype("float32"), f[f"y_{split}"].reshape(-1).astype(target)

        x_train, y_train = pair("train")
        assert x_train is not None and y_train is not None
        return Arrays(x_train, y_train, *pair("test"), *pair("val"))


def hold_out(
    x: np.ndarray, y: np.ndarray, share: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(x, y) less a test set of `share` of it, and that test set, drawn by a fixed seed."""
    n_test = round(len(x) * share)
    if n_test == 0:
        return x, y, None, None
    order = np.random.default_rng(TEST_HOLDOUT_SEED).permutation(len(x))
    test, rest = np.sort(order[:n_test]), np.sort(order[n_test:])
    return x[rest], y[rest], x[test], y[test]


def _arrays(
    spec: NamedDatasetSpec | SyntheticDatasetSpec, cache_dir: Path, fashion_mnist_dir: Path | None
) -> Arrays:
    if isinstance(spec, SyntheticDatasetSpec):
        return Arrays(*synthetic(spec))
    if spec.name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = (digits.images / 16.0).astype("float32")[..., None]
        return Arrays(images, digits.target.astype("int32"))
    if spec.name == "mnist":
        path = _fetch("mnist", "mnist.npz", KERAS_ORIGIN + "mnist.npz", cache_dir)

        def mnist() -> Arrays:
            with np.load(path, allow_pickle=False) as f:
                return Arrays(
                    _images(f["x_train"]),
                    f["y_train"].astype("int32"),
                    _images(f["x_test"]),
                    f["y_test"].astype("int32"),
                )

        return _remembered("mnist", [path], mnist)
    if spec.name == "fashion_mnist":
        return _fashion_mnist(cache_dir / "fashion-mnist", fashion_mnist_dir)
    return _cifar10(cache_dir)


# The named datasets a worker decoded last, by their files (path, size, modification time):
# a warm worker's next run on the same data starts without parsing the files again.
KEEP_DECODED = 2
_decoded: OrderedDict[tuple[object, ...], Arrays] = OrderedDict()


def _remembered(name: str, paths: Sequence[Path], decode: Callable[[], Arrays]) -> Arrays:
    """`decode()`'s arrays, decoded once while `paths` stay as they are; read-only, as every
    run of the process shares them."""
    key: tuple[object, ...] = (name,)
    for path in paths:
        stat = path.stat()
        key += (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _decoded:
        _decoded.move_to_end(key)
        return _decoded[key]
    arrays = decode()
    for part in fields(arrays):
        value = getattr(arrays, part.name)
        if value is not None:
            value.setflags(write=False)
    _decoded[key] = arrays
    while len(_decoded) > KEEP_DECODED:
        _decoded.popitem(last=False)
    return arrays


def _fashion_mnist(cache_dir: Path, system_dir: Path | None) -> Arrays:
    """The four files Keras downloads, from the cache, else the system's directory (Debian's
    dataset-fashion-mnist installs them under /usr/share/datasets/fashion-mnist), else the web."""
    paths = []
    for name in FASHION_FILES:
        found = system_dir / name if system_dir is not None else None
        if found is None or not found.is_file() or (cache_dir / name).is_file():
            found = _fetch("fashion_mnist", name, KERAS_ORIGIN + name, cache_dir)
        paths.append(found)

    def idx(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
        with gzip.open(labels, "rb") as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8)
        with gzip.open(images, "rb") as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(len(y), 28, 28)
        return _images(x), y.astype("int32")

    return _remembered(
        "fashion_mnist", paths, lambda: Arrays(*idx(paths[0], paths[1]), *idx(paths[2], paths[3]))
    )


def synthetic(spec: SyntheticDatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around random class centres, or (regression) a noisy linear function
    of Gaussian features; fixed by data_seed."""
    rng = np.random.default_rng(spec.data_seed)
    if spec.task == "regression":
        x = rng.normal(size=(spec.samples, spec.features))
        weights = rng.normal(size=spec.features) / np.sqrt(spec.features)
        y = x @ weights + 0.1 * rng.normal(size=spec.samples)
        return x.astype("float32"), y.astype("float32")
    centres = rng.normal(size=(spec.classes, spec.features)) * spec.class_separation
    y = rng.integers(spec.classes, size=spec.samples)
    x = centres[y] + rng.normal(size=(spec.samples, spec.features))
    return x.astype("float32"), y.astype("int32")


def _images(raw: np.ndarray) -> np.ndarray:
    x = raw.astype("float32") / 255.0
    return x[..., None] if x.ndim == 3 else x


def _fetch(dataset: str, fname: str, origin: str, cache_dir: Path) -> Path:
    """The cached file, downloaded on first use through Keras; DatasetUnavailable if neither."""
    target = cache_dir / fname
    if target.is_file():
        return target
    from keras.utils import get_file

    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        return Path(
            get_file(
                fname,
                origin=origin,
                file_hash=SHA256.get(fname),
                cache_dir=str(cache_dir),
                cache_subdir="",
            )
        )
    except Exception as error:
        raise DatasetUnavailable(
            f"dataset {dataset!r} is not in the cache and could not be downloaded "
            f"({_reason(error)}). Place {fname} (from {origin}) at {target.resolve()} "
            "on the worker, or give the worker internet access, then submit again."
        ) from error


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[-1][:300] if text else type(error).__name__


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cifar10(cache_dir: Path) -> Arrays:
    archive = _fetch("cifar10", "cifar-10-python.tar.gz", CIFAR10_ORIGIN, cache_dir)
    return _remembered("cifar10", [archive], lambda: _cifar10_arrays(archive))


def _cifar10_arrays(archive: Path) -> Arrays:
    # Its batches are pickles, so only the official bytes are ever opened: a file placed in
    # the cache by hand must match the published SHA-256 before anything in it is unpickled.
    if _sha256(archive) != SHA256[archive.name]:
        raise DatasetUnavailable(
            f"{archive} is not the official CIFAR-10 archive (its SHA-256 differs), so it is "
            f"not opened; replace it with {CIFAR10_ORIGIN}"
        )
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
            member = tar.extractfile(f"cifar-10-batches-py/{name}")
            if member is None:
                raise DatasetUnavailable(f"{archive} lacks {name}; replace the file")
            # Safe: the archive's hash is the official one (checked above).
            batch = pickle.load(member, encoding="bytes")
            images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            parts[name] = (
                images.transpose(0, 2, 3, 1).astype("float32") / 255.0,
                np.asarray(batch[b"labels"], dtype=np.int32),
            )
    test = parts.pop("test_batch")
    return Arrays(
        np.concatenate([x for x, _ in parts.values()]),
        np.concatenate([y for _, y in parts.values()]),
        *test,
    )
