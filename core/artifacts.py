"""The artifact store: uploaded datasets and models, checkpoints and trained models, in one
place every process reaches, addressed by OPTARENA_ARTIFACTS_URL.

A directory by default (a volume the API and every worker share), or `s3://bucket/prefix` for
workers on several machines, through fsspec (s3fs): any S3-compatible store, its endpoint and
credentials from settings. Every write is whole or absent: a directory write goes to a partial
file that is flushed to disk and renamed into place; an S3 object appears only when its upload
completes.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from core.settings import Settings

CHUNK = 1 << 20


class ArtifactStore:
    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url, **options)
        self.root = root.rstrip("/")
        self.local = isinstance(self.fs, LocalFileSystem)
        if self.local:
            os.makedirs(self.root, exist_ok=True)

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def size(self, key: str) -> int:
        return int(self.fs.size(self.path(key)))

    @contextmanager
    def reader(self, key: str) -> Iterator[IO[bytes]]:
        with self.fs.open(self.path(key), "rb") as f:
            yield f

    def read(self, key: str) -> bytes:
        with self.reader(key) as f:
            return f.read()

    def chunks(self, key: str) -> Iterator[bytes]:
        with self.reader(key) as f:
            while block := f.read(CHUNK):
                yield block

    def write(self, key: str, fill: Callable[[IO[bytes]], object]) -> None:
        """`fill` writes the object; it appears whole under `key` or not at all."""
        target = self.path(key)
        if not self.local:
            with self.fs.open(target, "wb") as out:
                fill(out)
            return
        os.makedirs(os.path.dirname(target), exist_ok=True)
        partial = f"{target}.{uuid.uuid4().hex}.partial"
        try:
            with open(partial, "wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        directory = os.open(os.path.dirname(target), os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def write_bytes(self, key: str, data: bytes) -> None:
        self.write(key, lambda out: out.write(data))

    def copy_from_file(self, key: str, source: IO[bytes]) -> None:
        def fill(out: IO[bytes]) -> None:
            while block := source.read(CHUNK):
                out.write(block)

        self.write(key, fill)

    def remove(self, key: str) -> None:
        with suppress(FileNotFoundError):
            self.fs.rm(self.path(key))

    def get_file(self, key: str, local_path: str) -> None:
        """A local copy (Keras loads `.keras` files from a path)."""
        self.fs.get(self.path(key), local_path)


def store_options(settings: Settings) -> dict[str, Any]:
    """fsspec's options for the store's URL: the S3 endpoint and credentials."""
    if not settings.artifacts_url.startswith("s3://"):
        return {}
    options: dict[str, Any] = {}
    if settings.s3_endpoint_url:
        options["endpoint_url"] = settings.s3_endpoint_url
    if settings.s3_access_key_id:
        options["key"] = settings.s3_access_key_id
    if settings.s3_secret_access_key is not None:
        options["secret"] = settings.s3_secret_access_key.get_secret_value()
    if settings.s3_region:
        options["client_kwargs"] = {"region_name": settings.s3_region}
    # Every process reads what another wrote a moment ago: no listing cache.
    options["use_listings_cache"] = False
    return options


_OPEN: dict[str, ArtifactStore] = {}


def open_store(settings: Settings) -> ArtifactStore:
    """The store the settings name (one object per URL and options in a process)."""
    options = store_options(settings)
    key = f"{settings.artifacts_url} {sorted(options.items(), key=str)!r}"
    if key not in _OPEN:
        _OPEN[key] = ArtifactStore(settings.artifacts_url, **options)
    return _OPEN[key]


def checkpoint_key(run_id: uuid.UUID) -> str:
    return f"checkpoints/{run_id}.npz"


def trained_model_key(run_id: uuid.UUID) -> str:
    return f"runs/{run_id}/model.keras"


def upload_key(kind: str, owner: str, sha256: str, suffix: str) -> str:
    return f"uploads/{owner}/{kind}/{sha256}{suffix}"
