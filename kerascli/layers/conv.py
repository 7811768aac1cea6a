"""Conv2D, channels-last.

Forward: im2col + one BLAS GEMM + fused bias/activation, or direct kernels when
a patch is small (a first layer). Backward: GEMMs over patches, or, when the
output gradient is mostly zero (behind ReLU and max pooling), a kernel that
visits only its nonzero entries.
"""

from __future__ import annotations

import math

import numpy as np

from kerascli.config.params import Param
from kerascli.graph.layer import ActivatedLayer, ShapeError, register_layer
from kerascli.layers.core import empty_bias
from kerascli.ops import conv_geometry, workers
from kerascli.ops.reference import LINEAR, SOFTMAX
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

    def buffer_bytes(self, batch, threads, itemsize):
        sizes = super().buffer_bytes(batch, threads, itemsize)
        rows = self.out_h * self.out_w
        per_image = rows * self.patch_size * itemsize
        images = min(batch, max(1, self.CHUNK_BYTES // per_image))  # per chunk: at least one image
        parts = min(threads, batch)
        kernel = math.prod(self.weight_specs[0].shape) * itemsize
        sizes["patches (all threads)"] = parts * images * per_image  # and as much again for their gradient
        sizes["patch gradients (all threads)"] = parts * images * per_image
        sizes["kernel gradients (all threads)"] = 3 * parts * kernel
        sizes["sparse gradient lists"] = batch * rows * self.config["filters"] * (4 + 4 + itemsize) // 4
        return sizes

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

    # ------------------------------------------------------------- fused max pooling
    pool = None  # the MaxPooling2D after this layer, when this layer does its work too

    def absorb(self, consumer):
        """A first layer's direct convolution and the max pooling after it, as one kernel each way.

        The convolution's output (4x the pooled one for 2x2 windows) is then
        never written to memory and read back, and its gradient never formed
        (benchmark CNN training step: 16.5 -> about 13 ms). Taken when the
        windows tile the image (strides = pool_size, valid padding), the
        activation is increasing (it commutes with the max), and no input
        gradient is needed.
        """
        pc = consumer.config
        fits = (consumer.type_name == "MaxPooling2D" and pc["padding"] == "valid"
                and list(pc["strides"]) == list(pc["pool_size"]))
        if not (fits and self.direct and not self.need_input_grad and self.act != SOFTMAX):
            return False
        self.pool = consumer
        return True

    def _forward_pooled(self, x):
        pool, n = self.pool, len(x)
        kh, kw, sh, sw, pt, pl, _, _ = self._geometry()
        ph, pw = pool.config["pool_size"]
        bias = self.params["bias"] if "bias" in self.params else empty_bias(x.dtype)
        out = pool.workspace("y", (n,) + pool.output_shape)
        arg = pool.workspace("arg", (n,) + pool.output_shape, np.int32)
        kernel = self.params["kernel"]
        workers.run(lambda i, lo, hi: self.ops.conv2d_direct_maxpool(x[lo:hi], kernel, bias, self.act, sh, sw, pt, pl,
                                                                     ph, pw, out[lo:hi], arg[lo:hi]),
                    n, self._work(n))
        self._x, self._pooled, self._arg = x, out, arg
        return out

    def _backward_pooled(self, dy):
        dy = np.ascontiguousarray(dy)
        x, pooled, arg = self._x, self._pooled, self._arg
        kh, kw, sh, sw, pt, pl, _, _ = self._geometry()
        ph, pw = self.pool.config["pool_size"]

        def part(i, lo, hi):
            return self.ops.conv2d_direct_maxpool_backward(x[lo:hi], dy[lo:hi], pooled[lo:hi], arg[lo:hi], self.act,
                                                           kh, kw, sh, sw, pt, pl, ph, pw)

        self._add_weight_grads(workers.run(part, len(x), self._work(len(x))))

    def _add_weight_grads(self, parts):
        """Store the sum over threads of (kernel gradient, bias gradient) pairs."""
        self.grads["kernel"][...] = sum(g for g, _ in parts)
        if "bias" in self.grads:
            self.grads["bias"][...] = sum(db for _, db in parts)

    # ------------------------------------------------------------- forward and backward
    def forward(self, x, training):
        """Images are split across threads; each builds patches of a few images at a time."""
        x = np.ascontiguousarray(x)
        if self.pool is not None:
            return self._forward_pooled(x)
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
                self.ops.bias_activation_inplace(z, bias, self.act)  # while the chunk is in cache

        workers.run(part, n, self._work(n))
        self._x, self._y = x, y
        return y4

    # Below this fraction of nonzero output gradients (typical behind ReLU and max
    # pooling) backward visits only the nonzero entries instead of running two
    # GEMMs. Benchmark CNN's conv2, 128 images: 2.4 ms against 7.4 at 5%, 6.0
    # against 7.4 at 20%, even at about 27%.
    SPARSE_MAX_DENSITY = 0.25

    def backward(self, dy):
        if self.pool is not None:
            return self._backward_pooled(dy)
        filters = self.config["filters"]
        n, oh, ow = len(self._x), self.out_h, self.out_w
        dy2 = np.ascontiguousarray(dy).reshape(-1, filters)
        if self.direct and not self.need_input_grad:
            return self._direct_backward(dy2.reshape(n, oh, ow, filters))
        dx = self.workspace("dx", self._x.shape) if self.need_input_grad else None
        kernel = self.params["kernel"].reshape(-1, filters)
        kernel_t = self.workspace("kernel_t", kernel.T.shape)
        kernel_t[...] = kernel.T
        rows = oh * ow
        results = workers.run(lambda i, lo, hi: self._backward_part(i, lo, hi, dy2[lo * rows:hi * rows], kernel_t, dx),
                              n, 2 * self._work(n))
        self._add_weight_grads([(g.reshape(self.grads["kernel"].shape), db) for g, db in results])
        return dx

    def _backward_part(self, i, lo, hi, dy2, kernel_t, dx):
        """Kernel and bias gradients of images [lo, hi) (returned) and their input gradient (into dx)."""
        x = self._x
        kh, kw, sh, sw, pt, pl, oh, ow = self._geometry()
        y = self._y[lo * oh * ow:hi * oh * ow]
        if not self.direct:
            room = max(0, int(self.SPARSE_MAX_DENSITY * dy2.size))  # longer lists: the GEMMs are faster
            pixel = self.workspace(f"pixel{i}", (room,), np.int32)
            channel = self.workspace(f"channel{i}", (room,), np.int32)
            value = self.workspace(f"value{i}", (room,))
            count, db = self.ops.activation_backward_nonzero(dy2, y, self.act, pixel, channel, value)
            if count >= 0:
                grad_t = self.workspace(f"grad_t{i}", kernel_t.shape)
                grad_t[...] = 0
                part_dx = np.empty((0, 0, 0, 0), x.dtype) if dx is None else dx[lo:hi]
                self.ops.conv2d_sparse_backward(x[lo:hi], pixel, channel, value, count, oh, ow, kernel_t,
                                                kh, kw, sh, sw, pt, pl, grad_t, part_dx)
                return grad_t.T, db
        # dense: the pre-activation gradient in full, then GEMMs over patches a few images at a time
        dz, db = self.ops.bias_activation_backward(dy2, y, self.act, self.workspace(f"dz{i}", dy2.shape))
        kernel = kernel_t.T
        if self.direct:
            dz4 = dz.reshape(hi - lo, oh, ow, -1)
            grad = self.ops.conv2d_direct_backward(x[lo:hi], dz4, dz4, LINEAR, kh, kw, sh, sw, pt, pl)[0]
            grad = grad.reshape(kernel.shape)
        else:
            grad = self.workspace(f"grad{i}", kernel.shape)
            grad[...] = 0
            step_grad = self.workspace(f"step_grad{i}", kernel.shape)
        for start, stop, rows in self._chunks(lo, hi):
            local = slice(rows.start - lo * oh * ow, rows.stop - lo * oh * ow)
            # patches are rebuilt rather than kept from forward: cheaper than a round trip to memory
            cols = self._patches(x, start, stop, i)
            if not self.direct:
                np.matmul(cols.T, dz[local], out=step_grad)
                grad += step_grad
            if dx is not None:
                dcols = np.matmul(dz[local], kernel.T, out=self.workspace(f"dcols{i}", cols.shape))
                self.ops.col2im(dcols, kh, kw, sh, sw, pt, pl, oh, ow, dx[start:stop])
        return grad, db

    def _direct_backward(self, dy4):
        """Weight gradients only (a first layer), the activation's gradient fused in: one pass over dy."""
        kh, kw, sh, sw, pt, pl, _, _ = self._geometry()
        x, y4 = self._x, self._y.reshape(dy4.shape)

        def part(i, lo, hi):
            return self.ops.conv2d_direct_backward(x[lo:hi], dy4[lo:hi], y4[lo:hi], self.act, kh, kw, sh, sw, pt, pl)

        self._add_weight_grads(workers.run(part, len(x), self._work(len(x))))
