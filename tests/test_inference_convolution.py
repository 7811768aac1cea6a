"""Inference-only convolutions (Winograd F(4x4, 3x3); a grey 3x3 convolution and its 2x2 max pooling in one
kernel) against the patches-and-GEMM ones training uses."""

import numpy as np
import pytest

from kerascli.ops import conv_geometry, get_ops
from kerascli.ops.contract import RELU, Conv2DGeometry
from kerascli.ops.tuning import WINOGRAD_MIN_CHANNELS


def workspace(default_dtype):
    """What Layer.workspace gives: buffers by name, of the layer's dtype unless asked otherwise."""
    buffers = {}

    def ws(name, shape, dtype=None):
        key = (name, tuple(shape), np.dtype(dtype or default_dtype))
        if key not in buffers:
            buffers[key] = np.full(shape, 123, key[2])  # garbage: nothing may rely on a buffer's contents
        return buffers[key]

    return ws


def ops_with_winograd(name):
    """A fresh Ops of this backend taking the Winograd path (the reference's numpy transforms too)."""
    ops = type(get_ops(name))()
    ops.winograd_inference = True
    if name == "cpu":
        ops.set_threads(2)
    return ops


def geometry(h, w, c, padding):
    out_h, pad_top = conv_geometry(h, 3, 1, padding)
    out_w, pad_left = conv_geometry(w, 3, 1, padding)
    return Conv2DGeometry(3, 3, 1, 1, pad_top, pad_left, out_h, out_w, c)


CASES = [  # n, h, w, channels, filters, padding
    (3, 13, 13, WINOGRAD_MIN_CHANNELS, 5, "valid"),
    (2, 9, 6, 17, 4, "same"),
    (1, 4, 4, 16, 3, "valid"),  # one output pixel in a tile of 4x4
    (37, 7, 8, 16, 2, "same"),  # several chunks per thread
]


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_winograd_matches_the_gemm_convolution(rng, backend, case, dtype, monkeypatch):
    n, h, w, c, filters, padding = case
    ops = ops_with_winograd(backend)
    if n > 30:  # small chunks, so that the images take several per thread
        monkeypatch.setattr("kerascli.ops.algorithms.conv.WINOGRAD_CHUNK_BYTES", 1)
    g = geometry(h, w, c, padding)
    assert ops.conv2d_uses_winograd(g)
    x = rng.normal(size=(n, h, w, c)).astype(dtype)
    kernel = rng.normal(size=(3, 3, c, filters)).astype(dtype)
    bias = rng.normal(size=filters).astype(dtype)
    expected = ops.conv2d_forward(x, kernel, bias, RELU, g, workspace(x.dtype)).copy()
    got = ops.conv2d_forward(x, kernel, bias, RELU, g, workspace(x.dtype), inference=True)
    # float32: the transforms scale by up to about 100 and back, so a few units in the 6th digit move
    tolerance = 1e-11 if dtype == np.float64 else 2e-5 * np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance)
    if g.out_h >= 2 and g.out_w >= 2:
        pool_h, pool_w = g.out_h // 2, g.out_w // 2
        out = np.full((n, pool_h, pool_w, filters), np.nan, dtype)
        arg = np.full(out.shape, -7, np.int32)
        ops.conv2d_maxpool_forward(x, kernel, bias, RELU, g, 2, 2, out, arg, workspace(x.dtype), inference=True)
        pooled = expected[:, :2 * pool_h, :2 * pool_w].reshape(n, pool_h, 2, pool_w, 2, filters).max(axis=(2, 4))
        np.testing.assert_allclose(out, pooled, rtol=0, atol=tolerance)
        assert (arg == -7).all()  # inference keeps no places


def test_winograd_only_where_it_applies():
    ops = get_ops("cpu")
    assert ops.conv2d_uses_winograd(geometry(13, 13, WINOGRAD_MIN_CHANNELS, "valid"))
    assert not ops.conv2d_uses_winograd(geometry(13, 13, WINOGRAD_MIN_CHANNELS - 1, "valid"))
    assert not ops.conv2d_uses_winograd(Conv2DGeometry(3, 3, 2, 2, 0, 0, 6, 6, 32))  # strided
    assert not ops.conv2d_uses_winograd(Conv2DGeometry(5, 5, 1, 1, 0, 0, 9, 9, 32))  # 5x5
    assert not get_ops("reference").conv2d_uses_winograd(geometry(13, 13, 32, "valid"))  # the definition: direct


def test_training_never_takes_winograd(rng, monkeypatch):
    """Only inference: a training forward keeps what the backward needs, bit for bit the GEMM's."""
    ops = ops_with_winograd("cpu")
    calls = []
    monkeypatch.setattr(ops, "winograd_input_4x4", lambda *a: calls.append(a) or get_ops("cpu").winograd_input_4x4(*a))
    g = geometry(13, 13, 16, "valid")
    x = rng.normal(size=(2, 13, 13, 16)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 16, 8)).astype(np.float32)
    bias = np.zeros(8, np.float32)
    ops.conv2d_forward(x, kernel, bias, RELU, g, workspace(x.dtype))
    assert calls == []
    ops.conv2d_forward(x, kernel, bias, RELU, g, workspace(x.dtype), inference=True)
    assert calls


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("case", [(5, 28, 28, "valid"), (3, 9, 7, "same"), (40, 6, 6, "valid")])
def test_grey_first_layer_and_its_pooling_in_one_kernel(rng, backend, case):
    n, h, w, padding = case
    ops = get_ops(backend)
    g = geometry(h, w, 1, padding)
    assert ops.conv2d_pools_in_one_kernel(g, 2, 2) and not ops.conv2d_pools_in_one_kernel(g, 3, 3)
    x = rng.normal(size=(n, h, w, 1)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 1, 6)).astype(np.float32)
    bias = rng.normal(size=6).astype(np.float32)
    shape = (n, g.out_h // 2, g.out_w // 2, 6)
    trained, inferred = np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)
    arg = np.full(shape, -7, np.int32)
    ops.conv2d_maxpool_forward(x, kernel, bias, RELU, g, 2, 2, trained, arg.copy(), workspace(x.dtype))
    ops.conv2d_maxpool_forward(x, kernel, bias, RELU, g, 2, 2, inferred, arg, workspace(x.dtype), inference=True)
    np.testing.assert_allclose(inferred, trained, rtol=1e-5, atol=1e-5)
    assert (arg == -7).all()
