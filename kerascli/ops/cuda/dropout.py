"""CUDA twin of kerascli.ops.reference.dropout."""

from __future__ import annotations

from numba import cuda

from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import as2d, blocks, output_for


@kernel
def _dropout(x, u, rate, out):
    i = cuda.grid(1)
    rows, cols = x.shape
    if i < rows * cols:
        r = i // cols
        c = i - r * cols
        out[r, c] = x[r, c] / (1 - rate) if u[r, c] >= rate else 0


def dropout(x, u, rate):
    out = output_for("dropout", (x, u), x.shape, x.dtype)
    if x.size:
        _dropout[blocks(x.size)](as2d(x), as2d(u), rate, as2d(out))
    return out
