"""How every cpu kernel is compiled.

``cache=True``: a second process loads kernels from disk in milliseconds (kerascli.ops.kernel_cache keys them
by all the sources they may depend on);
``error_model="numpy"``: no divide-by-zero checks, which block vectorisation
(Adam over 1M floats: 4.8 ms with the default model, 0.64 ms without);
``nogil=True``: the cpu Ops runs kernels on parts of a batch in parallel threads.
"""

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from kerascli.ops import kernel_cache

kernel_cache.install_for_cpu()  # cached kernels keyed by every source under ops/, before any is defined
opts = dict(cache=True, error_model="numpy", nogil=True)
# Lets LLVM fuse a multiply and an add into one FMA instruction (1.3-1.6x in the
# convolution loops; FMA rounds once, so results move in the last bit only).
fma_opts = dict(opts, fastmath={"contract"})


@intrinsic
def trailing_zeros(typingctx, value):
    """The number of zero bits below the lowest set bit of an integer (LLVM's cttz: one instruction)."""
    if not isinstance(value, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return value(value), codegen


@njit(inline="always", **opts)
def window_span(origin, k, size):
    """The window offsets [lo, hi) that land inside [0, size) for a window starting at ``origin``."""
    return max(0, -origin), min(k, size - origin)
