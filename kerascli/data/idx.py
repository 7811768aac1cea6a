"""MNIST's IDX files (``train-images-idx3-ubyte`` and the like), plain or gzip-compressed.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one big-endian
32-bit size per dimension, then the values, big-endian, in C order. The header is checked before anything
is read: a known type, sizes that fit this machine's memory, and a file that holds exactly what the header
declares (a truncated download is named as such). A plain file is memory-mapped, not read (a dataset's
images are read by rows, batch by batch: kerascli.data.filerows); a compressed one is decompressed once,
with the same checks against what the stream yields.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from kerascli.data.npyfile import memory_bytes
from kerascli.errors import DataError

# type code -> the values' big-endian dtype
TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
         0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
MAX_DIMENSIONS = 16


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _header(f, path: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, header bytes) read from the start of ``f``."""
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise DataError(f"{path}: not an IDX file (it should start with two zero bytes, a type code and a "
                        "dimension count)")
    code, ndim = magic[2], magic[3]
    if code not in TYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02X} (known: "
                        f"{', '.join(f'0x{c:02X}' for c in TYPES)})")
    if not 1 <= ndim <= MAX_DIMENSIONS:
        raise DataError(f"{path}: an IDX file of {ndim} dimensions (1 to {MAX_DIMENSIONS} are read)")
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(f"{path}: truncated: the header ends before its {ndim} sizes")
    shape = struct.unpack(f">{ndim}I", raw)
    dtype = TYPES[code]
    size = math.prod(shape) * dtype.itemsize
    if size > memory_bytes():
        raise DataError(f"{path}: the header declares {shape} values of {dtype.itemsize} bytes "
                        f"({size / 2**30:,.1f} GiB), more than this machine's memory")
    return dtype, shape, 4 + 4 * ndim


def read_idx(path: str, by_rows: bool = False) -> np.ndarray:
    """The array in an IDX file (plain: memory-mapped, read-only), in native byte order where its type has
    more than one byte (those are copied). With ``by_rows``, a plain file of rows is a
    kerascli.data.filerows.FileArray (read batch by batch, never whole)."""
    if not os.path.isfile(path):
        raise DataError(f"data file not found: {path}")
    try:
        if _is_gzip(path):
            return _read_gzip(path)
        with open(path, "rb") as f:
            dtype, shape, offset = _header(f, path)
        expected = offset + math.prod(shape) * dtype.itemsize
        actual = os.path.getsize(path)
        if actual != expected:
            what = "truncated" if actual < expected else "longer than its header says"
            raise DataError(f"{path}: {what}: the header declares {'x'.join(map(str, shape))} values "
                            f"({expected:,} bytes with the header), the file has {actual:,}")
        if math.prod(shape) == 0:
            return np.zeros(shape, dtype.newbyteorder("="))
        if by_rows and len(shape) > 1:  # rows read batch by batch, converted there
            from kerascli.data.filerows import FileArray

            return FileArray(path, shape, dtype, offset)
        a = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
        return a if dtype.itemsize == 1 else a.astype(dtype.newbyteorder("="))
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def _read_gzip(path: str) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            dtype, shape, _ = _header(f, path)
            want = math.prod(shape) * dtype.itemsize
            data = f.read(want)
            extra = f.read(1)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: a damaged or truncated gzip stream ({exc})") from None
    if len(data) < want:
        raise DataError(f"{path}: truncated: the header declares {'x'.join(map(str, shape))} values "
                        f"({want:,} bytes), the stream holds {len(data):,}")
    if extra:
        raise DataError(f"{path}: longer than its header says ({'x'.join(map(str, shape))} values)")
    return np.frombuffer(data, dtype).reshape(shape).astype(dtype.newbyteorder("="))
