"""What a layer, loss, metric or optimizer computes, written once over an Ops' kernels.

Each function takes the Ops as its first argument and is bound as a method of
``ReferenceOps``: it calls only that Ops' kernels (``ops.im2col``,
``ops.bias_activation_inplace``...), its ``gemm``, its ``parallel`` (serial
in the reference Ops, a thread pool in the cpu Ops) and workspaces it is
handed. A backend whose hardware wants another algorithm (a GPU's convolution)
overrides the method; every other backend gets this one with its own kernels.
"""
