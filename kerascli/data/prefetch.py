"""Batches prepared ahead on a background thread (``data.prefetch``).

The thread runs the split's batch generator (reading rows from a file, augmenting, standardising) while
the training step computes; Numba kernels and BLAS release the GIL, so the two overlap. The batches, and
so the run, are the same with and without it: only their timing changes. A batch that fails to be made
raises its error in the training loop; a loop that stops early (an interrupted epoch, a callback) stops
the thread.
"""

from __future__ import annotations

import queue
import threading

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


class PrefetchedSplit:
    """``split`` whose ``batches`` are made ``depth`` ahead on a background thread; everything else is the
    split's."""

    def __init__(self, split, depth: int):
        self.split, self.depth = split, depth

    def __getattr__(self, name):
        return getattr(self.split, name)

    def __len__(self) -> int:
        return len(self.split)

    def head(self, batches: int, batch_size: int):
        return PrefetchedSplit(self.split.head(batches, batch_size), self.depth)

    def batches(self, batch_size: int, order=None):
        return prefetched(self.split.batches(batch_size, order), self.depth)
