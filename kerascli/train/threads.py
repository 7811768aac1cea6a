"""One thread count for both engines that run kernels: Numba's workers and the BLAS behind numpy."""

from __future__ import annotations

import os


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_threads(threads: int) -> int:
    """Use ``threads`` threads (0: every available core); returns the count applied."""
    import numba
    from threadpoolctl import threadpool_limits

    n = threads or available_cores()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    threadpool_limits(limits=n, user_api="blas")
    return n
