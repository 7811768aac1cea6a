"""Random image augmentation of the training split, with Keras' ImageDataGenerator names and semantics.
Its standardisation (rescale, samplewise and featurewise centring and normalisation) applies to every split
and to evaluate's and predict's inputs: kerascli.data.preprocess.

Each image gets its own random rotation, shifts, shear, zoom and flips, composed as Keras composes them
into one matrix (flips folded in), and the image is resampled once through it (``affine_resample``, one
kernel per batch); then its channel shift and brightness. The draws of a batch come from a generator
keyed by the run seed, the pass over the data and the batch's first sample, so a resumed run sees the
same augmented batches as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np

from kerascli.config.params import Param
from kerascli.data.preprocess import standardized_split
from kerascli.errors import DataError
from kerascli.ops.contract import FILL_MODES

AUGMENT_STREAM = 5  # the generator stream id of augmentation draws (pipeline.py's streams: 0 split, 2 epochs)

PARAMS = {
    "rotation_range": Param("float", 0.0, min=0.0, doc="degrees: a rotation drawn from [-r, r]"),
    "width_shift_range": Param("float", 0.0, min=0.0,
                               doc="below 1: a fraction of the width; from 1: pixels; a shift drawn from [-s, s]"),
    "height_shift_range": Param("float", 0.0, min=0.0, doc="as width_shift_range, along the height"),
    "shear_range": Param("float", 0.0, min=0.0, doc="degrees: a shear angle drawn from [-s, s]"),
    "zoom_range": Param("floats", [0.0], doc="z: zoom factors drawn from [1-z, 1+z]; [lo, hi]: from [lo, hi]"),
    "channel_shift_range": Param("float", 0.0, min=0.0, doc="an intensity drawn from [-s, s] added to every channel"),
    "brightness_range": Param("floats", None, nullable=True, doc="[lo, hi]: the image times a factor drawn from it"),
    "horizontal_flip": Param("bool", False),
    "vertical_flip": Param("bool", False),
    "fill_mode": Param("str", "nearest", choices=tuple(FILL_MODES)),
    "cval": Param("float", 0.0, doc="the value outside the image with fill_mode constant"),
    # standardisation (ImageDataGenerator.standardize, kerascli.data.preprocess): every split, evaluate, predict
    "rescale": Param("float", None, nullable=True, doc="every value times this (after the random transforms)"),
    "samplewise_center": Param("bool", False, doc="each sample minus its own mean"),
    "samplewise_std_normalization": Param("bool", False,
                                          doc="each sample divided by its own std (+1e-6); centres it too"),
    "featurewise_center": Param("bool", False, doc="each channel minus its mean over the training split"),
    "featurewise_std_normalization": Param("bool", False, doc="each channel divided by its std over the "
                                                              "training split (+1e-6); centres it too"),
}
DEFAULTS = {key: param.default for key, param in PARAMS.items()}
RANDOM = ("rotation_range", "width_shift_range", "height_shift_range", "shear_range", "zoom_range",
          "channel_shift_range", "brightness_range", "horizontal_flip", "vertical_flip")


def check(params: dict) -> str | None:
    """What is wrong with resolved augmentation params (as 'key: problem'), or None."""
    zoom = params["zoom_range"]
    if len(zoom) not in (1, 2) or (len(zoom) == 2 and not 0 < zoom[0] <= zoom[1]) or (len(zoom) == 1 and
                                                                                        not 0 <= zoom[0] < 1):
        return f"zoom_range: a fraction in [0, 1) or [lo, hi] with 0 < lo <= hi, got {zoom}"
    bright = params["brightness_range"]
    if bright is not None and (len(bright) != 2 or not 0 <= bright[0] <= bright[1]):
        return f"brightness_range: [lo, hi] with 0 <= lo <= hi, got {bright}"
    return None


def zoom_bounds(params: dict) -> tuple[float, float]:
    zoom = params["zoom_range"]
    return (1 - zoom[0], 1 + zoom[0]) if len(zoom) == 1 else (zoom[0], zoom[1])


def keras_matrix(h: int, w: int, theta=0.0, tx=0.0, ty=0.0, shear=0.0, zx=1.0, zy=1.0, flip_horizontal=False,
                 flip_vertical=False) -> np.ndarray:
    """The 3x3 matrix taking an output pixel (row, col, 1) to where it reads the input, as Keras'
    apply_affine_transform builds it (rotation @ shift @ shear @ zoom about the centre, tx along its first
    coordinate, then its x/y swap for channels-last images), with the flips Keras applies after it folded
    in. Angles in degrees. Each argument may be an array of n images' values: then (n, 3, 3)."""
    values = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (theta, tx, ty, shear, zx, zy,
                                                                              flip_horizontal, flip_vertical)))
    theta, tx, ty, shear, zx, zy, flip_h, flip_v = (v.reshape(-1) for v in values)
    n = len(theta)

    def matrices(entries):  # (n, 3, 3) from {(i, j): values}, the identity elsewhere
        m = np.zeros((n, 3, 3))
        m[:, [0, 1, 2], [0, 1, 2]] = 1
        for (i, j), v in entries.items():
            m[:, i, j] = v
        return m

    t, s = np.radians(theta), np.radians(shear)
    m = (matrices({(0, 0): np.cos(t), (0, 1): -np.sin(t), (1, 0): np.sin(t), (1, 1): np.cos(t)})
         @ matrices({(0, 2): tx, (1, 2): ty})
         @ matrices({(0, 1): -np.sin(s), (1, 1): np.cos(s)})
         @ matrices({(0, 0): zx, (1, 1): zy}))
    o_x, o_y = h / 2 - 0.5, w / 2 - 0.5
    m = matrices({(0, 2): o_x, (1, 2): o_y}) @ m @ matrices({(0, 2): -o_x, (1, 2): -o_y})
    m = m[:, [1, 0, 2]][:, :, [1, 0, 2]]  # Keras' swap: its matrix is built on (x, y), the image indexed (row, col)
    m = m @ matrices({(1, 1): np.where(flip_h, -1, 1), (1, 2): np.where(flip_h, w - 1, 0)})
    m = m @ matrices({(0, 0): np.where(flip_v, -1, 1), (0, 2): np.where(flip_v, h - 1, 0)})
    return m if values[0].ndim else m[0]


def random_draws(params: dict, rng: np.random.Generator, n: int, h: int, w: int) -> dict:
    """Each of ``n`` images' transform parameters (arrays of n), drawn as ImageDataGenerator draws them
    (uniform ranges; a shift below 1 a fraction of the size)."""
    def uniform(r):
        return rng.uniform(-r, r, n) if r else np.zeros(n)

    zoom = zoom_bounds(params)
    shift_h, shift_w = params["height_shift_range"], params["width_shift_range"]
    bright = params["brightness_range"]
    return {
        "theta": uniform(params["rotation_range"]),
        "tx": uniform(shift_h) * (h if shift_h < 1 else 1),
        "ty": uniform(shift_w) * (w if shift_w < 1 else 1),
        "shear": uniform(params["shear_range"]),
        "zx": rng.uniform(*zoom, n) if zoom != (1, 1) else np.ones(n),
        "zy": rng.uniform(*zoom, n) if zoom != (1, 1) else np.ones(n),
        "flip_horizontal": rng.random(n) < 0.5 if params["horizontal_flip"] else np.zeros(n, bool),
        "flip_vertical": rng.random(n) < 0.5 if params["vertical_flip"] else np.zeros(n, bool),
        "channel_shift": uniform(params["channel_shift_range"]),
        "brightness": rng.uniform(bright[0], bright[1], n) if bright is not None else np.ones(n),
    }


def augment_batch(ops, x: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """A new array: the images ``x`` (N, H, W, C) each randomly transformed."""
    n, h, w, _ = x.shape
    draws = random_draws(params, rng, n, h, w)
    geometric = ("theta", "tx", "ty", "shear", "zx", "zy", "flip_horizontal", "flip_vertical")
    matrices = np.ascontiguousarray(keras_matrix(h, w, *(draws[k] for k in geometric))[:, :2])
    out = np.empty_like(x)
    fill, cval = FILL_MODES[params["fill_mode"]], params["cval"]
    ops.parallel(lambda part, lo, hi: ops.affine_resample(x[lo:hi], matrices[lo:hi], fill, cval, out[lo:hi]), n,
                 x.size * 16)
    shift, bright = draws["channel_shift"].astype(x.dtype), draws["brightness"].astype(x.dtype)
    if shift.any() or (bright != 1).any():
        ops.channel_shift_brightness(out, shift, bright)
    return out


def transforms_at_random(params: dict) -> bool:
    """Whether any random transform is asked for (else only the standardisation, if anything)."""
    return any(params[k] != DEFAULTS[k] for k in RANDOM)


def as_images(x: np.ndarray, where: str) -> np.ndarray:
    """``x`` as (N, height, width, channels) (a (N, H, W) set as one channel)."""
    if isinstance(x, dict) or x.ndim not in (3, 4):
        shape = "several inputs" if isinstance(x, dict) else f"samples of shape {x.shape[1:]}"
        raise DataError(f"{where}: data.augmentation transforms images (height, width[, channels]); got {shape}")
    return x if x.ndim == 4 else x[..., None]


class AugmentedSplit:
    """A training split whose batches come out randomly transformed, then standardised (``standardizer``, a
    kerascli.data.preprocess.Standardizer); everything else is the split's. ``for_evaluation()`` is the
    split standardised only (what evaluation reads)."""

    augmented = True  # a device backend takes its batches one at a time (they are made on the host)

    def __init__(self, split, params: dict, seed: int, ops, standardizer):
        as_images(split.x if hasattr(split, "x") else np.empty((0,) + tuple(split.sample_shape)), "the training split")
        self.split, self.params, self.seed, self.ops = split, params, seed, ops
        self.standardizer = standardizer
        self.data_pass = 0
        self._evaluated = None

    def for_evaluation(self):
        if self._evaluated is None:
            self._evaluated = standardized_split(self.split, self.standardizer) if self.standardizer.active \
                else self.split
        return self._evaluated

    def __getattr__(self, name):
        return getattr(self.split, name)

    def __len__(self) -> int:
        return len(self.split)

    def order(self, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
        self.data_pass = epoch  # the pass whose batches come next (the loop asks for its order first)
        return self.split.order(seed, epoch, shuffle)

    def batch_keys(self, batch_size: int, order=None) -> list:
        return self.split.batch_keys(batch_size, order)

    def make_batch(self, key):
        """The split's batch ``key``, transformed with draws keyed by the run seed, the pass over the data and
        the batch's first sample (its position where the split is in order), then standardised."""
        x, y, w = self.split.make_batch(key)
        start = key.start if isinstance(key, slice) else (int(key[0]) if len(key) else 0)
        rng = np.random.default_rng([self.seed, AUGMENT_STREAM, self.data_pass, start])
        images = as_images(x, "the training split")
        return self.standardizer.apply(augment_batch(self.ops, images, self.params, rng).reshape(x.shape)), y, w

    def batches(self, batch_size: int, order=None):
        for key in self.batch_keys(batch_size, order):
            yield self.make_batch(key)
