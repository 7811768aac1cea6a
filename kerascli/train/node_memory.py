"""Gradient sums, and with an elementwise optimizer the weights and the optimizer's slots, in memory the
data-parallel ranks of one node share (MPI-3 shared windows): kerascli.train.distributed uses it in place of
an Allreduce of the whole gradient where every node runs as many ranks."""

from __future__ import annotations

import numpy as np


class SharedSums:
    """Gradient sums through memory the ranks of one node share (MPI-3 shared windows), in place of an
    Allreduce: each rank's backward pass writes its gradient straight into its part of a shared window and
    its step's counts into another; after a barrier, rank r adds up its 1/P slice of everyone's gradients,
    each weighted by its share of the batch, in rank order (so the sums are the same bits on every run).

    With an optimizer whose update is elementwise (``by_parts``), the weights and the optimizer's slots are
    shared too, and rank r updates only its slice of them from its slice of the sum (as ZeRO's first stage
    does): a P-th of the optimizer's work on each rank, then one barrier before the next forward pass reads
    the weights. Otherwise rank r writes its slice into a shared sum and, after a second barrier, every
    rank's optimizer reads the whole of it. Either way two barriers a step and one pass over the gradients,
    shared between the ranks: no copies in or out.

    On several nodes (each with as many ranks) every node does the same, and between the sum of its node's
    slice and the update, rank r adds up slice r over the nodes with the ranks at place r on the other
    nodes (``world.across``): the nodes exchange one gradient's worth each, in P_node streams side by side,
    instead of every rank's. Every node then holds the same weights and slots, updated slice by slice."""

    def __init__(self, world, size: int, dtype: np.dtype, by_parts: bool):
        self.world, self.size, self.dtype, self.by_parts = world, size, dtype, by_parts
        self.ops = None  # the model's Ops (DataParallel sets it): the sums run its kernels
        self.node = node = world.node
        self.rank, ranks = node.Get_rank(), node.Get_size()
        self.across = world.across if world.across.Get_size() > 1 else None
        self._windows = []
        # rank r's slice of the buffers: on 64-byte boundaries, so no two ranks write one cache line
        step = max(1, 64 // dtype.itemsize)
        bounds = [min(size, (size * r // ranks + step - 1) // step * step) for r in range(ranks + 1)]
        bounds[-1] = size
        self.lo, self.hi = bounds[self.rank], bounds[self.rank + 1]
        self.grads = self._allocate(node, size, dtype)
        self.mine = self.grads[self.rank]
        self.mine[...] = 0
        if by_parts:
            self.params = self._allocate_one(size, dtype)
            if self.rank == 0:  # each node's first rank alone writes the weights before training starts
                self.params[...] = 0  # the padding between weights stays zero
            self.part = np.zeros(self.hi - self.lo, dtype)  # this rank's slice of the sum, its own
        else:
            self.sums = self._allocate_one(size, dtype)
        self.counts = None  # the steps' count vectors (float64), made at the first step (their length)

    def _allocate(self, comm, count: int, dtype: np.dtype, alone: bool = False) -> list[np.ndarray | None]:
        """A shared window of ``count`` items per rank (``alone``: on rank 0 only), viewed from this rank."""
        mpi = self.world.MPI
        nbytes = 0 if alone and self.rank != 0 else count * dtype.itemsize
        win = mpi.Win.Allocate_shared(nbytes, dtype.itemsize, comm=comm)
        win.Lock_all(mpi.MODE_NOCHECK)  # one passive epoch for the run; Sync + Barrier order the accesses
        self._windows.append(win)
        views = []
        for rank in range(comm.Get_size()):
            buf, _ = win.Shared_query(rank)
            views.append(np.frombuffer(buf, dtype, count) if len(buf) else None)
        return views

    def _allocate_one(self, count: int, dtype: np.dtype) -> np.ndarray:
        return self._allocate(self.node, count, dtype, alone=True)[0]

    def barrier(self) -> None:
        for win in self._windows:
            win.Sync()
        with self.world._waiting():
            self.node.Barrier()
        for win in self._windows:
            win.Sync()

    def share_slots(self, optimizer) -> None:
        """Move the optimizer's slots into shared memory (by parts: each rank updates its slice of them and
        rank 0 reads them whole for checkpoints), each rank copying its slice over. Collective."""
        for name, slot in list(optimizer.slots.items()):
            shared = self._allocate_one(self.size, self.dtype)
            shared[self.lo : self.hi] = slot[self.lo : self.hi]
            optimizer.slots[name] = shared
        self.barrier()

    def _add_up(self, counts: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Wait for every rank's gradient and counts, then write this rank's slice of the weighted sum of
        the gradients into ``out``; returns the summed counts."""
        if self.counts is None:
            self.counts = self._allocate(self.node, len(counts), np.dtype(np.float64))
        self.counts[self.rank][...] = counts
        self.barrier()
        total = self.counts[0].copy()
        for part in self.counts[1:]:
            total += part
        if self.across is not None:  # every node's: the shares are of the whole batch
            self.world.sum(total, self.across)
        shares = [self.dtype.type(part[0] / total[0]) for part in self.counts]
        np.multiply(self.grads[0][self.lo : self.hi], shares[0], out=out)
        for grads, share in zip(self.grads[1:], shares[1:]):  # in rank order
            self.ops.optimizer_step("add_scaled_gradient", (out, grads[self.lo : self.hi]), (share,))
        if self.across is not None:
            self.world.sum(out, self.across)
        return total

    def reduce(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sum this step's count vectors (``counts``: row count first) and gradients over the ranks; returns
        (summed counts, the batch's mean gradient, shared and read-only until the next step)."""
        total = self._add_up(counts, self.sums[self.lo : self.hi])
        self.barrier()
        return total, self.sums

    def reduce_part(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """By parts: (summed counts, this rank's slice of the batch's mean gradient, its own). After the
        rank updated its slice of the weights, ``barrier`` lets the next forward pass read them."""
        return self._add_up(counts, self.part), self.part
