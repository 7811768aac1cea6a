"""Numba kernels, one module per family, with the names, signatures and results of
kerascli.ops.reference (parity tests compare them). Large matrix products stay in
BLAS (``Ops.gemm``); these kernels fuse the elementwise work around them so each
step makes one pass over memory instead of several numpy temporaries. Kernels are
serial and release the GIL: NumbaCPUOps runs them on parts of a batch in parallel
threads (workers.py)."""
