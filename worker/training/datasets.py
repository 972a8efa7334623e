"""Datasets as float32 arrays, split by seed. Keras datasets come from a cache directory."""

import gzip
import hashlib
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.datasets import NamedDatasetSpec, SyntheticDatasetSpec
from worker.runs import RunFailed

KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
CIFAR10_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
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

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def load_dataset(
    spec: NamedDatasetSpec | SyntheticDatasetSpec, *, seed: int, cache_dir: Path
) -> Dataset:
    """The dataset's training data, limited and split into train and validation by seed."""
    x, y = _arrays(spec, cache_dir)
    if spec.limit is not None and spec.limit < len(x):
        # A fixed subset, the same for every seed, so seeds vary the split and not the data.
        keep = np.sort(np.random.default_rng(0).permutation(len(x))[: spec.limit])
        x, y = x[keep], y[keep]
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = round(len(x) * spec.validation_split)
    val, train = order[:n_val], order[n_val:]
    return Dataset(
        x_train=x[train],
        y_train=y[train],
        x_val=x[val] if n_val else None,
        y_val=y[val] if n_val else None,
        num_classes=spec.info().num_classes,
    )


def _arrays(
    spec: NamedDatasetSpec | SyntheticDatasetSpec, cache_dir: Path
) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(spec, SyntheticDatasetSpec):
        return synthetic(spec)
    if spec.name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = (digits.images / 16.0).astype("float32")[..., None]
        return images, digits.target.astype("int32")
    if spec.name == "mnist":
        path = _fetch("mnist", "mnist.npz", KERAS_ORIGIN + "mnist.npz", cache_dir)
        with np.load(path, allow_pickle=False) as f:
            return _images(f["x_train"]), f["y_train"].astype("int32")
    if spec.name == "fashion_mnist":
        images_path, labels_path = (
            _fetch("fashion_mnist", name, KERAS_ORIGIN + name, cache_dir / "fashion-mnist")
            for name in FASHION_FILES
        )
        with gzip.open(labels_path, "rb") as f:
            labels = np.frombuffer(f.read(), np.uint8, offset=8)
        with gzip.open(images_path, "rb") as f:
            images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(len(labels), 28, 28)
        return _images(images), labels.astype("int32")
    return _cifar10(cache_dir)


def synthetic(spec: SyntheticDatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around random class centres, fixed by data_seed."""
    rng = np.random.default_rng(spec.data_seed)
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


def _cifar10(cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    archive = _fetch("cifar10", "cifar-10-python.tar.gz", CIFAR10_ORIGIN, cache_dir)
    # Its batches are pickles, so only the official bytes are ever opened: a file placed in
    # the cache by hand must match the published SHA-256 before anything in it is unpickled.
    if _sha256(archive) != SHA256[archive.name]:
        raise DatasetUnavailable(
            f"{archive} is not the official CIFAR-10 archive (its SHA-256 differs), so it is "
            f"not opened; replace it with {CIFAR10_ORIGIN}"
        )
    images, labels = [], []
    with tarfile.open(archive, "r:gz") as tar:
        for i in range(1, 6):
            member = tar.extractfile(f"cifar-10-batches-py/data_batch_{i}")
            if member is None:
                raise DatasetUnavailable(f"{archive} lacks data_batch_{i}; replace the file")
            # Safe: the archive's hash is the official one (checked above).
            batch = pickle.load(member, encoding="bytes")
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[b"labels"], dtype=np.int32))
    x = np.concatenate(images).transpose(0, 2, 3, 1).astype("float32") / 255.0
    return x, np.concatenate(labels)
