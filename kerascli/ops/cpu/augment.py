"""Numba twins of kerascli.ops.reference.augment: same names, signatures and results."""

from __future__ import annotations

import math

from numba import njit

from kerascli.ops import scalar
from kerascli.ops.contract import FILL_CONSTANT
from kerascli.ops.cpu.jit import opts

_inside = njit(inline="always", **opts)(scalar.image_coordinate)


@njit(**opts)
def affine_resample(x, matrices, fill, cval, out):
    """Each output pixel's four neighbours in the input, weighted, over all its channels at once (one
    matrix per image: the geometric augmentations of an image in one pass)."""
    n, h, w, channels = x.shape
    for b in range(n):
        m00, m01, m02 = matrices[b, 0, 0], matrices[b, 0, 1], matrices[b, 0, 2]
        m10, m11, m12 = matrices[b, 1, 0], matrices[b, 1, 1], matrices[b, 1, 2]
        for r in range(h):
            for c in range(w):
                u, out_u = _inside(m00 * r + m01 * c + m02, h, fill)
                v, out_v = _inside(m10 * r + m11 * c + m12, w, fill)
                dst = out[b, r, c]
                if fill == FILL_CONSTANT and (out_u or out_v):
                    for k in range(channels):
                        dst[k] = cval
                    continue
                r0, c0 = int(math.floor(u)), int(math.floor(v))
                r1, c1 = min(r0 + 1, h - 1), min(c0 + 1, w - 1)
                fr, fc = u - r0, v - c0
                p00, p01, p10, p11 = x[b, r0, c0], x[b, r0, c1], x[b, r1, c0], x[b, r1, c1]
                for k in range(channels):
                    dst[k] = ((1 - fr) * ((1 - fc) * p00[k] + fc * p01[k])
                              + fr * ((1 - fc) * p10[k] + fc * p11[k]))
    return out


@njit(**opts)
def channel_shift_brightness(x, shift, brightness):
    for b in range(x.shape[0]):
        image = x[b].reshape(-1)
        if shift[b] != 0:
            lo, hi = image[0], image[0]
            for i in range(image.size):
                lo, hi = min(lo, image[i]), max(hi, image[i])
            for i in range(image.size):
                image[i] = min(max(image[i] + shift[b], lo), hi)
        for i in range(image.size):
            image[i] *= brightness[b]
    return x
