"""Reading .npy and .npz files from outside, headers first.

``numpy.load`` trusts an array's header: a 200-byte file that declares a shape
of (10**6, 10**6) makes it allocate first and fail (or swap) later. Here every
array's header is read before any data: the declared size must be what the
file actually holds (for a compressed member, no more than deflate can expand
its bytes to), no array may hold Python objects, and all of them together
must fit in this machine's memory. Only then does ``numpy.load`` (pickle off)
read the data.
"""

from __future__ import annotations

import math
import os
import zipfile

import numpy as np

from kerascli.errors import DataError

# deflate cannot expand data by more than about 1032:1
MAX_DEFLATE_RATIO = 1100


def memory_bytes() -> int:
    """Physical memory of this machine (a generous bound for any one file's arrays)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def _read_header(f, where: str) -> tuple[tuple, bool, np.dtype]:
    """(shape, Fortran order?, dtype) of the .npy stream ``f`` at its start, left at its data."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version in ((2, 0), (3, 0)):
            return np.lib.format.read_array_header_2_0(f)
        raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, EOFError, OSError, SyntaxError) as exc:
        raise DataError(f"{where}: not a readable .npy array ({exc})") from None


def _header(f, where: str) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, header length in bytes) of the .npy stream ``f`` at its start; an array of Python
    objects is refused."""
    shape, _, dtype = _read_header(f, where)
    if dtype.hasobject:
        raise DataError(f"{where}: holds Python objects, which would need pickle to read; refused")
    return tuple(shape), dtype, f.tell()


def _check_declared(where: str, shape: tuple, dtype: np.dtype, holds: int, compressed: int | None) -> int:
    declared = math.prod(int(d) for d in shape) * dtype.itemsize  # exact: no int64 wrap-around
    if compressed is not None and holds > compressed * MAX_DEFLATE_RATIO + 4096:
        raise DataError(f"{where}: claims {holds:,} bytes from {compressed:,} compressed bytes; the file is damaged "
                        "or forged")
    if declared != holds:
        raise DataError(f"{where}: declares shape {shape} of {dtype} ({declared:,} bytes) but holds {holds:,} bytes "
                        "of data; the file is damaged or forged")
    return declared


def npy_layout(path: str) -> tuple[bool, int]:
    """(Fortran order?, byte offset of the data) of an .npy file whose header :func:`check_npy` checked."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _, fortran, _ = read(f)
        return bool(fortran), f.tell()


def check_npy(path: str, limit: int | None = None) -> tuple[tuple, np.dtype]:
    """Shape and dtype of the .npy file ``path`` after checking its header against its size."""
    with open(path, "rb") as f:
        shape, dtype, offset = _header(f, path)
    declared = _check_declared(path, shape, dtype, os.path.getsize(path) - offset, None)
    _check_limit(path, declared, limit)
    return shape, dtype


def check_npz(path: str, limit: int | None = None, what: str = ".npz file") -> dict[str, tuple[tuple, np.dtype]]:
    """{array name: (shape, dtype)} of the .npz file ``path`` after checking every member's header."""
    found, total = {}, 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                where = f"{path}: array {name!r}"
                with archive.open(info) as f:
                    shape, dtype, offset = _header(f, where)
                compressed = info.compress_size if info.compress_type != zipfile.ZIP_STORED else None
                total += _check_declared(where, shape, dtype, info.file_size - offset, compressed)
                found[name] = (shape, dtype)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable {what} ({exc})") from None
    _check_limit(path, total, limit)
    return found


def load_npz_arrays(path: str, names: list[str], found: list[str] | None = None, purpose: str = "") -> dict:
    """The arrays ``names`` of the .npz file ``path``, every header checked first (``found``: the names
    check_npz already gave for it). A missing name is one error listing the arrays the file has;
    ``purpose`` says what the name was wanted for."""
    have = list(check_npz(path)) if found is None else found
    for name in names:
        if name not in have:
            raise DataError(f"{path}: no array named {name!r}{purpose} (arrays: {', '.join(have) or 'none'})")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {name: z[name] for name in names}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read as .npz without pickle ({exc})") from None


def _check_limit(path: str, nbytes: int, limit: int | None) -> None:
    limit = memory_bytes() if limit is None else limit
    if nbytes > limit:
        raise DataError(f"{path}: its arrays need {nbytes / 2**30:,.1f} GiB, more than the "
                        f"{limit / 2**30:,.1f} GiB this can use")


def load_npz_sequences(path: str, names: list[str]) -> dict:
    """The arrays ``names`` of an .npz file whose arrays may hold Python objects (keras.datasets' imdb.npz and
    reuters.npz keep ragged sequences so): an object array's pickle stream is read by
    kerascli.data.pickled, which builds lists and numbers and never unpickles; numeric arrays are read with
    pickle off, their headers checked first."""
    from kerascli.data.pickled import read_pickle

    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = {i.filename[:-4] if i.filename.endswith(".npy") else i.filename: i for i in archive.infolist()}
            for name in names:
                if name not in members:
                    raise DataError(f"{path}: no array named {name!r} (arrays: {', '.join(members) or 'none'})")
                info, where = members[name], f"{path}: array {name!r}"
                _check_limit(where, info.file_size, None)
                with archive.open(info) as f:
                    shape, fortran, dtype = _read_header(f, where)
                    offset = f.tell()
                    if not dtype.hasobject:
                        _check_declared(where, shape, dtype, info.file_size - offset,
                                        info.compress_size if info.compress_type != zipfile.ZIP_STORED else None)
                        arrays[name] = np.frombuffer(f.read(), dtype=dtype).reshape(shape, order="F" if fortran
                                                                                     else "C")
                        continue
                    value = read_pickle(f.read(), where)
                if not (isinstance(value, np.ndarray) and value.shape == tuple(shape)):
                    raise DataError(f"{where}: its pickled data is not the array of shape {tuple(shape)} its header "
                                    "declares")
                arrays[name] = value
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    return arrays
