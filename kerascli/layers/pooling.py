"""MaxPooling2D and AveragePooling2D, channels-last."""

from __future__ import annotations

import numpy as np

from kerascli.config.params import Param
from kerascli.graph.layer import Layer, register_layer
from kerascli.layers.conv import spatial_geometry
from kerascli.ops import workers


class _Pooling2D(Layer):
    batch_parallel = True
    PARAMS = {
        "pool_size": Param("pair", [2, 2], min=1),
        "strides": Param("pair", None, min=1, nullable=True, doc="defaults to pool_size"),
        "padding": Param("str", "valid", choices=("valid", "same")),
    }

    @classmethod
    def resolve_params(cls, params, error):
        if params["strides"] is None:
            params["strides"] = list(params["pool_size"])
        return params

    def build(self, input_shape):
        c = self.config
        self.out_h, self.out_w, self.pad_top, self.pad_left = spatial_geometry(
            self.name, input_shape, c["pool_size"], c["strides"], c["padding"]
        )
        self.in_shape = tuple(input_shape)
        return (self.out_h, self.out_w, input_shape[2])

    def _window(self):
        ph, pw = self.config["pool_size"]
        sh, sw = self.config["strides"]
        return ph, pw, sh, sw, self.pad_top, self.pad_left


@register_layer("MaxPooling2D", "MaxPool2D")
class MaxPooling2D(_Pooling2D):
    def forward(self, x, training):
        x = np.ascontiguousarray(x)
        out_shape = (x.shape[0],) + self.output_shape
        y = self.workspace("y", out_shape)
        arg = self._arg = self.workspace("arg", out_shape, np.int32)
        window, oh, ow = self._window(), self.out_h, self.out_w
        workers.run(lambda i, lo, hi: self.ops.max_pool_forward(x[lo:hi], *window, oh, ow, y[lo:hi], arg[lo:hi]),
                    len(x), x.size)
        return y

    def backward(self, dy):
        dy = np.ascontiguousarray(dy)
        dx = self.workspace("dx", (dy.shape[0],) + self.in_shape)
        arg, window = self._arg, self._window()
        workers.run(lambda i, lo, hi: self.ops.max_pool_backward(dy[lo:hi], arg[lo:hi], *window, dx[lo:hi]),
                    len(dy), dx.size)
        return dx


@register_layer("AveragePooling2D", "AvgPool2D")
class AveragePooling2D(_Pooling2D):
    def forward(self, x, training):
        x = np.ascontiguousarray(x)
        y = self.workspace("y", (x.shape[0],) + self.output_shape)
        window, oh, ow = self._window(), self.out_h, self.out_w
        workers.run(lambda i, lo, hi: self.ops.avg_pool_forward(x[lo:hi], *window, oh, ow, y[lo:hi]), len(x), x.size)
        return y

    def backward(self, dy):
        dy = np.ascontiguousarray(dy)
        dx = self.workspace("dx", (dy.shape[0],) + self.in_shape)
        window = self._window()
        workers.run(lambda i, lo, hi: self.ops.avg_pool_backward(dy[lo:hi], *window, dx[lo:hi]), len(dy), dx.size)
        return dx
