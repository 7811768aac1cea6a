"""Batches prepared ahead on background threads (``data.prefetch``, ``data.workers``).

One thread runs the split's batch generator (reading rows from a file, augmenting, standardising) while
the training step computes; Numba kernels and BLAS release the GIL, so the two overlap. With several
workers each batch is made on its own (``make_batch`` of the split's ``batch_keys``) by a pool of threads,
up to ``workers + prefetch`` batches ahead, and handed over in order. The batches, and so the run, are
the same either way: only their timing changes. A batch that fails to be made raises its error in the
training loop; a loop that stops early (an interrupted epoch, a callback) stops the threads.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

_DONE = object()


def prefetched(batches, depth: int):
    """Iterate ``batches`` (an iterator) with up to ``depth`` items made ahead on a background thread."""
    if depth <= 0:
        yield from batches
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in batches:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as exc:  # handed to the loop, which raises it where the batch was wanted
            put((_DONE, exc))

    thread = threading.Thread(target=produce, name="kerascli-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join()
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def made_by_workers(make, keys, workers: int, ahead: int):
    """``make(key)`` for each of ``keys`` on ``workers`` threads, at most ``ahead`` in flight, in order."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="kerascli-worker")
    pending: deque = deque()
    keys = iter(keys)
    try:
        for key in keys:
            pending.append(pool.submit(make, key))
            if len(pending) >= ahead:
                break
        while pending:
            batch = pending.popleft().result()
            for key in keys:
                pending.append(pool.submit(make, key))
                break
            yield batch
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


class PrefetchedSplit:
    """``split`` whose ``batches`` are made ahead: ``depth`` on a background thread, or with ``workers`` > 1
    on that many threads (splits that make each batch on its own: not a dataset given batch by batch, whose
    code may not be safe to call from several threads); everything else is the split's."""

    def __init__(self, split, depth: int, workers: int = 1):
        self.split, self.depth, self.workers = split, depth, workers

    def __getattr__(self, name):
        return getattr(self.split, name)

    def __len__(self) -> int:
        return len(self.split)

    def head(self, batches: int, batch_size: int):
        return PrefetchedSplit(self.split.head(batches, batch_size), self.depth, self.workers)

    def batches(self, batch_size: int, order=None):
        split = self.split
        if self.workers > 1 and not getattr(split, "streamed", False) and hasattr(split, "make_batch"):
            return made_by_workers(split.make_batch, split.batch_keys(batch_size, order), self.workers,
                                   self.workers + self.depth)
        return prefetched(split.batches(batch_size, order), self.depth)
