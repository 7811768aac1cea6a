"""Weight initializers with Keras 3's names, arguments, defaults and definitions.

A config names one (``kernel_initializer: he_normal``) or gives it arguments
(``kernel_initializer: {type: VarianceScaling, scale: 2.0, mode: fan_out}``).
Fans follow Keras: a Dense kernel (in, out) has fan_in=in, fan_out=out; a
Conv2D kernel (kh, kw, in, out) multiplies both by the receptive field kh*kw.

Seeds: without ``seed`` an initializer draws from the model's generator (the
run's ``seed``), so each weight gets its own values. With ``seed`` it draws
from a generator of that seed alone, as Keras' seeded initializers do: the
values depend on the seed and the shape only, and two weights initialized
with the same seeded initializer are equal.
"""

from __future__ import annotations

import math

import numpy as np

from kerascli.config.params import Configured, Param, make_configured

SEED = Param("int", None, min=0, nullable=True, doc="a fixed seed: the same values on every call")
# the standard deviation of a unit normal truncated to [-2, 2]: Keras divides by it so that the truncated
# draws keep the intended variance
_TRUNC = 0.87962566103423978


def fans(shape: tuple) -> tuple[float, float]:
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive = float(math.prod(shape[:-2])) if len(shape) > 2 else 1.0
    return shape[-2] * receptive, shape[-1] * receptive


def truncated_normal(rng, shape, mean, stddev):
    """Normal draws, those more than two standard deviations from the mean drawn again (Keras')."""
    out = rng.normal(0.0, stddev, size=shape)
    bad = np.abs(out) > 2 * stddev
    while bad.any():
        out[bad] = rng.normal(0.0, stddev, size=int(bad.sum()))
        bad = np.abs(out) > 2 * stddev
    return out + mean


class Initializer(Configured):
    def __call__(self, rng: np.random.Generator, shape: tuple, dtype) -> np.ndarray:
        seed = self.config.get("seed")
        if seed is not None:
            rng = np.random.default_rng(seed)
        return np.asarray(self.draw(rng, tuple(shape))).astype(dtype)

    def draw(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        raise NotImplementedError


class Zeros(Initializer):
    def draw(self, rng, shape):
        return np.zeros(shape)


class Ones(Initializer):
    def draw(self, rng, shape):
        return np.ones(shape)


class Constant(Initializer):
    PARAMS = {"value": Param("float", 0.0)}

    def draw(self, rng, shape):
        return np.full(shape, self.config["value"])


class RandomNormal(Initializer):
    PARAMS = {"mean": Param("float", 0.0), "stddev": Param("float", 0.05, min=0.0), "seed": SEED}

    def draw(self, rng, shape):
        return rng.normal(self.config["mean"], self.config["stddev"], size=shape)


class TruncatedNormal(RandomNormal):
    def draw(self, rng, shape):
        return truncated_normal(rng, shape, self.config["mean"], self.config["stddev"])


class RandomUniform(Initializer):
    PARAMS = {"minval": Param("float", -0.05), "maxval": Param("float", 0.05), "seed": SEED}

    @classmethod
    def check(cls, config):
        if config["minval"] > config["maxval"]:
            return f"minval ({config['minval']}) must not be above maxval ({config['maxval']})"
        return None

    def draw(self, rng, shape):
        return rng.uniform(self.config["minval"], self.config["maxval"], size=shape)


class VarianceScaling(Initializer):
    """Draws with variance ``scale / n``, n the fan in, the fan out or their mean (``mode``): uniform on
    [-limit, limit], a normal truncated at two standard deviations (rescaled to keep the variance), or a
    plain normal."""

    PARAMS = {
        "scale": Param("float", 1.0, min=0.0, exclusive_min=True),
        "mode": Param("str", "fan_in", choices=("fan_in", "fan_out", "fan_avg")),
        "distribution": Param("str", "truncated_normal", choices=("truncated_normal", "untruncated_normal",
                                                                  "uniform")),
        "seed": SEED,
    }
    FIXED: dict = {}  # the arguments of a named special case (he_normal...), which takes only a seed

    def draw(self, rng, shape):
        c = {**self.config, **self.FIXED}
        fan_in, fan_out = fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[c["mode"]]
        variance = c["scale"] / max(1.0, n)
        if c["distribution"] == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, size=shape)
        if c["distribution"] == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(variance), size=shape)
        return truncated_normal(rng, shape, 0.0, math.sqrt(variance) / _TRUNC)


def _variance_scaling(name, scale, mode, distribution):
    """A VarianceScaling with fixed arguments (only ``seed`` is left to choose), under Keras' name."""
    fixed = {"scale": scale, "mode": mode, "distribution": distribution}
    return type(name, (VarianceScaling,), {"PARAMS": {"seed": SEED}, "FIXED": fixed,
                                          "__doc__": f"VarianceScaling({scale}, {mode}, {distribution})"})


GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")


class Orthogonal(Initializer):
    """``gain`` times an orthogonal matrix (the Q of a normal matrix's QR, signs fixed by R's diagonal),
    over the shape flattened to (everything but the last axis, the last axis)."""

    PARAMS = {"gain": Param("float", 1.0), "seed": SEED}

    def check_shape(self, shape):
        return None if len(shape) >= 2 else f"orthogonal needs a weight of 2 or more axes, got shape {shape}"

    def draw(self, rng, shape):
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = rng.normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.config["gain"] * q.reshape(shape)


class Identity(Initializer):
    """``gain`` times the identity matrix (a 2-D weight; rectangular ones get ones on the diagonal)."""

    PARAMS = {"gain": Param("float", 1.0)}

    def check_shape(self, shape):
        return None if len(shape) == 2 else f"identity needs a 2-D weight, got shape {shape}"

    def draw(self, rng, shape):
        return self.config["gain"] * np.eye(*shape)


def make(value) -> Initializer:
    """An initializer from a resolved config value: a registered name, or ``{type: name, ...}``."""
    from kerascli.registry import INITIALIZERS

    if isinstance(value, Initializer):  # made by a layer itself (an LSTM's bias with unit_forget_bias)
        return value
    return make_configured(INITIALIZERS, value)
