"""Weight constraints with Keras 3's names, arguments, defaults and definitions, applied to a weight after
every optimizer step (``w = constraint(w)``, as Keras' optimizers do). Host numpy over the weight's values.

``axis`` is the axis along which norms are taken: 0 for a Dense kernel (in, units) constrains each unit's
incoming weights; [0, 1, 2] for a Conv2D kernel (kh, kw, in, filters) each filter's.
"""

from __future__ import annotations

import numpy as np

from kerascli.config.params import Configured, Param, make_configured

EPS = 1e-7  # Keras' backend epsilon
AXIS = Param("int_list", 0, doc="axis or axes the norm is taken along")


def _axes(axis) -> tuple:
    return tuple(axis) if isinstance(axis, list) else (axis,)


class Constraint(Configured):
    def check_shape(self, shape: tuple) -> str | None:
        if "axis" not in self.config:
            return None
        bad = [a for a in _axes(self.config["axis"]) if not -len(shape) <= a < len(shape)]
        return f"axis {bad[0]} is not an axis of a weight of shape {shape}" if bad else None

    def norms(self, w):
        return np.sqrt(np.square(w).sum(axis=_axes(self.config["axis"]), keepdims=True))

    def __call__(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class MaxNorm(Constraint):
    PARAMS = {"max_value": Param("float", 2.0, min=0.0), "axis": AXIS}

    def __call__(self, w):
        norms = self.norms(w)
        return w * (np.clip(norms, 0, self.config["max_value"]) / (EPS + norms))


class MinMaxNorm(Constraint):
    PARAMS = {"min_value": Param("float", 0.0, min=0.0), "max_value": Param("float", 1.0, min=0.0),
              "rate": Param("float", 1.0, min=0.0, max=1.0), "axis": AXIS}

    @classmethod
    def check(cls, config):
        if config["min_value"] > config["max_value"]:
            return f"min_value ({config['min_value']}) must not be above max_value ({config['max_value']})"
        return None

    def __call__(self, w):
        c = self.config
        norms = self.norms(w)
        desired = c["rate"] * np.clip(norms, c["min_value"], c["max_value"]) + (1 - c["rate"]) * norms
        return w * (desired / (EPS + norms))


class UnitNorm(Constraint):
    PARAMS = {"axis": AXIS}

    def __call__(self, w):
        return w / (EPS + self.norms(w))


class NonNeg(Constraint):
    def __call__(self, w):
        return np.maximum(w, 0)


def make(value) -> Constraint | None:
    """A constraint from a resolved config value (a name, ``{type: name, ...}``, or None)."""
    from kerascli.registry import CONSTRAINTS

    return make_configured(CONSTRAINTS, value)
