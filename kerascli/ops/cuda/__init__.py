"""numba.cuda kernels, one module per family (kerascli.ops.contract.KERNEL_FAMILIES), mirrored name for name
from kerascli.ops.reference: each public function takes and returns device arrays and launches kernels on the
default stream (so calls are ordered and nothing waits for the GPU unless a value is copied to the host).

Imported only when the cuda backend is asked for: importing it imports numba.cuda.
"""
