"""One pool of threads owns all parallelism; BLAS and Numba kernels run single-threaded inside it.

Two pools on one small machine fight: OpenBLAS's idle workers spin after every
product while Numba's OpenMP workers run the next kernel (each ran about half
speed). Here a layer splits its batch (or a weight buffer) into one part per
thread, and each thread runs BLAS and the Numba kernels (which release the
GIL) on its part, single-threaded. Small work stays on the calling thread:
handing a part over costs 15-35 us.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from kerascli.ops.tuning import SPLIT_MIN_WORK

_pool: ThreadPoolExecutor | None = None
_threads = 1


def _single_threaded_numba() -> None:
    import numba

    numba.set_num_threads(1)


def set_workers(threads: int) -> None:
    """Run parallel work on ``threads`` threads: the caller and ``threads - 1`` pool threads."""
    global _pool, _threads
    threads = max(1, threads)
    if threads == _threads and (_pool is not None or threads == 1):
        return
    if _pool is not None:
        _pool.shutdown(wait=True)
    _threads = threads
    _pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="kerascli", initializer=_single_threaded_numba) \
        if threads > 1 else None


def parts(n: int, work: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) ranges covering range(n), one per thread when ``work`` is worth splitting."""
    k = 1 if _pool is None or work < SPLIT_MIN_WORK else min(_threads, n)
    return [(n * i // k, n * (i + 1) // k) for i in range(max(k, 1))]


def run(task: Callable[[int, int, int], object], n: int, work: int) -> list:
    """Call ``task(part, lo, hi)`` over the parts of range(n), in parallel; results in part order."""
    ranges = parts(n, work)
    if len(ranges) == 1:
        return [task(0, 0, n)]
    futures = [_pool.submit(task, i, lo, hi) for i, (lo, hi) in enumerate(ranges) if i > 0]
    first = task(0, *ranges[0])
    return [first] + [f.result() for f in futures]


def count() -> int:
    return _threads
