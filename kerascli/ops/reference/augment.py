"""Image augmentation kernels (ImageDataGenerator's): one affine resampling per image, its channel shift and
brightness. Images are (N, height, width, channels)."""

from __future__ import annotations

import numpy as np

from kerascli.ops.contract import FILL_CONSTANT, FILL_REFLECT, FILL_WRAP


def _inside(u: np.ndarray, n: int, fill: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates ``u`` along an axis of ``n`` pixels mapped into [0, n-1] as ``fill`` reads outside (constant:
    where they are outside, flagged), and the flags."""
    outside = (u < 0) | (u > n - 1)
    if n == 1:
        return np.zeros_like(u), outside
    if fill == FILL_REFLECT:  # half-sample symmetric: d c b a | a b c d | d c b a
        u = np.mod(u, 2 * n)
        u = np.where(u > n - 1, 2 * n - 1 - u, u)
    elif fill == FILL_WRAP:  # period n - 1 outside: the last pixel and the first coincide (scipy's 'wrap')
        u = np.where(outside, np.mod(u, n - 1), u)
    return np.clip(u, 0, n - 1), outside


def affine_resample(x, matrices, fill, cval, out):
    """out[b] at (r, c) = x[b] read at (row, col) = matrices[b] @ (r, c, 1) with bilinear interpolation;
    ``matrices`` (N, 2, 3) float64; outside the image as ``fill`` says (constant: ``cval``)."""
    n, h, w, channels = x.shape
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    for b in range(n):
        m = matrices[b]
        u = m[0, 0] * rows + m[0, 1] * cols + m[0, 2]
        v = m[1, 0] * rows + m[1, 1] * cols + m[1, 2]
        u, out_u = _inside(u, h, fill)
        v, out_v = _inside(v, w, fill)
        r0, c0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
        r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
        fr, fc = (u - r0)[..., None], (v - c0)[..., None]
        image = x[b].astype(np.float64)
        value = ((1 - fr) * ((1 - fc) * image[r0, c0] + fc * image[r0, c1])
                 + fr * ((1 - fc) * image[r1, c0] + fc * image[r1, c1]))
        if fill == FILL_CONSTANT:
            value[out_u | out_v] = cval
        out[b] = value
    return out


def channel_shift_brightness(x, shift, brightness):
    """In place, per image b: clip(x + shift[b], the image's min, its max) (Keras' channel shift: the same
    intensity on every channel), then times brightness[b]."""
    for b in range(len(x)):
        if shift[b] != 0:
            x[b] = np.clip(x[b] + shift[b], x[b].min(), x[b].max())
        x[b] *= brightness[b]
    return x
