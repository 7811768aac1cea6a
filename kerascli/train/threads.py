"""How many threads training uses, and who runs them."""

from __future__ import annotations

import os


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_threads(threads: int, batch_parallel: bool = True) -> int:
    """Use ``threads`` threads (0: every available core); returns the count applied.

    Two regimes, never both at once (on a small machine an idle pool spinning
    next to a busy one halves the busy one's speed):

    * ``batch_parallel``: layers split their batch across kerascli's own pool
      (kerascli.ops.workers) and run BLAS and Numba single-threaded inside it.
      Best for convolutional models, whose window kernels are most of the work.
    * otherwise: BLAS parallelises each matrix product itself and everything
      else runs on one thread. Best for models made of Dense layers, where
      the products are the work and handing parts to threads would cost more
      than it saves at small batches.
    """
    import numba
    from threadpoolctl import threadpool_limits

    from kerascli.ops.workers import set_workers

    n = threads or available_cores()
    numba.set_num_threads(1)
    threadpool_limits(limits=1 if batch_parallel else n, user_api="blas")
    set_workers(n if batch_parallel else 1)
    return n
