"""Every tunable of the kernels and their composition, in one place (measured on a 2-core x86-64 machine)."""

# Below this much work (multiply-adds or values touched) a call is not split across threads: handing a
# part to another thread costs 15-35 us.
SPLIT_MIN_WORK = 1 << 22

# Convolution patches are built a few images at a time into a reused buffer of about this size, so they
# are still in cache when the GEMM reads them, and a large batch never materialises its whole patch matrix.
CONV_CHUNK_BYTES = 1 << 20

# Up to this many values per patch (kh*kw*channels), convolution runs directly (conv2d_direct) instead of
# as a GEMM over patches.
CONV_DIRECT_MAX_PATCH = 32

# Below this fraction of nonzero output gradients (typical behind ReLU and max pooling) a convolution's
# backward visits only the nonzero entries instead of running two GEMMs. Benchmark CNN's conv2, 128
# images: 2.4 ms against 7.4 at 5%, 6.0 against 7.4 at 20%, even at about 27%.
CONV_SPARSE_MAX_DENSITY = 0.25

# Inference runs sub-batches whose largest activation stays about this size, so one layer's output is
# still in cache when the next reads it (CNN predict +13%).
INFERENCE_ACTIVATION_BYTES = 16 << 20
