"""Every Numba kernel against its numpy twin: odd shapes, batch 1, non-contiguous inputs, NaN/Inf."""

import inspect
import re

import numpy as np
import pytest
from backends import backend_names, ops_for_test

from kerascli.ops import conv_geometry, get_ops
from kerascli.ops.backend import kernel_modules, public_functions
from kerascli.ops.contract import (
    ACTIVATION_TABLE,
    ELEMENT_LOSSES,
    EXPONENTIAL,
    HARD_SIGMOID,
    KERNEL_FAMILIES,
    LINEAR,
    MSLE,
    POISSON,
    RELU,
    SIGMOID,
    SOFTMAX,
    TANH,
    Conv2DGeometry,
    activation,
)

ACTS = [a.code for a in ACTIVATION_TABLE]
# what the convolution kernels apply inside their loops (own-step activations run after them)
KERNEL_ACTS = [a.code for a in ACTIVATION_TABLE if not a.own_step]
reference = get_ops("reference")
OTHERS = backend_names(include_reference=False)  # every other backend is compared with it


def pytest_generate_tests(metafunc):
    if "other" in metafunc.fixturenames:
        metafunc.parametrize("other", [ops_for_test(name) for name in OTHERS], ids=OTHERS)


def kernel_names(package):
    return {family: sorted(public_functions(module)) for family, module in kernel_modules(package).items()}


def test_kernels_are_mirrored_family_for_family(other):
    """Each backend's kernel files have the reference's names, function for function."""
    assert kernel_names(other.kernel_package) == kernel_names("kerascli.ops.reference")
    assert sorted(kernel_names("kerascli.ops.reference")) == sorted(KERNEL_FAMILIES)


def mats(rng, rows, cols, dtype, noncontig=False):
    a = rng.normal(size=(rows, cols * 2 if noncontig else cols)).astype(dtype)
    return a[:, ::2] if noncontig else a


def close(a, b, dtype):
    tol = 1e-5 if dtype == np.float32 else 1e-12
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            close(x, y, dtype)
        return
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def activate(z, act):
    return reference.bias_activation_forward(z, np.zeros(0, z.dtype), act, np.empty_like(z))


def run(other, name, *args):
    copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    return getattr(reference, name)(*args), getattr(other, name)(*copies)


DTYPES = [np.float32, np.float64]
SHAPES = [(1, 1), (1, 7), (5, 3), (33, 10)]
COVERED: dict[str, list] = {}  # kernel name -> the parity tests that exercise it


def parity(*names):
    """Declare which kernels a test compares with their twins (recorded at import, whatever runs)."""

    def mark(test):
        for name in names:
            COVERED.setdefault(name, []).append(test)
        return test

    return mark


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("noncontig", [False, True])
@parity("bias_activation_forward", "bias_activation_inplace", "bias_activation_backward")
def test_bias_activation(rng, dtype, shape, act, noncontig, other):
    z = mats(rng, *shape, dtype, noncontig)
    for bias in (rng.normal(size=shape[1]).astype(dtype), np.zeros(0, dtype)):
        close(*run(other, "bias_activation_forward", z, bias, act, np.empty_like(z)), dtype)
        expected = reference.bias_activation_forward(z, bias, act, np.empty_like(z))
        inplace = z.copy()
        other.bias_activation_forward(inplace, bias, act, inplace)
        close(inplace, expected, dtype)
        for module in (reference, other):
            inplace = z.copy()
            assert module.bias_activation_inplace(inplace, bias, act) is inplace
            close(inplace, expected, dtype)
    saved = z if activation(act).needs_input else activate(z, act)  # what a layer keeps for the gradient
    dy = mats(rng, *shape, dtype, noncontig)
    close(*run(other, "bias_activation_backward", dy, saved, act, np.empty(shape, dtype)), dtype)


def test_activation_nan_and_inf_propagate(rng, other):
    z = np.array([[np.nan, 1.0, -np.inf, np.inf]], dtype=np.float32)
    for act in ACTS[:4]:
        ref, fast = run(other, "bias_activation_forward", z, np.zeros(0, np.float32), act, np.empty_like(z))
        np.testing.assert_array_equal(np.isnan(ref), np.isnan(fast))
        np.testing.assert_allclose(ref[~np.isnan(ref)], fast[~np.isnan(fast)])


def test_softmax_is_stable_for_huge_logits(other):
    z = np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32)
    ref, fast = run(other, "bias_activation_forward", z, np.zeros(0, np.float32), SOFTMAX, np.empty_like(z))
    np.testing.assert_allclose(fast, [[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(ref, fast)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@parity(
    "softmax_cross_entropy", "softmax_cross_entropy_grad", "sparse_softmax_cross_entropy",
    "sparse_softmax_cross_entropy_grad", "sigmoid_binary_cross_entropy", "sigmoid_binary_cross_entropy_grad",
    "categorical_cross_entropy", "categorical_cross_entropy_grad", "binary_cross_entropy",
    "binary_cross_entropy_grad", "mean_squared_error", "mean_squared_error_grad", "row_argmax",
)
def test_losses(rng, dtype, shape, other):
    rows, cols = shape
    z = mats(rng, rows, cols, dtype) * 5
    labels = rng.integers(0, cols, size=rows)
    onehot = np.eye(cols, dtype=dtype)[labels]
    t01 = rng.random(size=shape).astype(dtype)
    p = activate(z, SOFTMAX)
    s = activate(z, SIGMOID)
    close(*run(other, "softmax_cross_entropy", z, onehot), dtype)
    close(*run(other, "softmax_cross_entropy_grad", p, onehot, 0.25), dtype)
    close(*run(other, "sparse_softmax_cross_entropy", z, labels), dtype)
    close(*run(other, "sparse_softmax_cross_entropy_grad", p, labels, 0.25), dtype)
    close(*run(other, "sigmoid_binary_cross_entropy", z, t01), dtype)
    close(*run(other, "sigmoid_binary_cross_entropy_grad", s, t01, 0.25), dtype)
    close(*run(other, "categorical_cross_entropy", p, onehot, 1e-7), dtype)
    close(*run(other, "categorical_cross_entropy_grad", p, onehot, 1e-7, 0.25), dtype)
    close(*run(other, "binary_cross_entropy", s, t01, 1e-7), dtype)
    close(*run(other, "binary_cross_entropy_grad", s, t01, 1e-7, 0.25), dtype)
    close(*run(other, "mean_squared_error", z, t01), dtype)
    close(*run(other, "mean_squared_error_grad", z, t01, 0.25), dtype)
    np.testing.assert_array_equal(*run(other, "row_argmax", z))


CONV_CASES = [
    # n, h, w, c, kh, kw, sh, sw, padding
    (1, 5, 5, 1, 3, 3, 1, 1, "valid"),
    (2, 7, 6, 3, 3, 2, 2, 1, "same"),
    (3, 8, 8, 2, 1, 1, 1, 1, "valid"),
    (2, 5, 7, 4, 5, 3, 2, 3, "same"),
    (1, 4, 4, 2, 2, 2, 2, 2, "valid"),
    # wide enough for the direct kernels' 4-pixel blocks, next to padded edges
    (1, 6, 12, 1, 3, 3, 1, 1, "same"),
    (2, 9, 13, 2, 3, 3, 2, 2, "same"),
]


def run_out(other, name, *args, outs):
    """Run both twins with freshly garbage-filled output buffers of the given shapes/dtypes."""
    results = []
    for module in (reference, other):
        buffers = [np.full(shape, 123, dtype) for shape, dtype in outs]
        results.append(getattr(module, name)(*args, *buffers))
    return results


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
@parity("im2col", "im2col_transposed", "col2im")
def test_im2col_col2im(rng, dtype, case, other):
    n, h, w, c, kh, kw, sh, sw, padding = case
    oh, pt = conv_geometry(h, kh, sh, padding)
    ow, pl = conv_geometry(w, kw, sw, padding)
    x = rng.normal(size=(n, h, w, c)).astype(dtype)
    cols_ref, cols = run_out(other, "im2col", x, kh, kw, sh, sw, pt, pl, oh, ow,
                             outs=[((n * oh * ow, kh * kw * c), dtype)])
    close(cols_ref, cols, dtype)
    t_ref, t_other = run_out(other, "im2col_transposed", x, kh, kw, sh, sw, pt, pl, oh, ow,
                             outs=[((kh * kw * c, n * oh * ow), dtype)])
    close(t_ref, t_other, dtype)
    np.testing.assert_array_equal(t_ref, cols_ref.T)  # the same patches, as columns
    cols = rng.normal(size=(n * oh * ow, kh * kw * c)).astype(dtype)
    close(*run_out(other, "col2im", cols, kh, kw, sh, sw, pt, pl, oh, ow, outs=[((n, h, w, c), dtype)]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("act", KERNEL_ACTS)
@parity("conv2d_direct", "conv2d_direct_backward")
def test_direct_convolution(rng, dtype, case, act, other):
    n, h, w, c, kh, kw, sh, sw, padding = case
    oh, pt = conv_geometry(h, kh, sh, padding)
    ow, pl = conv_geometry(w, kw, sw, padding)
    x = rng.normal(size=(n, h, w, c)).astype(dtype)
    kernel = rng.normal(size=(kh, kw, c, 5)).astype(dtype)
    if act == EXPONENTIAL:  # exp of sums of many N(0, 1) products reaches 1e4 and beyond: float32 sums of such
        kernel *= dtype(0.2)  # terms differ with the order of addition by more than the tolerance
    for bias in (rng.normal(size=5).astype(dtype), np.zeros(0, dtype)):
        close(*run_out(other, "conv2d_direct", x, kernel, bias, act, sh, sw, pt, pl, oh, ow,
                       outs=[((n, oh, ow, 5), dtype)]), dtype)
    y = reference.conv2d_direct(x, kernel, np.zeros(0, dtype), act, sh, sw, pt, pl, oh, ow,
                                np.empty((n, oh, ow, 5), dtype))
    dy = rng.normal(size=(n, oh, ow, 5)).astype(dtype)
    close(*run(other, "conv2d_direct_backward", x, dy, y, act, kh, kw, sh, sw, pt, pl), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", KERNEL_ACTS)
@pytest.mark.parametrize("filters", [3, 64, 70])  # the nonzero search works 64 filters at a time
@parity("activation_backward_nonzero")
def test_activation_backward_nonzero(rng, dtype, act, filters, other):
    z = mats(rng, 37, filters, dtype)
    y = activate(z, act)
    dy = (mats(rng, 37, filters, dtype) * (rng.random((37, filters)) < 0.3)).astype(dtype)
    lists = []
    for module in (reference, other):
        pixel, channel, value = np.full(dy.size, -1, np.int32), np.full(dy.size, -1, np.int32), np.zeros(dy.size, dtype)
        count, db = module.activation_backward_nonzero(dy, y, act, pixel, channel, value)
        lists.append((pixel[:count], channel[:count], value[:count], db))
    (p_ref, c_ref, v_ref, db_ref), (p_fast, c_fast, v_fast, db_fast) = lists
    np.testing.assert_array_equal(p_ref, p_fast)
    np.testing.assert_array_equal(c_ref, c_fast)
    short = [np.zeros(len(p_ref) - 1, np.int32), np.zeros(len(p_ref) - 1, np.int32), np.zeros(len(p_ref) - 1, dtype)]
    for module in (reference, other):  # one slot too few: reported, nothing written past the end
        assert module.activation_backward_nonzero(dy, y, act, *short)[0] == -1
    close(v_ref, v_fast, dtype)
    close(db_ref, db_fast, dtype)


def conv_pool_cases():
    """Convolution cases with each pooling window that fits their output at least once."""
    for case in CONV_CASES:
        n, h, w, c, kh, kw, sh, sw, padding = case
        for pool in [(2, 2), (2, 3), (1, 1)]:
            if conv_geometry(h, kh, sh, padding)[0] >= pool[0] and conv_geometry(w, kw, sw, padding)[0] >= pool[1]:
                yield case, pool


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case,pool", list(conv_pool_cases()))
@pytest.mark.parametrize("act", ACTS[:4])  # softmax does not commute with the max: never fused
@parity("conv2d_direct_maxpool_backward")
def test_direct_convolution_with_max_pooling(rng, dtype, case, pool, act, other):
    n, h, w, c, kh, kw, sh, sw, padding = case
    oh, pt = conv_geometry(h, kh, sh, padding)
    ow, pl = conv_geometry(w, kw, sw, padding)
    ph, pw = pool
    x = rng.normal(size=(n, h, w, c)).astype(dtype)
    kernel = rng.normal(size=(kh, kw, c, 5)).astype(dtype)
    bias = rng.normal(size=5).astype(dtype)
    out_shape = (n, oh // ph, ow // pw, 5)
    # the pooled output and its windows' winners, by the definition: convolution, max pooling, activation
    z = reference.conv2d_direct(x, kernel, bias, LINEAR, sh, sw, pt, pl, oh // ph * ph, ow // pw * pw,
                                np.empty((n, oh // ph * ph, ow // pw * pw, 5), dtype))
    y_ref, a_ref = reference.max_pool_forward(z, ph, pw, ph, pw, 0, 0, *out_shape[1:3], np.empty(out_shape, dtype),
                                              np.empty(out_shape, np.int32))
    y_ref = activate(y_ref.reshape(-1, 5), act).reshape(out_shape)
    if other.name != "cuda":  # the fused forward (a host algorithm: patches, GEMM, pooling, a few images at a time)
        g = Conv2DGeometry(kh, kw, sh, sw, pt, pl, oh, ow, c)
        y, a = np.full(out_shape, 123, dtype), np.full(out_shape, 7, np.int32)
        other.conv2d_maxpool_forward(x, kernel, bias, act, g, ph, pw, y, a, workspaces(dtype))
        close(y_ref, y, dtype)
        np.testing.assert_array_equal(a_ref, a)
    dy = rng.normal(size=out_shape).astype(dtype)
    close(*run(other, "conv2d_direct_maxpool_backward", x, dy, y_ref, a_ref, act, kh, kw, sh, sw, pt, pl, ph, pw),
          dtype)


def workspaces(default_dtype):
    """A layer's ``workspace(name, shape, dtype=None)`` for algorithms called outside a layer."""
    return lambda name, shape, dtype=None: np.empty(shape, dtype or default_dtype)


def nonzero_list(dz):
    d2 = dz.reshape(-1, dz.shape[-1])
    pixel, channel, value = np.zeros(dz.size, np.int32), np.zeros(dz.size, np.int32), np.zeros(dz.size, dz.dtype)
    count, _ = reference.activation_backward_nonzero(d2, d2, LINEAR, pixel, channel, value)
    return pixel, channel, value, count


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("density", [0.0, 0.1, 1.0])
@parity("conv2d_sparse_backward")
def test_sparse_convolution_backward(rng, dtype, case, density, other):
    n, h, w, c, kh, kw, sh, sw, padding = case
    oh, pt = conv_geometry(h, kh, sh, padding)
    ow, pl = conv_geometry(w, kw, sw, padding)
    x = rng.normal(size=(n, h, w, c)).astype(dtype)
    kernel_t = rng.normal(size=(5, kh * kw * c)).astype(dtype)
    dz = (rng.normal(size=(n, oh, ow, 5)) * (rng.random((n, oh, ow, 5)) < density)).astype(dtype)
    pixel, channel, value, count = nonzero_list(dz)
    start = rng.normal(size=kernel_t.shape).astype(dtype)  # the kernel gradient is added to what is there
    for dx_shape in (x.shape, (0, 0, 0, 0)):
        (g_ref, dx_ref), (g_fast, dx_fast) = [
            module.conv2d_sparse_backward(x, pixel, channel, value, count, oh, ow, kernel_t, kh, kw, sh, sw, pt, pl,
                                          start.copy(), np.full(dx_shape, 123, dtype))
            for module in (reference, other)
        ]
        close(g_ref, g_fast, dtype)
        close(dx_ref, dx_fast, dtype)


def test_sparse_backward_propagates_nan(other):
    x = np.ones((1, 4, 4, 1), np.float32)
    dz = np.zeros((1, 2, 2, 3), np.float32)
    dz[0, 1, 1, 2] = np.nan
    pixel, channel, value, count = nonzero_list(dz)
    g, dx = other.conv2d_sparse_backward(x, pixel, channel, value, count, 2, 2, np.ones((3, 9), np.float32),
                                         3, 3, 1, 1, 0, 0, np.zeros((3, 9), np.float32), np.empty_like(x))
    assert np.isnan(g[2]).all() and not np.isnan(g[:2]).any()
    assert np.isnan(dx[0, 1:4, 1:4]).all() and not np.isnan(dx[0, 0]).any()


# 2x2 windows have a path of their own on the cpu: tiling, and reaching into padding below and right
POOL_CASES = CONV_CASES + [(2, 5, 7, 20, 2, 2, 2, 2, "valid"), (1, 5, 5, 3, 2, 2, 2, 2, "same")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
@parity("max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward")
def test_pooling(rng, dtype, case, other):
    n, h, w, c, ph, pw, sh, sw, padding = case
    oh, pt = conv_geometry(h, ph, sh, padding)
    ow, pl = conv_geometry(w, pw, sw, padding)
    x = rng.normal(size=(n, h, w, c)).astype(dtype)
    x[0, 0, 0, 0] = np.nan  # NaN wins its window in both
    out_shape = (n, oh, ow, c)
    (y_ref, a_ref), (y_fast, a_fast) = run_out(
        other, "max_pool_forward", x, ph, pw, sh, sw, pt, pl, oh, ow, outs=[(out_shape, dtype), (out_shape, np.int32)]
    )
    np.testing.assert_array_equal(np.isnan(y_ref), np.isnan(y_fast))
    close(np.nan_to_num(y_ref), np.nan_to_num(y_fast), dtype)
    np.testing.assert_array_equal(a_ref, a_fast)
    assert np.isnan(y_fast[0, 0, 0, 0])
    dy = rng.normal(size=out_shape).astype(dtype)
    close(*run_out(other, "max_pool_backward", dy, a_ref, ph, pw, sh, sw, pt, pl, outs=[(x.shape, dtype)]), dtype)
    # an empty arg: the same maxima, no places kept (inference)
    no_places = np.empty((0, 0, 0, 0), np.int32)
    for module in (reference, other):
        y = np.full(out_shape, 123, dtype)
        assert module.max_pool_forward(x, ph, pw, sh, sw, pt, pl, oh, ow, y, no_places)[1] is no_places
        np.testing.assert_array_equal(np.isnan(y), np.isnan(y_ref))
        close(np.nan_to_num(y), np.nan_to_num(y_ref), dtype)
    x = np.nan_to_num(x)
    close(*run_out(other, "avg_pool_forward", x, ph, pw, sh, sw, pt, pl, oh, ow, outs=[(out_shape, dtype)]), dtype)
    close(*run_out(other, "avg_pool_backward", dy, ph, pw, sh, sw, pt, pl, outs=[(x.shape, dtype)]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [(1, 4, 4, "valid"), (2, 9, 12, "valid"), (3, 7, 6, "same"), (1, 28, 28, "same")])
@pytest.mark.parametrize("act", [a.code for a in ACTIVATION_TABLE if a.increasing and not a.own_step])
@parity("conv2d_3x3_maxpool_2x2")
def test_conv2d_3x3_maxpool_2x2(rng, dtype, case, act, other):
    n, h, w, padding = case
    if other.name == "cuda" and h == 28:
        # 28 x 28 is the benchmark CNN's image; the cuda kernels (a direct convolution, then pooling) cross
        # their thread blocks at 16 x 16 already (1,280 and 320 threads, over 256 a block), in a third of the
        # time on the CUDA simulator (12 s an activation at 28 x 28)
        h = w = 16
    out_h, top = conv_geometry(h, 3, 1, padding)
    out_w, left = conv_geometry(w, 3, 1, padding)
    x = rng.normal(size=(n, h, w, 1)).astype(dtype)
    kernel = rng.normal(size=(3, 3, 1, 5)).astype(dtype)
    for bias in (rng.normal(size=5).astype(dtype), np.zeros(0, dtype)):
        close(*run_out(other, "conv2d_3x3_maxpool_2x2", x, kernel, bias, act, top, left,
                       outs=[((n, out_h // 2, out_w // 2, 5), dtype)]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fill", [0, 1, 2, 3])
@parity("affine_resample", "channel_shift_brightness")
def test_augment_kernels(rng, dtype, fill, other):
    x = rng.normal(size=(3, 5, 6, 2)).astype(dtype)
    turn = rng.uniform(-0.6, 0.6, 3)
    matrices = np.zeros((3, 2, 3))
    matrices[:, 0, 0], matrices[:, 0, 1], matrices[:, 1, 0], matrices[:, 1, 1] = (
        np.cos(turn) * 1.3, -np.sin(turn), np.sin(turn), np.cos(turn) * 0.8)
    matrices[:, :, 2] = rng.uniform(-4, 4, (3, 2))  # reaching well outside the image
    matrices[0] = [[1, 0, 0], [0, 1, 0]]  # identity
    close(*run_out(other, "affine_resample", x, matrices, fill, 0.5, outs=[(x.shape, dtype)]), dtype)
    shift, bright = np.array([0.0, 0.7, -0.3], dtype), np.array([1.0, 0.5, 1.5], dtype)
    close(*run(other, "channel_shift_brightness", x, shift, bright), dtype)


WINOGRAD_CASES = [
    # n, h, w, c, pad_top, pad_left, tiles_h, tiles_w (the padding after: what whole tiles need)
    (1, 6, 6, 1, 0, 0, 1, 1),
    (2, 13, 13, 3, 0, 0, 3, 3),
    (3, 7, 10, 5, 1, 1, 2, 3),
    (1, 9, 5, 17, 1, 1, 3, 2),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", WINOGRAD_CASES)
@parity("winograd_input_4x4", "winograd_output_4x4")
def test_winograd_transforms(rng, dtype, case, other):
    n, h, w, c, top, left, th, tw = case
    x = rng.normal(size=(n, h, w, c)).astype(dtype)
    width = 4 * tw + 2
    close(*run_out(other, "winograd_input_4x4", x, top, left, outs=[((4 * th + 2, width, n, c), dtype),
                                                                    ((6, width, n, c), dtype),
                                                                    ((36, th, tw, n, c), dtype)]), dtype)
    m = rng.normal(size=(36, th, tw, n, c + 2)).astype(dtype)
    close(*run_out(other, "winograd_output_4x4", m, outs=[((4, 6, n, c + 2), dtype),
                                                         ((4 * th, 4 * tw, n, c + 2), dtype)]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 5, 3), (3, 40, 70)])
@parity("global_max_pool")
def test_global_max_pool(rng, dtype, shape, other):
    x = rng.normal(size=shape).astype(dtype)
    x[-1, :, -1] = 1.0  # a tie: the first place wins
    x[0, -1, 0] = np.nan  # the first NaN wins
    (y_ref, a_ref), (y_fast, a_fast) = run_out(other, "global_max_pool", x,
                                               outs=[((shape[0], shape[2]), dtype), ((shape[0], shape[2]), np.int64)])
    np.testing.assert_array_equal(a_ref, a_fast)
    np.testing.assert_array_equal(y_ref, y_fast)
    assert a_fast[-1, -1] == 0 and a_fast[0, 0] == shape[1] - 1 and np.isnan(y_fast[0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 3), (7, 4), (64, 16)])
@parity("batch_norm_forward_train", "batch_norm_backward", "batch_norm_inference", "moving_average_update")
def test_batch_norm(rng, dtype, shape, other):
    x = (mats(rng, *shape, dtype) * 3 + 1).astype(dtype)
    gamma = rng.normal(size=shape[1]).astype(dtype)
    beta = rng.normal(size=shape[1]).astype(dtype)
    close(*run(other, "batch_norm_forward_train", x, gamma, beta, 1e-3), dtype)
    _, mean, var, xhat, inv_std = reference.batch_norm_forward_train(x, gamma, beta, 1e-3)
    dy = mats(rng, *shape, dtype)
    close(*run(other, "batch_norm_backward", dy, xhat, gamma, inv_std), dtype)
    close(*run(other, "batch_norm_inference", x, mean, var, gamma, beta, 1e-3), dtype)
    moving_ref, moving_fast = mean.copy(), mean.copy()
    reference.moving_average_update(moving_ref, var, 0.99)
    other.moving_average_update(moving_fast, var, 0.99)
    close(moving_ref, moving_fast, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@parity("layer_norm_forward", "layer_norm_backward")
def test_layer_norm(rng, dtype, shape, other):
    x = (mats(rng, *shape, dtype) * 3 + 1).astype(dtype)
    gamma = rng.normal(size=shape[1]).astype(dtype)
    beta = rng.normal(size=shape[1]).astype(dtype)
    close(*run(other, "layer_norm_forward", x, gamma, beta, 1e-3), dtype)
    _, xhat, inv_std = reference.layer_norm_forward(x, gamma, beta, 1e-3)
    close(*run(other, "layer_norm_backward", mats(rng, *shape, dtype), xhat, gamma, inv_std), dtype)


RNN_ACTS = [(TANH, SIGMOID), (RELU, TANH), (SIGMOID, HARD_SIGMOID)]  # Keras' defaults first (a fast path)


def both(other, name, inputs, outputs):
    """Run the reference and ``other`` twin of the in-place kernel ``name`` on copies of ``inputs`` and of
    ``outputs`` (filled with garbage unless given); returns each one's outputs."""
    results = []
    for module in (reference, other):
        outs = [o.copy() for o in outputs]
        getattr(module, name)(*[a.copy() if isinstance(a, np.ndarray) else a for a in inputs], *outs)
        results.append(outs)
    return results


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("acts", RNN_ACTS)
@pytest.mark.parametrize("batch,units", [(1, 1), (3, 5), (4, 33)])
@parity("lstm_step_forward", "lstm_step_backward", "simple_rnn_step_forward")
def test_lstm_and_simple_rnn_steps(rng, dtype, acts, batch, units, other):
    act, rec_act = acts
    m = lambda *shape: rng.normal(size=shape).astype(dtype)  # noqa: E731
    garbage = lambda *shape: np.full(shape, 123, dtype)  # noqa: E731
    xw, rec, c_prev = m(batch, 4 * units), m(batch, 4 * units), m(batch, units)
    ref, out = both(other, "lstm_step_forward", (xw, rec, c_prev, act, rec_act),
                    [garbage(batch, 4 * units), garbage(batch, units), garbage(batch, units)])
    close(tuple(out), tuple(ref), dtype)
    gates, c = ref[0], ref[1]
    ref, out = both(other, "lstm_step_backward", (m(batch, units), m(batch, units), gates, c_prev, c, act, rec_act),
                    [garbage(batch, 4 * units), garbage(batch, units)])
    close(tuple(out), tuple(ref), dtype)
    ref, out = both(other, "simple_rnn_step_forward", (xw[:, :units], rec[:, :units], act),
                    [garbage(batch, units)])
    close(tuple(out), tuple(ref), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("acts", RNN_ACTS)
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("batch,units", [(1, 1), (3, 5), (4, 33)])
@parity("gru_gates_forward", "gru_output_forward", "gru_output_backward", "gru_gates_backward")
def test_gru_steps(rng, dtype, acts, reset_after, batch, units, other):
    act, rec_act = acts
    m = lambda *shape: rng.normal(size=shape).astype(dtype)  # noqa: E731
    garbage = lambda *shape: np.full(shape, 123, dtype)  # noqa: E731
    xw, rec, h_prev = m(batch, 3 * units), m(batch, 3 * units), m(batch, units)
    gates = garbage(batch, 4 * units)
    ref, out = both(other, "gru_gates_forward", (xw, rec, h_prev, rec_act, reset_after), [gates, garbage(batch, units)])
    close(tuple(o[:, :2 * units] if i == 0 else o for i, o in enumerate(out)),
          tuple(o[:, :2 * units] if i == 0 else o for i, o in enumerate(ref)), dtype)
    gates = ref[0]
    ref, out = both(other, "gru_output_forward", (xw, m(batch, units), h_prev, act), [gates, garbage(batch, units)])
    close(tuple(out), tuple(ref), dtype)
    gates = ref[0]
    dxw = garbage(batch, 3 * units)
    ref, out = both(other, "gru_output_backward", (m(batch, units), gates, h_prev, act, rec_act),
                    [dxw, garbage(batch, units)])
    close((out[0][:, :units], out[0][:, 2 * units:], out[1]), (ref[0][:, :units], ref[0][:, 2 * units:], ref[1]),
          dtype)
    dxw, dh_prev = ref
    ref, out = both(other, "gru_gates_backward", (m(batch, units), gates, h_prev, rec_act, reset_after),
                    [dxw, garbage(batch, 3 * units), dh_prev])
    close(tuple(out), tuple(ref), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@parity("scatter_add_rows")
def test_scatter_add_rows(rng, dtype, other):
    for rows, n, width in ((1, 1, 1), (5, 20, 3), (40, 7, 33)):
        ids = rng.integers(0, rows, n)
        dy = rng.normal(size=(n, width)).astype(dtype)
        grads = [np.full((rows, width), 123, dtype) for _ in range(2)]
        for module, grad in zip((reference, other), grads):
            module.scatter_add_rows(grad, ids.copy(), dy.copy())
        close(grads[1], grads[0], dtype)


def step_mask(rng, batch, steps, dtype):
    """A 0/1 mask over (batch, steps) with a sample all padding and one all data."""
    keep = (rng.random((batch, steps)) > 0.4).astype(dtype)
    keep[0] = 0
    keep[-1] = 1
    return keep


@pytest.mark.parametrize("dtype", DTYPES)
@parity("mask_from_ids", "mask_from_values", "carry_masked", "hold_masked", "zero_masked_steps")
def test_step_masks(rng, dtype, other):
    for batch, steps, width in ((1, 1, 1), (4, 6, 3), (9, 5, 33)):
        values = rng.normal(size=(batch, steps, width)).astype(dtype)
        values[:, ::2] = 0.5  # every feature the mask value
        values[-1, -1, 0] = 0.5  # and one of several
        ref, fast = run_out(other, "mask_from_values", values, 0.5, outs=[((batch, steps), dtype)])
        np.testing.assert_array_equal(fast, ref)
        np.testing.assert_array_equal(ref, (values != 0.5).any(-1))
        ids = rng.integers(0, 3, (batch, steps))
        ref, fast = run_out(other, "mask_from_ids", ids, outs=[((batch, steps), dtype)])
        np.testing.assert_array_equal(fast, ref)
        np.testing.assert_array_equal(ref, ids != 0)
        keep = step_mask(rng, batch, steps, dtype)[:, 0].copy()
        new, old = rng.normal(size=(batch, width)).astype(dtype), rng.normal(size=(batch, width)).astype(dtype)
        outs = [new.copy(), new.copy()]
        for module, out in zip((reference, other), outs):
            module.carry_masked(out, old, keep)
        np.testing.assert_array_equal(outs[1], outs[0])
        np.testing.assert_array_equal(outs[0], np.where(keep[:, None] == 0, old, new))
        grads, throughs = [new.copy(), new.copy()], [np.full((batch, width), 7, dtype) for _ in range(2)]
        for module, grad, through in zip((reference, other), grads, throughs):
            module.hold_masked(grad, keep, through)
        np.testing.assert_array_equal(grads[1], grads[0])
        np.testing.assert_array_equal(throughs[1], throughs[0])
        np.testing.assert_array_equal(grads[0] + throughs[0], new)
        x = rng.normal(size=(batch, steps, width)).astype(dtype)
        keep = step_mask(rng, batch, steps, dtype)
        xs = [x.copy(), x.copy()]
        for module, value in zip((reference, other), xs):
            module.zero_masked_steps(value, keep)
        np.testing.assert_array_equal(xs[1], xs[0])
        np.testing.assert_array_equal(xs[0], x * keep[:, :, None])


@pytest.mark.parametrize("dtype", DTYPES)
@parity("masked_step_mean", "masked_step_mean_backward")
def test_masked_step_mean(rng, dtype, other):
    for batch, steps, width in ((1, 1, 1), (4, 6, 3), (9, 5, 33)):
        x = rng.normal(size=(batch, steps, width)).astype(dtype)
        keep = step_mask(rng, batch, steps, dtype)
        ref, fast = run_out(other, "masked_step_mean", x, keep, outs=[((batch, width), dtype)])
        close(ref, fast, dtype)
        count = np.maximum(keep.sum(1), 1)[:, None]
        close(ref, (x * keep[:, :, None]).sum(1) / count, dtype)
        assert batch == 1 or not ref[0].any()  # a sample with every step padding gives 0
        dy = rng.normal(size=(batch, width)).astype(dtype)
        ref, fast = run_out(other, "masked_step_mean_backward", dy, keep, outs=[((batch, steps, width), dtype)])
        close(ref, fast, dtype)
        close(ref, dy[:, None, :] * (keep / count)[:, :, None], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@parity("dropout")
def test_dropout(rng, dtype, other):
    x = rng.normal(size=(4, 3, 5)).astype(dtype)
    u = rng.random(size=x.shape).astype(dtype)
    ref, fast = run(other, "dropout", x, u, 0.3)
    close(ref, fast, dtype)
    assert fast.shape == x.shape


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
@parity("sgd_update")
def test_sgd_update(rng, dtype, momentum, nesterov, other):
    p, g, v = (rng.normal(size=37).astype(dtype) for _ in range(3))
    pr, vr, pf, vf = p.copy(), v.copy(), p.copy(), v.copy()
    f = np.dtype(dtype).type
    for _ in range(3):
        reference.sgd_update(pr, g, vr, f(0.1), f(momentum), nesterov)
        other.sgd_update(pf, g, vf, f(0.1), f(momentum), nesterov)
    close(pr, pf, dtype)
    close(vr, vf, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@parity("adam_update")
def test_adam_update(rng, dtype, other):
    p, g = (rng.normal(size=41).astype(dtype) for _ in range(2))
    state = [p.copy(), np.zeros_like(p), np.zeros_like(p)]
    fast = [p.copy(), np.zeros_like(p), np.zeros_like(p)]
    f = np.dtype(dtype).type
    for alpha in (0.03, 0.02, 0.01):
        reference.adam_update(state[0], g, state[1], state[2], f(alpha), f(0.1), f(0.001), f(1e-7))
        other.adam_update(fast[0], g, fast[1], fast[2], f(alpha), f(0.1), f(0.001), f(1e-7))
    for a, b in zip(state, fast):
        close(a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", [loss.code for loss in ELEMENT_LOSSES])
@parity("element_loss", "element_loss_grad")
def test_element_losses(rng, dtype, code, other):
    f = np.dtype(dtype).type
    p = (rng.random(size=(9, 5)) * 3 + 0.05).astype(dtype)  # poisson and msle take logarithms
    t = (rng.random(size=(9, 5)) * 2).astype(dtype)
    t[0, :2] = 0
    p[1] = -p[1] if code not in (MSLE, POISSON) else p[1]
    close(*run(other, "element_loss", p, t, code, f(1.5)), dtype)
    ref, fast = run(other, "element_loss_grad", p, t, code, f(1.5), f(0.25))
    np.testing.assert_allclose(fast, ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


# update kernel -> (number of slot arrays, scalars, start of the slots): three steps on both backends
UPDATES = {
    "decay_weights": (0, [(0.01,)], 0.0),
    "rmsprop_update": (3, [(0.01, 0.9, 0.0, 1e-7, False), (0.01, 0.8, 0.9, 1e-7, True)], 0.0),
    "adagrad_update": (1, [(0.1, 1e-7)], 0.1),
    "adamax_update": (2, [(0.02, 0.1, 0.999, 1e-7)], 0.0),
    "nadam_update": (2, [(0.01, 0.1, 0.001, 1e-7, 0.9, 0.2, 3.0)], 0.0),
    "lion_update": (1, [(0.01, 0.9, 0.99)], 0.0),
    "adadelta_update": (2, [(1.0, 0.95, 1e-7), (0.5, 0.5, 1e-3)], 0.0),
    "ftrl_update": (2, [(0.1, -0.5, 0.0, 0.0, 0.0), (0.1, -0.3, 0.05, 0.2, 0.02), (0.2, 0.0, 0.3, 0.0, 0.0)], 0.1),
    "moving_average_weights": (0, [(0.99,), (0.0,)], 0.0),
    "adam_amsgrad_update": (3, [(0.01, 0.1, 0.001, 1e-7)], 0.0),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,slots,scalars", [(k, n, s) for k, (n, rows, _) in UPDATES.items() for s in rows])
@parity(*UPDATES)
def test_optimizer_updates(rng, dtype, kernel, slots, scalars, other):
    assert kernel in ("decay_weights", "rmsprop_update", "adagrad_update", "adamax_update", "nadam_update",
                      "lion_update", "adadelta_update", "ftrl_update", "moving_average_weights",
                      "adam_amsgrad_update")
    f = np.dtype(dtype).type
    p, g = (rng.normal(size=43).astype(dtype) for _ in range(2))
    g[::7] = 0  # a zero gradient (Lion's sign, Adamax's max)
    start = UPDATES[kernel][2]
    ref = [p.copy()] + [np.full_like(p, start) for _ in range(slots)]
    fast = [a.copy() for a in ref]
    args = tuple(f(s) if isinstance(s, float) else s for s in scalars)
    for _ in range(3):
        getattr(reference, kernel)(ref[0], *([g] if kernel != "decay_weights" else []), *ref[1:], *args)
        getattr(other, kernel)(fast[0], *([g] if kernel != "decay_weights" else []), *fast[1:], *args)
    for a, b in zip(ref, fast):
        close(a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (5, 9), (2, 3, 4, 6)])
@parity("adafactor_update")
def test_adafactor_update(rng, dtype, shape, other):
    """One weight's factored (rank >= 2: row and column statistics) or full second moments, three steps."""
    f = np.dtype(dtype).type
    lead, rows, cols = (int(np.prod(shape[:-2])), shape[-2], shape[-1]) if len(shape) >= 2 else (1, 0, 0)
    size = int(np.prod(shape))
    p = rng.normal(size=size).astype(dtype)
    ref, fast = [p.copy()] + [np.zeros(size, dtype) for _ in range(3)], None
    fast = [a.copy() for a in ref]
    for step in range(1, 4):
        g = rng.normal(size=size).astype(dtype)
        scalars = (f(min(0.01, 1 / np.sqrt(step))), f(1 - step ** -0.8), f(1e-30), f(1e-3), f(1.0))
        reference.adafactor_update(ref[0], g, *ref[1:], lead, rows, cols, *scalars)
        other.adafactor_update(fast[0], g.copy(), *fast[1:], lead, rows, cols, *scalars)
    for a, b in zip(ref, fast):
        close(a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@parity("accumulate_gradient", "average_accumulated_gradient")
def test_gradient_accumulation(rng, dtype, other):
    grads = [rng.normal(size=29).astype(dtype) for _ in range(3)]
    results = []
    for ops in (reference, other):
        accumulator = np.zeros(29, dtype)
        for g in grads[:2]:
            ops.accumulate_gradient(accumulator, g)
        last = grads[2].copy()
        ops.average_accumulated_gradient(last, accumulator, np.dtype(dtype).type(3))
        results.append((last, accumulator))
    close(results[0][0], results[1][0], dtype)
    close(results[0][0], sum(grads) / 3, dtype)
    assert not results[1][1].any()  # the accumulator starts over


@pytest.mark.parametrize("dtype", DTYPES)
@parity("add_scaled_gradient")
def test_weighted_sum_of_gradients(rng, dtype, other):
    """Data-parallel ranks' gradients summed with their shares of the batch, in rank order."""
    grads = [rng.normal(size=37).astype(dtype) for _ in range(3)]
    shares = [np.dtype(dtype).type(s) for s in (0.25, 0.5, 0.25)]
    results = []
    for ops in (reference, other):
        total = np.zeros(37, dtype)
        for g, share in zip(grads, shares):
            ops.add_scaled_gradient(total, g, share)
        results.append(total)
    close(results[0], results[1], dtype)
    close(results[1], sum(g * s for g, s in zip(grads, shares)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@parity("clip_values", "clip_norms")
def test_gradient_clipping(rng, dtype, other):
    g = (rng.normal(size=50) * 3).astype(dtype)
    g[40:] = 0  # a weight whose gradient is zero: left alone
    bounds = np.array([0, 7, 8, 30, 40, 50], np.int64)  # weights of 7, 1, 22, 10 and 10 values
    for limit in (0.5, 100.0):
        ref, fast = g.copy(), g.copy()
        reference.clip_norms(ref, bounds, np.dtype(dtype).type(limit))
        other.clip_norms(fast, bounds, np.dtype(dtype).type(limit))
        close(ref, fast, dtype)
        ref, fast = g.copy(), g.copy()
        reference.clip_values(ref, np.dtype(dtype).type(limit))
        other.clip_values(fast, np.dtype(dtype).type(limit))
        close(ref, fast, dtype)
    clipped = g.copy()
    reference.clip_norms(clipped, bounds, np.dtype(dtype).type(0.5))
    norms = [np.linalg.norm(clipped[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    np.testing.assert_allclose(norms[:4], 0.5, rtol=1e-5)
    assert norms[4] == 0


def test_direct_convolution_sums_kernel_gradients_across_images_in_float64():
    """The first convolution's kernel gradient sums every pixel of the batch: in float32 alone, 338,000
    terms of 0.01 drift visibly (what made a float32 digits run end 1.6e-3 from the float64 one); per image
    in float32 then across images in float64 they stay within float32 rounding."""
    from kerascli.ops.contract import LINEAR
    from kerascli.ops.cpu import conv

    n, h, w, c, filters = 2000, 15, 15, 1, 2
    x = np.full((n, h, w, c), 0.1, np.float32)
    dy = np.full((n, h - 2, w - 2, filters), 0.1, np.float32)
    grad, _ = conv.conv2d_direct_backward(x, dy, dy, LINEAR, 3, 3, 1, 1, 0, 0)
    exact = n * (h - 2) * (w - 2) * np.float64(np.float32(0.1)) ** 2
    np.testing.assert_allclose(grad, exact, rtol=1e-6)


def test_every_kernel_has_a_parity_test():
    """A kernel added without a parity case fails here, whichever tests ran before."""
    kernels = {name for names in kernel_names("kerascli.ops.reference").values() for name in names}
    missing = kernels - set(COVERED)
    assert not missing, f"kernels without a parity test: {sorted(missing)}"
    for name, tests in COVERED.items():
        assert name in kernels, f"{name} is not a kernel"
        # the declaring test really calls it (by name through run()/run_out(), or directly)
        assert any(re.search(rf"['\".]{name}\b", inspect.getsource(t)) for t in tests), name


@pytest.mark.parametrize("backend", backend_names())
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_transposes_writes_out_and_accumulates(rng, backend, trans_a, trans_b):
    ops = ops_for_test(backend)
    a = rng.normal(size=(4, 3) if trans_a else (3, 4))
    b = rng.normal(size=(5, 4) if trans_b else (4, 5))
    expected = (a.T if trans_a else a) @ (b.T if trans_b else b)
    out = np.full((3, 5), 7.0)
    assert ops.gemm(a, b, out=out, trans_a=trans_a, trans_b=trans_b) is out
    np.testing.assert_allclose(out, expected)
    ops.gemm(a, b, out=out, trans_a=trans_a, trans_b=trans_b, accumulate=True)
    np.testing.assert_allclose(out, 2 * expected)
    np.testing.assert_allclose(ops.gemm(a, b, trans_a=trans_a, trans_b=trans_b), expected)
