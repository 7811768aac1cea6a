"""Each rank's part of every batch in data-parallel training (kerascli.train.distributed)."""

from __future__ import annotations

import numpy as np

from kerascli.train.loop import batch_length


class Padding(np.ndarray):
    """The sample weights of a stand-in batch: a rank whose part of a global batch is empty (a batch with
    fewer samples than ranks) runs one sample of it so that it can take part in the step, and counts
    nothing of it."""


def _cut(value, part: slice):
    return None if value is None else {k: v[part] for k, v in value.items()} if isinstance(value, dict) else value[part]


class ShardedSplit:
    """This rank's part of each batch of ``split``: the global batches (sizes and order) are the split's,
    each cut into ``size`` consecutive parts (np.array_split's). In training a rank with an empty part gets a
    stand-in (``Padding`` weights); in evaluation it gets no batch. Everything else (order, steps, sample
    counts) is the whole split's."""

    def __init__(self, split, rank: int, size: int, training: bool):
        self.split, self.rank, self.size, self.training = split, rank, size, training
        # batches cut by sample position can be made from the part's positions alone; others (a dataset's
        # batches, augmented ones, whose draws follow the whole batch) are made whole and then cut
        self._by_position = not (getattr(split, "streamed", False) or getattr(split, "augmented", False))

    def __getattr__(self, name):
        return getattr(self.split, name)

    def __len__(self) -> int:
        return len(self.split)

    def head(self, batches: int, batch_size: int):
        return ShardedSplit(self.split.head(batches, batch_size), self.rank, self.size, self.training)

    def _part(self, rows: int) -> tuple[slice, bool]:
        """This rank's rows of a batch of ``rows``, and whether they are a stand-in."""
        base, extra = divmod(rows, self.size)
        start = self.rank * base + min(self.rank, extra)
        stop = start + base + (self.rank < extra)
        if stop > start or not self.training:
            return slice(start, stop), False
        return slice(0, 1), True

    def batch_keys(self, batch_size: int, order=None) -> list:
        keys = []
        for key in self.split.batch_keys(batch_size, order):
            if self._by_position and isinstance(key, (slice, np.ndarray)):
                if isinstance(key, slice):
                    key = np.arange(*key.indices(len(self.split)))
                part, padding = self._part(len(key))
                if part.stop > part.start:
                    keys.append((key[part], None, padding))
            else:
                keys.append((key, True, False))
        return keys

    def make_batch(self, key):
        inner, whole, padding = key
        x, y, w = self.split.make_batch(inner)
        if whole:
            part, padding = self._part(batch_length(x))
            if part.stop == part.start:
                return None
            x, y, w = _cut(x, part), _cut(y, part), _cut(w, part)
        if padding:
            w = np.zeros(batch_length(x), np.float64).view(Padding)
        return x, y, w

    def batches(self, batch_size: int, order=None):
        for key in self.batch_keys(batch_size, order):
            batch = self.make_batch(key)
            if batch is not None:
                yield batch
