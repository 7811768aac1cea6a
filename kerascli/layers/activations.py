"""The activation layers with arguments: ReLU, LeakyReLU, PReLU, ELU, Softmax (Keras 3's names, arguments
and defaults). The ``activation:`` values and the Activation layer come from the activation table."""

from __future__ import annotations

from kerascli.config.params import Param, constraint_param, regularizer_param
from kerascli.graph.layer import AxesToEnd, Layer, ShapeError
from kerascli.ops.contract import SOFTMAX
from kerascli.registry import INITIALIZERS


class _Elementwise(Layer):
    mask_passes = True  # Keras keeps the mask of its input on its output

    def build(self, input_shape):
        return tuple(input_shape)


class ReLU(_Elementwise):
    """x above ``threshold`` (capped at ``max_value``), 0 down to the threshold, negative_slope * (x -
    threshold) below it."""

    PARAMS = {
        "max_value": Param("float", None, min=0.0, nullable=True),
        "negative_slope": Param("float", 0.0, min=0.0),
        "threshold": Param("float", 0.0, min=0.0),
    }

    def _arguments(self):
        c = self.config
        return c["max_value"], c["negative_slope"], c["threshold"]

    def forward(self, x, training):
        self._x = x
        return self.ops.thresholded_relu_forward(x, *self._arguments())

    def backward(self, dy):
        return self.ops.thresholded_relu_backward(dy, self._x, *self._arguments())


class LeakyReLU(ReLU):
    PARAMS = {"negative_slope": Param("float", 0.3, min=0.0)}

    def _arguments(self):
        return None, self.config["negative_slope"], 0.0


class ELU(_Elementwise):
    PARAMS = {"alpha": Param("float", 1.0)}

    def forward(self, x, training):
        self._x = x
        return self.ops.elu_forward(x, self.config["alpha"])

    def backward(self, dy):
        return self.ops.elu_backward(dy, self._x, self.config["alpha"])


class PReLU(Layer):
    """x where positive, alpha * x elsewhere, with a learned ``alpha`` per value (shared along
    ``shared_axes``, counted from 1 as in Keras)."""

    mask_passes = True  # Keras keeps the mask of its input on its output

    PARAMS = {
        "alpha_initializer": Param("typed", "zeros", choices=INITIALIZERS),
        "alpha_regularizer": regularizer_param(),
        "alpha_constraint": constraint_param(),
        "shared_axes": Param("shape", None, nullable=True, doc="axes (from 1) that share one alpha"),
    }

    def build(self, input_shape):
        shape = list(input_shape)
        for axis in self.config["shared_axes"] or []:
            if not 1 <= axis <= len(shape):
                raise ShapeError(f"shared axis {axis} is not an axis of input {tuple(input_shape)} (1..{len(shape)})")
            shape[axis - 1] = 1
        c = self.config
        self.add_weight("alpha", tuple(shape), c["alpha_initializer"], regularizer=c["alpha_regularizer"],
                        constraint=c["alpha_constraint"])
        return tuple(input_shape)

    def forward(self, x, training):
        self._x = x
        return self.ops.prelu_forward(x, self.params["alpha"])

    def backward(self, dy):
        return self.ops.prelu_backward(dy, self._x, self.params["alpha"], self.grads["alpha"])


class Softmax(Layer):
    """softmax along ``axis`` (-1: the last; counted with the batch axis as 0, as in Keras)."""

    mask_passes = True  # Keras keeps the mask of its input on its output

    PARAMS = {"axis": Param("int", -1, min=-64, max=64)}
    code = SOFTMAX

    def build(self, input_shape):
        self._axes = AxesToEnd(self.config["axis"], input_shape)
        self.host_only = self._axes.moves  # moving an axis is a host copy
        return tuple(input_shape)

    def forward(self, x, training):
        z2, self._moved = self._axes.rows(self.ops, x)
        y = self.ops.bias_activation_forward(z2, self.ops.no_bias(x.dtype), self.code, self.workspace("y", z2.shape))
        self._y = y
        return self._axes.restore(self.ops, y, self._moved)

    def backward(self, dy):
        d2, _ = self._axes.rows(self.ops, dy)
        dz, _ = self.ops.activation_backward(d2, self._y, self.code, self.workspace("dz", self._y.shape))
        return self._axes.restore(self.ops, dz, self._moved)
