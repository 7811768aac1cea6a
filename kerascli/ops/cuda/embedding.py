"""CUDA twins of kerascli.ops.reference.embedding: one thread per table entry, summing the ids that name
its row in order (deterministic, no atomics)."""

from __future__ import annotations

from numba import cuda

from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import blocks


@kernel
def _scatter_add_rows(grad, ids, dy):
    i = cuda.grid(1)
    rows, width = grad.shape
    if i < rows * width:
        r, j = i // width, i % width
        s = 0.0
        for k in range(ids.shape[0]):
            if ids[k] == r:
                s += dy[k, j]
        grad[r, j] = s


def scatter_add_rows(grad, ids, dy):
    if grad.size:
        _scatter_add_rows[blocks(grad.size)](grad, ids, dy)
