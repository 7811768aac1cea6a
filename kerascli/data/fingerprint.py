"""Fingerprints of the files a run's data came from, so a run never silently meets other data.

A run stores the size and SHA-256 of every data file its dataset reads (the
dataset's ``path`` parameters) in each checkpoint and in summary.json.
``evaluate`` and a resume compare them with the files as they are now.
"""

from __future__ import annotations

import hashlib
import os

from kerascli.errors import DataError
from kerascli.registry import DATASETS

CHUNK = 1 << 20


def data_files(data_spec: dict) -> list[str]:
    dataset = DATASETS.get(data_spec["dataset"])
    return [data_spec[key] for key, param in dataset.PARAMS.items()
            if param.kind == "path" and data_spec.get(key) is not None]


def sha256_file(path: str) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex digest) of a file, read in chunks; OSError when it cannot be read."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def sha256_folder(path: str) -> tuple[int, str]:
    """(bytes, SHA-256) of a folder: over each file's path inside it and its own SHA-256, in sorted order."""
    digest = hashlib.sha256()
    total = 0
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            size, sha = sha256_file(full)
            digest.update(f"{os.path.relpath(full, path)}\0{sha}\n".encode())
            total += size
    return total, digest.hexdigest()


def file_fingerprint(path: str) -> dict:
    """{bytes, sha256} of a data file, or of a folder of them (an image folder)."""
    try:
        size, sha = sha256_folder(path) if os.path.isdir(path) else sha256_file(path)
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}") from None
    return {"bytes": size, "sha256": sha}


def fingerprints(data_spec: dict) -> dict[str, dict]:
    """{path: {bytes, sha256}} for every file the dataset reads (empty for built-in and generated data)."""
    return {path: file_fingerprint(path) for path in data_files(data_spec)}


def changed_files(stored: dict | None, current: dict) -> list[str]:
    """One line per file whose content differs from what the run was trained on."""
    if not stored:
        return []  # a checkpoint from before fingerprints were stored
    problems = []
    for path, then in stored.items():
        now = current.get(path)
        if now is None:
            problems.append(f"{path} is no longer part of the data")
        elif now != then:
            problems.append(f"{path} changed since the run trained on it ({then['bytes']:,} bytes, sha256 "
                            f"{then['sha256'][:12]}... then; {now['bytes']:,} bytes, {now['sha256'][:12]}... now)")
    return problems

