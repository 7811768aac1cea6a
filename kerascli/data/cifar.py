"""CIFAR-10 and CIFAR-100 as keras.datasets gives them: the Toronto archives (SHA-256 pinned as Keras pins
them), read without unpacking to disk, their pickled batches read by kerascli.data.pickled (never
unpickled); images channels-last (N, 32, 32, 3) uint8, labels one class id per image."""

from __future__ import annotations

import tarfile

import numpy as np

from kerascli.config.params import Param
from kerascli.data.datasets import KerasDataset, check_features
from kerascli.data.download import RemoteFile, fetch
from kerascli.data.pickled import read_pickle
from kerascli.errors import DataError

ORIGIN = "https://www.cs.toronto.edu/~kriz/"
MAX_MEMBER_BYTES = 1 << 28  # a batch of CIFAR is about 31 MB; a member larger than this is not one


def read_members(path: str, names: list[str]) -> dict[str, bytes]:
    """{name: bytes} of the named members of the .tar.gz ``path``, read in one pass over the archive."""
    wanted, found = set(names), {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                if member.name not in wanted:
                    continue
                if not member.isfile() or member.size > MAX_MEMBER_BYTES:
                    raise DataError(f"{path}: {member.name} is not a CIFAR batch ({member.size:,} bytes)")
                found[member.name] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .tar.gz archive ({exc})") from None
    missing = [n for n in names if n not in found]
    if missing:
        raise DataError(f"{path}: the archive has no {', '.join(missing)}")
    return found


def read_batch(raw: bytes, where: str, label_key: str, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,) uint8) of one pickled CIFAR batch."""
    batch = read_pickle(raw, where)
    if not isinstance(batch, dict):
        raise DataError(f"{where}: not a CIFAR batch (a dict of data and labels)")

    def field(key: str):
        for k in (key.encode(), key):
            if k in batch:
                return batch[k]
        raise DataError(f"{where}: no {key!r} in the batch (it has {', '.join(map(repr, batch))})")

    data, labels = field("data"), field(label_key)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        shown = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{where}: 'data' must be uint8 rows of 3,072 values (3 x 32 x 32), got {shown}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {label_key!r} is not a list of class ids") from None
    if labels.shape != (len(data),):
        raise DataError(f"{where}: {len(data):,} images but {labels.size:,} labels in {label_key!r}")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise DataError(f"{where}: {label_key!r} holds {int(labels.max())}, outside the {classes} classes")
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # Keras: channels last
    return images, labels.astype(np.uint8)


class Cifar10(KerasDataset):
    """50,000 + 10,000 32x32 colour images of 10 classes (airplane ... truck), as keras.datasets.cifar10."""

    FILES = (RemoteFile("cifar-10-python.tar.gz", "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                        170498071, origin=ORIGIN),)
    FOLDER = "cifar-10-batches-py"

    @classmethod
    def load(cls, params):
        path = fetch(cls.FILES[0])
        names = [f"{cls.FOLDER}/data_batch_{i}" for i in range(1, 6)] + [f"{cls.FOLDER}/test_batch"]
        raw = read_members(path, names)
        batches = [read_batch(raw.pop(n), f"{path}: {n}", "labels", 10) for n in names]
        x = np.concatenate([b[0] for b in batches[:5]])
        y = np.concatenate([b[1] for b in batches[:5]])
        return {"train": check_features(x, y, path), "test": check_features(*batches[5], f"{path} (test)")}


class Cifar100(KerasDataset):
    """50,000 + 10,000 32x32 colour images of 100 classes (``label_mode: fine``) or of their 20 super-classes
    (``coarse``), as keras.datasets.cifar100."""

    PARAMS = {"label_mode": Param("str", "fine", choices=("fine", "coarse"))}
    FILES = (RemoteFile("cifar-100-python.tar.gz",
                        "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7", 169001437, origin=ORIGIN),)
    FOLDER = "cifar-100-python"

    @classmethod
    def load(cls, params):
        path = fetch(cls.FILES[0])
        mode = params.get("label_mode", "fine")
        names = [f"{cls.FOLDER}/train", f"{cls.FOLDER}/test"]
        raw = read_members(path, names)
        train, test = (read_batch(raw.pop(n), f"{path}: {n}", f"{mode}_labels", 100 if mode == "fine" else 20)
                       for n in names)
        return {"train": check_features(*train, path), "test": check_features(*test, f"{path} (test)")}
