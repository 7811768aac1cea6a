"""Conv2D, channels-last, as im2col + one BLAS GEMM + fused bias/activation."""

from __future__ import annotations

import numpy as np

from kerascli.config.params import Param
from kerascli.graph.layer import ActivatedLayer, ShapeError, register_layer
from kerascli.layers.core import empty_bias
from kerascli.ops import conv_geometry, workers
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
    batch_parallel = True
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

    # Patches are built a few images at a time into a reused buffer of about
    # CHUNK_BYTES, so they are still in cache when the GEMM reads them, and a
    # large batch never materialises its whole patch matrix.
    CHUNK_BYTES = 1 << 20

    def _chunks(self, lo, hi):
        rows = self.out_h * self.out_w
        per_image = rows * self.patch_size * np.dtype(self.dtype).itemsize
        step = max(1, self.CHUNK_BYTES // per_image)
        for start in range(lo, hi, step):
            stop = min(hi, start + step)
            yield start, stop, slice(start * rows, stop * rows)

    @property
    def patch_size(self):
        kh, kw = self.config["kernel_size"]
        return kh * kw * self.in_shape[2]

    def _patches(self, x, start, stop, part):
        rows = (stop - start) * self.out_h * self.out_w
        out = self.workspace(f"cols{part}", (rows, self.patch_size))
        return self.ops.im2col(x[start:stop], *self._geometry(), out)

    # Up to this many values per patch (kh*kw*channels), convolution runs
    # directly (conv2d_direct) instead of as a GEMM over patches.
    DIRECT_MAX_PATCH = 32

    @property
    def direct(self):
        return self.patch_size <= self.DIRECT_MAX_PATCH

    def _work(self, n):
        return n * self.out_h * self.out_w * self.patch_size * self.config["filters"]

    def forward(self, x, training):
        """Images are split across threads; each builds patches of a few images at a time."""
        x = np.ascontiguousarray(x)
        n, filters = x.shape[0], self.config["filters"]
        kh, kw, sh, sw, pt, pl, oh, ow = self._geometry()
        bias = self.params["bias"] if "bias" in self.params else empty_bias(x.dtype)
        y = self.workspace("y", (n * oh * ow, filters))
        y4 = y.reshape(n, oh, ow, filters)
        kernel4 = self.params["kernel"]
        kernel = kernel4.reshape(-1, filters)

        def part(i, lo, hi):
            if self.direct:
                self.ops.conv2d_direct(x[lo:hi], kernel4, bias, self.act, sh, sw, pt, pl, oh, ow, y4[lo:hi])
                return
            for start, stop, rows in self._chunks(lo, hi):
                z = np.matmul(self._patches(x, start, stop, i), kernel, out=y[rows])
                self.ops.bias_activation_forward(z, bias, self.act, z)  # in place, while the chunk is in cache

        workers.run(part, n, self._work(n))
        self._x, self._y = x, y
        return y4

    def backward(self, dy):
        filters = self.config["filters"]
        dz, db = self.activation_backward(dy.reshape(-1, filters))
        if "bias" in self.grads:
            self.grads["bias"][...] = db
        x = self._x
        n = len(x)
        kh, kw, sh, sw, pt, pl, oh, ow = self._geometry()
        kernel = self.params["kernel"].reshape(-1, filters)
        dz4 = dz.reshape(n, oh, ow, filters)
        dx = self.workspace("dx", x.shape) if self.need_input_grad else None

        def part(i, lo, hi):
            """This thread's share of the kernel gradient, and its images' input gradient."""
            if self.direct:
                grad = self.ops.conv2d_direct_kernel_grad(x[lo:hi], dz4[lo:hi], kh, kw, sh, sw, pt, pl)
                if dx is None:
                    return grad.reshape(kernel.shape)
            else:
                grad = self.workspace(f"grad{i}", kernel.shape)
                grad[...] = 0
                step_grad = self.workspace(f"step_grad{i}", kernel.shape)
            for start, stop, rows in self._chunks(lo, hi):
                # patches are rebuilt rather than kept from forward: cheaper than a round trip to memory
                cols = self._patches(x, start, stop, i)
                if not self.direct:
                    np.matmul(cols.T, dz[rows], out=step_grad)
                    grad += step_grad
                if dx is not None:
                    dcols = np.matmul(dz[rows], kernel.T, out=self.workspace(f"dcols{i}", cols.shape))
                    self.ops.col2im(dcols, kh, kw, sh, sw, pt, pl, oh, ow, dx[start:stop])
            return grad.reshape(kernel.shape)

        self.grads["kernel"].reshape(kernel.shape)[...] = sum(workers.run(part, n, 2 * self._work(n)))
        return dx
