"""Files fetched once from the web into a local cache, each checked against a pinned SHA-256 digest.

A download goes to a temporary file in the cache folder, is hashed as it
arrives, and takes its place (os.replace) only when the whole file came and its
digest is the pinned one: a partial, interrupted or altered download never
lands in the cache. A cached file is checked again each time it is used, and a
valid one is never downloaded again. ``KERASCLI_CACHE_DIR`` moves the cache
(default ``~/.cache/kerascli``); ``KERASCLI_DATA_URL`` replaces the base URL
(a mirror, or a folder served on an air-gapped network). Standard library
only (urllib).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Protocol

from kerascli.errors import DataError

DEFAULT_BASE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"  # where keras.datasets reads
CACHE_ENV, URL_ENV = "KERASCLI_CACHE_DIR", "KERASCLI_DATA_URL"
TIMEOUT_SECONDS = 60  # for the connection and each read
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A file published at ``origin`` + ``name``, cached as ``folder``/``name``, ``size`` bytes with digest
    ``sha256``. ``KERASCLI_DATA_URL``, when set, replaces every file's origin (a mirror holds them side by
    side)."""

    name: str
    sha256: str
    size: int
    folder: str = ""
    origin: str = DEFAULT_BASE_URL

    @property
    def path(self) -> str:
        """Where it is (or will be) cached."""
        return os.path.join(cache_dir(), "datasets", self.folder, self.name)

    @property
    def url(self) -> str:
        return base_url(self.origin) + urllib.parse.quote(self.name)

    def cached(self) -> bool:
        """Whether it is in the cache at its size (its digest is checked when it is used)."""
        try:
            return os.path.getsize(self.path) == self.size
        except OSError:
            return False


def cache_dir() -> str:
    return os.path.expanduser(os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "kerascli"))


def base_url(origin: str = DEFAULT_BASE_URL) -> str:
    """Where files are fetched from: the mirror ``KERASCLI_DATA_URL`` names, else ``origin``."""
    url = os.environ.get(URL_ENV) or origin
    return url if url.endswith("/") else url + "/"


class Progress(Protocol):
    """Told how a download goes (the command line sets one that draws a bar on a terminal; data/ itself
    prints nothing)."""

    def started(self, file: RemoteFile, total: int) -> None: ...

    def advanced(self, file: RemoteFile, received: int) -> None: ...

    def ended(self, file: RemoteFile) -> None: ...  # after success or failure alike


progress: Progress | None = None


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(file: RemoteFile) -> str:
    """The cached path of ``file``, downloaded first unless a valid copy is cached."""
    path = file.path
    if os.path.isfile(path):
        if sha256_of(path) == file.sha256:
            return path
        stale = f"the cached {path} does not match its SHA-256 (replacing it)"
    else:
        stale = None
    try:
        _download(file, path)
    except DataError as exc:
        raise DataError(f"{exc}; {stale}" if stale else str(exc)) from None
    return path


def _offline_hint(file: RemoteFile, path: str) -> str:
    return (f"to work offline, fetch {file.origin}{file.name} ({file.size:,} bytes) yourself and put it at "
            f"{path}, or set {URL_ENV} to a mirror")


def _download(file: RemoteFile, path: str) -> None:
    url = file.url
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the dataset cache {folder} ({exc.strerror}); set {CACHE_ENV} to a "
                        "writable folder") from None
    fd, partial = tempfile.mkstemp(dir=folder, prefix=f".{file.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            received, digest = _receive(file, url, out)
            out.flush()
            os.fsync(out.fileno())
        if received != file.size or digest != file.sha256:
            raise DataError(f"{url}: the download is not the pinned file ({received:,} bytes with SHA-256 "
                            f"{digest}, expected {file.size:,} bytes with {file.sha256}); nothing was cached")
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _receive(file: RemoteFile, url: str, out) -> tuple[int, str]:
    """Stream ``url`` into ``out``; (bytes received, their SHA-256)."""
    digest, received, shown = hashlib.sha256(), 0, progress
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            announced = response.length  # Content-Length, when the server sent one
            if shown is not None:
                shown.started(file, announced or file.size)
            while True:
                block = response.read(CHUNK_BYTES)
                if not block:
                    break
                out.write(block)
                digest.update(block)
                received += len(block)
                if shown is not None:
                    shown.advanced(file, received)
        if announced is not None and received < announced:
            raise http.client.IncompleteRead(b"", announced - received)
    except urllib.error.HTTPError as exc:
        raise DataError(f"cannot download {url}: HTTP {exc.code} {exc.reason}; {_offline_hint(file, file.path)}") \
            from None
    except http.client.IncompleteRead as exc:
        raise DataError(f"{url}: the transfer broke off after {received + len(exc.partial):,} of "
                        f"{received + len(exc.partial) + (exc.expected or 0):,} bytes; nothing was cached") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"cannot download {url} ({reason}); {_offline_hint(file, file.path)}") from None
    finally:
        if shown is not None:
            shown.ended(file)
    return received, digest.hexdigest()
