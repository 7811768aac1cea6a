"""CUDA twins of kerascli.ops.reference.activations: same names, signatures and results."""

from __future__ import annotations

import math

from numba import cuda

from kerascli.ops import scalar
from kerascli.ops.contract import LOG_SOFTMAX, SOFTMAX
from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import blocks, column_sums, output_for

# The elementwise activations, from their one definition (kerascli.ops.scalar)
_activation_value = cuda.jit(device=True)(scalar.activation_value)
_activation_gradient = cuda.jit(device=True)(scalar.activation_gradient)


@kernel
def _bias_activation(z, bias, use_bias, act, out):
    i = cuda.grid(1)
    rows, cols = z.shape
    if i < rows * cols:
        r = i // cols
        c = i - r * cols
        v = z[r, c]
        if use_bias:
            v += bias[c]
        out[r, c] = _activation_value(v, act)


@kernel
def _softmax_rows(z, bias, use_bias, log, out):
    """softmax of each row of z + bias, or its logarithm (``log``), one thread per row."""
    r = cuda.grid(1)
    rows, cols = z.shape
    if r < rows:
        m = -math.inf
        for c in range(cols):
            v = z[r, c] + (bias[c] if use_bias else 0.0)
            if v > m or c == 0:
                m = v
        s = 0.0
        for c in range(cols):
            s += math.exp(z[r, c] + (bias[c] if use_bias else 0.0) - m)
        shift = m + math.log(s)
        for c in range(cols):
            v = z[r, c] + (bias[c] if use_bias else 0.0) - shift
            out[r, c] = v if log else math.exp(v)


def _launch_bias_activation(z, bias, act, out):
    """act(z + bias) into ``out`` (2-D; ``out`` may be ``z``); an empty ``bias`` means none."""
    use_bias = bias.size > 0
    b = bias if use_bias else out[0]  # any device array of the dtype: never read
    if act == SOFTMAX or act == LOG_SOFTMAX:
        _softmax_rows[blocks(z.shape[0])](z, b, use_bias, act == LOG_SOFTMAX, out)
    elif z.size:
        _bias_activation[blocks(z.size)](z, b, use_bias, act, out)
    return out


def bias_activation_forward(z, bias, act, out):
    return _launch_bias_activation(z, bias, act, out)


def bias_activation_inplace(z, bias, act):
    return _launch_bias_activation(z, bias, act, z)


@kernel
def _activation_gradient_kernel(dy, y, act, dz):
    i = cuda.grid(1)
    rows, cols = dy.shape
    if i < rows * cols:
        r = i // cols
        c = i - r * cols
        dz[r, c] = _activation_gradient(dy[r, c], y[r, c], act)


@kernel
def _softmax_gradient(dy, y, log, dz):
    """Through softmax (or log_softmax: ``log``) from its output, one thread per row."""
    r = cuda.grid(1)
    rows, cols = dy.shape
    if r < rows:
        s = 0.0
        for c in range(cols):
            s += dy[r, c] if log else dy[r, c] * y[r, c]
        for c in range(cols):
            dz[r, c] = dy[r, c] - math.exp(y[r, c]) * s if log else y[r, c] * (dy[r, c] - s)


def _launch_activation_gradient(dy, y, act, dz):
    if act == SOFTMAX or act == LOG_SOFTMAX:
        _softmax_gradient[blocks(dy.shape[0])](dy, y, act == LOG_SOFTMAX, dz)
    elif dy.size:
        _activation_gradient_kernel[blocks(dy.size)](dy, y, act, dz)
    return dz


def bias_activation_backward(dy, y, act, dz):
    _launch_activation_gradient(dy, y, act, dz)
    return dz, column_sums(dz, output_for("column_sums", dz, (dz.shape[1],), dz.dtype))
