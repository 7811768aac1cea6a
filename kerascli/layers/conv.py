"""Conv2D, channels-last, as im2col + one BLAS GEMM + fused bias/activation."""

from __future__ import annotations

import numpy as np

from kerascli.config.params import Param
from kerascli.graph.layer import ActivatedLayer, ShapeError, register_layer
from kerascli.layers.core import empty_bias
from kerascli.ops import conv_geometry
from kerascli.registry import ACTIVATIONS, INITIALIZERS


def spatial_geometry(layer_name, input_shape, kernel, strides, padding):
    """Output (h, w) and top/left padding for a 2-D window op, or a ShapeError."""
    if len(input_shape) != 3:
        raise ShapeError(f"expects input of shape (height, width, channels), got {tuple(input_shape)}")
    h, w = input_shape[0], input_shape[1]
    out_h, pad_top = conv_geometry(h, kernel[0], strides[0], padding)
    out_w, pad_left = conv_geometry(w, kernel[1], strides[1], padding)
    if out_h < 1 or out_w < 1:
        raise ShapeError(
            f"window {tuple(kernel)} with padding {padding!r} does not fit input {h}x{w}; "
            "use padding: same or a smaller window"
        )
    return out_h, out_w, pad_top, pad_left


@register_layer("Conv2D", "Convolution2D")
class Conv2D(ActivatedLayer):
    PARAMS = {
        "filters": Param("int", min=1),
        "kernel_size": Param("pair", min=1),
        "strides": Param("pair", [1, 1], min=1),
        "padding": Param("str", "valid", choices=("valid", "same")),
        "activation": Param("str", "linear", choices=ACTIVATIONS),
        "use_bias": Param("bool", True),
        "kernel_initializer": Param("str", "glorot_uniform", choices=INITIALIZERS),
        "bias_initializer": Param("str", "zeros", choices=INITIALIZERS),
    }

    def build(self, input_shape):
        c = self.config
        kh, kw = c["kernel_size"]
        sh, sw = c["strides"]
        self.out_h, self.out_w, self.pad_top, self.pad_left = spatial_geometry(
            self.name, input_shape, (kh, kw), (sh, sw), c["padding"]
        )
        self.in_shape = tuple(input_shape)
        cin = input_shape[2]
        self.add_weight("kernel", (kh, kw, cin, c["filters"]), c["kernel_initializer"])
        if c["use_bias"]:
            self.add_weight("bias", (c["filters"],), c["bias_initializer"])
        return (self.out_h, self.out_w, c["filters"])

    def _geometry(self):
        kh, kw = self.config["kernel_size"]
        sh, sw = self.config["strides"]
        return kh, kw, sh, sw, self.pad_top, self.pad_left, self.out_h, self.out_w

    def forward(self, x, training):
        n = x.shape[0]
        cols = self.ops.im2col(np.ascontiguousarray(x), *self._geometry())
        kernel = self.params["kernel"].reshape(-1, self.config["filters"])
        bias = self.params["bias"] if "bias" in self.params else empty_bias(x.dtype)
        y = self.ops.bias_activation_forward(cols @ kernel, bias, self.act)
        self._cols, self._y, self._n = cols, y, n
        return y.reshape(n, self.out_h, self.out_w, -1)

    def backward(self, dy):
        filters = self.config["filters"]
        dz, db = self.ops.bias_activation_backward(dy.reshape(-1, filters), self._y, self.act)
        np.matmul(self._cols.T, dz, out=self.grads["kernel"].reshape(-1, filters))
        if "bias" in self.grads:
            self.grads["bias"][...] = db
        if not self.need_input_grad:
            return None
        dcols = dz @ self.params["kernel"].reshape(-1, filters).T
        h, w, c = self.in_shape
        return self.ops.col2im(dcols, self._n, h, w, c, *self._geometry())
