"""Features read from their file batch by batch: training on a file larger than memory.

An ``.npy`` (or plain IDX) file's array is never read whole: the splits are index arrays into it, and each
batch reads its rows straight from the file into the batch's array (``pread``, in file order, one call per
run of consecutive rows, in a Numba kernel that releases the GIL, so a prefetching thread overlaps it with
training), converted to the run's dtype there. The operating system's page cache keeps the file's pages
between epochs; none of them count in the process's memory.

Why not a memory map: pages read through a map count in the process's resident memory until unmapped, and
current kernels map page-cache folios of up to 2 MiB at a fault, so random rows of a 4 GB file map most of
it within an epoch; handing the pages back after each batch (``madvise``) made gathering 5x slower than
reading the rows. Checks that look at every value (NaN/Inf) and fits of statistics read the file in
chunks the same way.
"""

from __future__ import annotations

import math
import os

import numba
import numpy as np
from numba import types

from kerascli.data.pipeline import SampleSplit, take
from kerascli.errors import DataError

CHUNK_BYTES = 16 << 20  # what a pass over every row reads at a time

# the C library's pread, called from compiled code (declared by symbol, so the kernel can be cached)
_pread = types.ExternalFunction("pread", types.intp(types.int32, types.voidptr, types.uintp, types.int64))


@numba.njit(nogil=True, cache=True)
def read_rows(fd, offset, row_bytes, rows, slots, out):
    """File ``fd``'s rows ``rows`` (byte ``offset + row * row_bytes`` each) into rows ``slots`` of C-contiguous
    bytes ``out``, one pread per run of rows consecutive both in the file and in ``out`` (give the rows in
    file order: reading ascending offsets costs less); returns how many were read completely (fewer: the
    file ended or failed)."""
    base = out.ctypes.data
    n = rows.size
    j = 0
    while j < n:
        k = j + 1
        while k < n and rows[k] == rows[k - 1] + 1 and slots[k] == slots[k - 1] + 1:
            k += 1
        want = (k - j) * row_bytes
        done = 0
        while done < want:
            got = _pread(fd, base + slots[j] * row_bytes + done, want - done, offset + rows[j] * row_bytes + done)
            if got <= 0:
                return j + done // row_bytes
            done += got
        j = k
    return n


def read_rows_reference(path: str, offset: int, row_bytes: int, rows: np.ndarray, slots: np.ndarray,
                        out: np.ndarray) -> int:
    """numpy twin of :func:`read_rows` (a seek and read per row)."""
    view = out.reshape(len(out), -1).view(np.uint8).reshape(len(out), row_bytes)
    with open(path, "rb") as f:
        for j, (r, slot) in enumerate(zip(rows, slots)):
            f.seek(offset + int(r) * row_bytes)
            data = f.read(row_bytes)
            if len(data) < row_bytes:
                return j
            view[slot] = np.frombuffer(data, np.uint8)
    return len(rows)


def open_npy(path: str) -> FileArray | None:
    """The array of an .npy file, to read by rows (its header checked against its size first); None where it
    cannot be read by rows (Fortran order, no values)."""
    from kerascli.data.npyfile import check_npy, npy_layout

    shape, dtype = check_npy(path)
    fortran, offset = npy_layout(path)
    if fortran or not shape or math.prod(shape) == 0:
        return None
    return FileArray(path, shape, dtype, offset)


class FileArray:
    """An array in a file (``shape`` of ``dtype`` at byte ``offset``), read row by row."""

    def __init__(self, path: str, shape: tuple, dtype, offset: int):
        self.path, self.shape, self.dtype = path, tuple(int(d) for d in shape), np.dtype(dtype)
        self.offset = int(offset)
        self.row_bytes = self.dtype.itemsize * math.prod(self.shape[1:])
        self._fd = os.open(path, os.O_RDONLY)

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):  # the whole array, for paths that need one (small files)
        return self.rows(np.arange(len(self)), dtype)

    def rows(self, index, dtype=None) -> np.ndarray:
        """A new array of rows ``index`` (integers), in native byte order, as ``dtype`` where given."""
        index = np.ascontiguousarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"{self.path}: row index out of range")
        raw = np.empty((len(index),) + self.shape[1:], self.dtype)
        if raw.size:
            slots = np.argsort(index, kind="stable")  # read in file order, each row into its place
            got = self._read(index[slots], slots, raw)
            if got < len(index):
                raise DataError(f"{self.path}: could not read row {int(index[slots[got]])} (the file is shorter "
                                "than its header says, or changed while training)")
        native = self.dtype.newbyteorder("=")
        want = np.dtype(dtype) if dtype is not None else native
        return raw if raw.dtype == want else raw.astype(want)

    _compiled = True  # False once the kernel could not be compiled here (no pread): numpy reads instead

    def _read(self, rows, slots, raw) -> int:
        if FileArray._compiled:
            try:
                # as bytes: the kernel copies them, whatever their type (Numba takes native types only)
                return read_rows(self._fd, self.offset, self.row_bytes, rows, slots,
                                 raw.reshape(len(raw), -1).view(np.uint8))
            except numba.core.errors.NumbaError:
                FileArray._compiled = False
        return read_rows_reference(self.path, self.offset, self.row_bytes, rows, slots, raw)

    def chunks(self):
        """(first row, rows) over the whole array, a few MiB at a time."""
        step = max(1, CHUNK_BYTES // max(self.row_bytes, 1))
        for start in range(0, len(self), step):
            yield start, self.rows(np.arange(start, min(len(self), start + step)))


class FileSplit(SampleSplit):
    """A split of a file array's rows (``index``), with its targets and sample weights in memory; each
    batch's features are read from the file and converted to ``dtype``."""

    from_file = True  # a device backend takes its batches one at a time

    def __init__(self, source: FileArray, y, w, index: np.ndarray, dtype):
        self.source, self.y, self.w, self.index, self.dtype = source, y, w, np.asarray(index), np.dtype(dtype)

    @property
    def sample_shape(self) -> tuple:
        return self.source.shape[1:]

    def __len__(self) -> int:
        return len(self.index)

    def head(self, batches: int, batch_size: int) -> FileSplit:
        part = slice(0, batches * batch_size)
        return FileSplit(self.source, take(self.y, part), None if self.w is None else self.w[part],
                         self.index[part], self.dtype)

    def make_batch(self, key):
        positions = np.arange(len(self))[key] if isinstance(key, slice) else key
        x = self.source.rows(self.index[positions], self.dtype)
        return x, take(self.y, positions), None if self.w is None else self.w[positions]
