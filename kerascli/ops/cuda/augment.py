"""CUDA twins of kerascli.ops.reference.augment: one thread per output value."""

from __future__ import annotations

import math

from numba import cuda

from kerascli.ops import scalar
from kerascli.ops.contract import FILL_CONSTANT
from kerascli.ops.cuda.kernel import kernel
from kerascli.ops.cuda.launch import blocks, nhwc

_inside = cuda.jit(device=True)(scalar.image_coordinate)


@kernel
def _affine_resample(x, matrices, fill, cval, out):
    i = cuda.grid(1)
    n, h, w, channels = out.shape
    if i < out.size:
        b, r, c, k = nhwc(i, h, w, channels)
        u, out_u = _inside(matrices[b, 0, 0] * r + matrices[b, 0, 1] * c + matrices[b, 0, 2], h, fill)
        v, out_v = _inside(matrices[b, 1, 0] * r + matrices[b, 1, 1] * c + matrices[b, 1, 2], w, fill)
        if fill == FILL_CONSTANT and (out_u or out_v):
            out[b, r, c, k] = cval
            return
        r0, c0 = int(math.floor(u)), int(math.floor(v))
        r1, c1 = min(r0 + 1, h - 1), min(c0 + 1, w - 1)
        fr, fc = u - r0, v - c0
        out[b, r, c, k] = ((1 - fr) * ((1 - fc) * x[b, r0, c0, k] + fc * x[b, r0, c1, k])
                           + fr * ((1 - fc) * x[b, r1, c0, k] + fc * x[b, r1, c1, k]))


def affine_resample(x, matrices, fill, cval, out):
    if out.size:
        _affine_resample[blocks(out.size)](x, matrices, fill, cval, out)
    return out


@kernel
def _channel_shift_brightness(x, shift, brightness):
    """One thread per image (a small batch of images; the per-image min/max make it a reduction)."""
    b = cuda.grid(1)
    if b < x.shape[0]:
        image = x[b]
        h, w, channels = image.shape
        lo, hi = image[0, 0, 0], image[0, 0, 0]
        for r in range(h):
            for c in range(w):
                for k in range(channels):
                    lo, hi = min(lo, image[r, c, k]), max(hi, image[r, c, k])
        for r in range(h):
            for c in range(w):
                for k in range(channels):
                    value = image[r, c, k]
                    if shift[b] != 0:
                        value = min(max(value + shift[b], lo), hi)
                    image[r, c, k] = value * brightness[b]


def channel_shift_brightness(x, shift, brightness):
    if x.shape[0]:
        _channel_shift_brightness[blocks(x.shape[0])](x, shift, brightness)
    return x
