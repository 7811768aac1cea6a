"""Every tunable of the kernels and their composition, in one place (measured on a 2-core x86-64 machine)."""

# Below this much work (multiply-adds or values touched) a call is not split across threads: handing a
# part to another thread costs 15-35 us.
SPLIT_MIN_WORK = 1 << 22

# Convolution patches are built a few images at a time into a reused buffer of about this size, so they
# are still in cache when the GEMM reads them, and a large batch never materialises its whole patch matrix.
CONV_CHUNK_BYTES = 4 << 20

# Up to this many values per patch (kh*kw*channels), convolution runs directly (conv2d_direct) instead of
# as a GEMM over patches.
CONV_DIRECT_MAX_PATCH = 32

# A convolution whose kernel rows hold fewer values than this (kw * channels: a first layer's) builds its
# patches as columns for the GEMM (im2col_transposed): 1.0 against 6.8 ms per 1,024 28x28x1 images for
# 3x3 windows, 4.5 against 11.3 with 3 channels.
CONV_TRANSPOSED_PATCHES_BELOW = 16

# Below this fraction of nonzero output gradients (typical behind ReLU and max pooling) a convolution's
# backward visits only the nonzero entries instead of running two GEMMs. Benchmark CNN's conv2, 128
# images: 2.4 ms against 7.4 at 5%, 6.0 against 7.4 at 20%, even at about 27%.
CONV_SPARSE_MAX_DENSITY = 0.25

# Inference runs a 3x3 stride-1 convolution with at least this many input channels as Winograd F(4x4, 3x3)
# (fewer channels: the transforms cost more than the multiplications they save), a few images at a time whose
# transformed tiles take about WINOGRAD_CHUNK_BYTES. Benchmark CNN's conv2 (13x13x32 -> 11x11x64), 1,024 images,
# 2 threads: 14.7 us an image as patches + GEMM, about 6.5 as Winograd.
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_CHUNK_BYTES = 4 << 20

# Inference runs sub-batches whose largest activation stays about this size, so one layer's output is
# still in cache when the next reads it (CNN predict +13%).
INFERENCE_ACTIVATION_BYTES = 16 << 20

# ---------------------------------------------------------------- cuda backend
# Threads per block of the elementwise and row kernels.
CUDA_THREADS = 256

# A column sum over many rows is split into parts of this many rows (at most CUDA_REDUCE_PARTS of them), summed
# in order after; up to this many rows it is one pass.
CUDA_REDUCE_PART_ROWS = 8192
CUDA_REDUCE_PARTS = 64

# A dataset split is copied to the GPU once (batches are then gathered there) when it takes at most this
# fraction of the device's free memory; larger ones go up batch by batch.
CUDA_RESIDENT_FRACTION = 0.25

# The numba.cuda GEMM's tiles: a block of 16x16 threads computes a 64x64 tile of the output, 4x4 values per
# thread, stepping through the inner dimension 16 at a time through shared memory.
CUDA_GEMM_TILE = 64
CUDA_GEMM_STEP = 16
# A product with fewer output tiles than this (a weight gradient: a small output summed over a whole batch) is
# split along its inner dimension into parts of at least CUDA_GEMM_SPLIT_MIN_K, summed in order after: one
# block per tile would leave most of the GPU idle.
CUDA_GEMM_SPLIT_BELOW_TILES = 128
CUDA_GEMM_SPLIT_MIN_K = 256
