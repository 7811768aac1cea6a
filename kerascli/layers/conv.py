"""Conv2D, Conv1D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D and SeparableConv1D, channels-last:
shapes and weights here, the computation in the Ops (kerascli/ops/algorithms/conv.py)."""

from __future__ import annotations

from kerascli.config.params import (
    Param,
    constraint_param,
    kernel_and_bias_params,
    regularizer_param,
)
from kerascli.graph.layer import ActivatedLayer, ShapeError
from kerascli.ops import conv_geometry
from kerascli.ops.contract import Conv2DGeometry
from kerascli.registry import ACTIVATIONS, INITIALIZERS


def window_geometry(layer_name, input_shape, config) -> Conv2DGeometry:
    """Where a 2-D layer's windows fall, from its kernel_size, strides, padding and dilation_rate arguments
    (a dilated window spans (k - 1) * dilation + 1 pixels, as Keras')."""
    kh, kw = config["kernel_size"]
    sh, sw = config["strides"]
    dh, dw = config.get("dilation_rate", (1, 1))
    span = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    out_h, out_w, pad_top, pad_left = spatial_geometry(layer_name, input_shape, span, (sh, sw), config["padding"])
    return Conv2DGeometry(kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, input_shape[2])


def check_dilation(strides, dilation) -> None:
    """Keras refuses strides and dilation both above 1."""
    if max(strides) > 1 and max(dilation) > 1:
        raise ShapeError(f"strides {list(strides)} and dilation_rate {list(dilation)}: one of them must be 1 "
                         "(as in Keras)")


def check_groups(channels, filters, groups) -> None:
    if channels % groups or filters % groups:
        raise ShapeError(f"groups: {groups} must divide both the input channels ({channels}) and filters "
                         f"({filters})")


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



def steps_geometry(layer_name, input_shape, config) -> tuple[Conv2DGeometry, int]:
    """(the geometry over (steps, 1) images, the zeros ``causal`` padding puts before the first step) of a 1-D
    window layer, from its kernel_size, strides, dilation_rate and padding."""
    if len(input_shape) != 2:
        raise ShapeError(f"expects sequences of shape (steps, channels), got {tuple(input_shape)}")
    steps, channels = input_shape
    k, s, d = config["kernel_size"], config["strides"], config["dilation_rate"]
    check_dilation((s,), (d,))
    span = (k - 1) * d + 1
    causal = span - 1 if config["padding"] == "causal" else 0
    out, _, pad_top, _ = spatial_geometry(layer_name, (steps + causal, 1, channels), (span, 1), (s, 1),
                                          "valid" if causal else config["padding"])
    return Conv2DGeometry(k, 1, s, 1, pad_top, 0, out, 1, channels), causal

class Conv2D(ActivatedLayer):
    """A 2-D convolution, channels-last: kernel (kh, kw, in / groups, filters) as Keras'. Without dilation
    and groups it runs on the Ops' convolution kernels (im2col + GEMM, or direct); with ``dilation_rate``
    or ``groups`` other than 1 on host numpy (windows and einsum: refused on the cuda backend)."""

    batch_parallel = True
    PARAMS = {
        "filters": Param("int", min=1),
        "kernel_size": Param("pair", min=1),
        "strides": Param("pair", [1, 1], min=1),
        "padding": Param("str", "valid", choices=("valid", "same")),
        "dilation_rate": Param("pair", [1, 1], min=1),
        "groups": Param("int", 1, min=1),
        "activation": Param("str", "linear", choices=ACTIVATIONS),
        "use_bias": Param("bool", True),
        **kernel_and_bias_params(),
    }

    pool = None  # the MaxPooling2D after this layer, when this layer does its work too (graph/fusion.py)
    inference_pool = None  # ... only in inference

    @property
    def inference_output_shape(self):
        pool = self.pool or self.inference_pool
        return self.output_shape if pool is None else pool.output_shape

    def build(self, input_shape):
        c = self.config
        self.geometry = g = window_geometry(self.name, input_shape, c)
        self._set_windows(c["strides"], c["dilation_rate"], input_shape[2], c["filters"], c["groups"])
        self.add_kernel_and_bias((g.kh, g.kw, input_shape[2] // c["groups"], c["filters"]), c["filters"])
        return (g.out_h, g.out_w, c["filters"])

    def _set_windows(self, strides, dilation, channels, filters, groups):
        check_dilation(strides, dilation)
        check_groups(channels, filters, groups)
        self.dilation, self.groups = tuple(dilation), groups
        self.windowed = self.dilation != (1, 1) or groups != 1  # the host path: no Ops kernels for these yet
        self.host_only = self.windowed
        self.host_only_reason = "dilation_rate or groups other than 1"

    def buffer_bytes(self, batch, threads, itemsize):
        if self.windowed:
            return super().buffer_bytes(batch, threads, itemsize)
        return {**super().buffer_bytes(batch, threads, itemsize),
                **self.ops.conv2d_workspace_bytes(self.geometry, self.config["filters"], batch, threads, itemsize)}

    def _kernel(self):
        """The kernel as (kh, kw, in, filters), what the kernels take."""
        return self.params["kernel"]

    def _kernel_grad(self):
        return self.grads["kernel"]

    def forward(self, x, training):
        if self.windowed:
            return self._windowed_forward(x)
        pool = self.pool if self.pool is not None or training else self.inference_pool
        if pool is not None:
            n = len(x)
            out = pool.workspace("y", (n,) + pool.output_shape)
            arg = pool.workspace("arg", (n,) + pool.output_shape, "int32")
            ph, pw = pool.config["pool_size"]
            self.ops.conv2d_maxpool_forward(x, self._kernel(), self.bias_or_none(x.dtype), self.act, self.geometry,
                                            ph, pw, out, arg, self.workspace, inference=not training)
            self._x, self._pooled, self._arg = x, out, arg
            return out
        y4 = self.ops.conv2d_forward(x, self._kernel(), self.bias_or_none(x.dtype), self.act, self.geometry,
                                     self.workspace, inference=not training)
        self._x, self._y = x, y4
        return self.activate(y4.reshape(-1, self.config["filters"])).reshape(y4.shape)

    def backward(self, dy):
        if self.windowed:
            return self._windowed_backward(dy)
        grad_bias = self.grads.get("bias")
        if self.pool is not None:
            ph, pw = self.pool.config["pool_size"]
            self.ops.conv2d_maxpool_backward(self._x, dy, self._pooled, self._arg, self.act, self.geometry, ph, pw,
                                             self._kernel_grad(), grad_bias)
            return None
        dy = self.deactivate(dy.reshape(-1, self.config["filters"])).reshape(dy.shape)
        return self.ops.conv2d_backward(self._x, self._y, dy, self._kernel(), self.act, self.geometry,
                                        self._kernel_grad(), grad_bias, self.need_input_grad, self.workspace)


    def _windowed_forward(self, x):
        self._x = x
        return self.bias_and_activate(self.ops.grouped_conv2d_forward(x, self._kernel(), self.geometry,
                                                                      self.dilation, self.groups))

    def _windowed_backward(self, dy):
        dz2 = self.activation_backward(dy.reshape(-1, self.config["filters"]))[0]
        dz = dz2.reshape(dy.shape)
        grad, dx = self.ops.grouped_conv2d_backward(self._x, dz, self._kernel(), self.geometry,
                                                    self.need_input_grad, self.dilation, self.groups)
        if "kernel" in self.grads:
            self._kernel_grad()[...] = grad
        return dx


class Conv1D(Conv2D):
    """A convolution over steps, channels-last: (steps, channels) -> (steps', filters); kernel (k, in, filters)
    as Keras' (in / groups with ``groups``). Runs as a Conv2D over (steps, 1) images; ``causal`` padding pads
    (k - 1) * dilation_rate zeros before the first step."""

    PARAMS = {
        **Conv2D.PARAMS,
        "kernel_size": Param("int", min=1),
        "strides": Param("int", 1, min=1),
        "padding": Param("str", "valid", choices=("valid", "same", "causal")),
        "dilation_rate": Param("int", 1, min=1),
    }

    def build(self, input_shape):
        c = self.config
        steps, channels = input_shape[0], input_shape[-1]
        k, s, d = c["kernel_size"], c["strides"], c["dilation_rate"]
        self.geometry, self._causal = steps_geometry(self.name, input_shape, c)
        self._set_windows((s, 1), (d, 1), channels, c["filters"], c["groups"])
        self.add_kernel_and_bias((k, channels // c["groups"], c["filters"]), c["filters"])
        self._steps = steps
        return (self.geometry.out_h, c["filters"])

    def _kernel(self):
        k, channels, filters = self.params["kernel"].shape
        return self.params["kernel"].reshape(k, 1, channels, filters)

    def _kernel_grad(self):
        return self.grads["kernel"].reshape(self._kernel().shape)

    def forward(self, x, training):
        x4 = x.reshape(len(x), self._steps, 1, self.geometry.channels)
        if self._causal:
            x4 = self.ops.pad2d(x4, [[self._causal, 0], [0, 0]])
        y4 = super().forward(x4, training)
        return y4.reshape(len(x), self.geometry.out_h, self.config["filters"])

    def backward(self, dy):
        dx4 = super().backward(dy.reshape(len(dy), self.geometry.out_h, 1, self.config["filters"]))
        if dx4 is None:
            return None
        if self._causal:
            dx4 = self.ops.crop2d(dx4, [[self._causal, 0], [0, 0]])
        return dx4.reshape(len(dy), self._steps, self.geometry.channels)


class DepthwiseConv2D(ActivatedLayer):
    """Each input channel convolved with its own ``depth_multiplier`` filters; kernel (kh, kw, in, multiplier)
    and outputs in Keras' order. Host numpy (windows and einsum)."""

    host_only = True
    PARAMS = {
        "kernel_size": Param("pair", min=1),
        "strides": Param("pair", [1, 1], min=1),
        "padding": Param("str", "valid", choices=("valid", "same")),
        "depth_multiplier": Param("int", 1, min=1),
        "dilation_rate": Param("pair", [1, 1], min=1),
        "activation": Param("str", "linear", choices=ACTIVATIONS),
        "use_bias": Param("bool", True),
        "depthwise_initializer": Param("typed", "glorot_uniform", choices=INITIALIZERS),
        "bias_initializer": Param("typed", "zeros", choices=INITIALIZERS),
        "depthwise_regularizer": regularizer_param(),
        "bias_regularizer": regularizer_param(),
        "depthwise_constraint": constraint_param(),
        "bias_constraint": constraint_param(),
    }
    DEPTHWISE = "kernel"  # the depthwise kernel's weight name (SeparableConv2D: depthwise_kernel)

    def build(self, input_shape):
        c = self.config
        self.geometry = g = window_geometry(self.name, input_shape, c)
        check_dilation(c["strides"], c["dilation_rate"])
        self.dilation = tuple(c["dilation_rate"])
        self.add_weight(self.DEPTHWISE, (g.kh, g.kw, input_shape[2], c["depth_multiplier"]), c["depthwise_initializer"],
                        regularizer=c["depthwise_regularizer"], constraint=c["depthwise_constraint"])
        return self.build_rest(input_shape, (g.out_h, g.out_w, input_shape[2] * c["depth_multiplier"]))

    def build_rest(self, input_shape, depthwise_shape):
        c = self.config
        if c["use_bias"]:
            self.add_weight("bias", (depthwise_shape[2],), c["bias_initializer"], regularizer=c["bias_regularizer"],
                            constraint=c["bias_constraint"])
        return depthwise_shape

    def _depthwise_kernel(self):
        """The depthwise kernel as (kh, kw, in, multiplier), what the algorithms take."""
        return self.params[self.DEPTHWISE]

    def forward(self, x, training):
        self._x = x
        z = self.ops.depthwise_conv2d_forward(x, self._depthwise_kernel(), self.geometry, self.dilation)
        return self.finish(z.reshape(-1, z.shape[-1])).reshape((len(x),) + self.output_shape)

    def finish(self, z2):
        """Bias and activation after the depthwise part."""
        return self.bias_and_activate(z2)

    def backward(self, dy):
        dz = self.unfinish(dy.reshape(-1, dy.shape[-1]))
        return self.depthwise_backward(dz)

    def unfinish(self, dy2):
        return self.activation_backward(dy2)[0]

    def depthwise_backward(self, dz2):
        g = self.geometry
        dz = dz2.reshape(len(self._x), g.out_h, g.out_w, -1)
        grad, dx = self.ops.depthwise_conv2d_backward(self._x, dz, self._depthwise_kernel(), g,
                                                      self.need_input_grad, self.dilation)
        if self.DEPTHWISE in self.grads:
            self.grads[self.DEPTHWISE][...] = grad.reshape(self.grads[self.DEPTHWISE].shape)
        return dx


class SeparableConv2D(DepthwiseConv2D):
    """A depthwise convolution, then a 1x1 convolution to ``filters`` (pointwise_kernel (1, 1, in * multiplier,
    filters)), then bias and activation, as Keras'."""

    PARAMS = {
        "filters": Param("int", min=1),
        **DepthwiseConv2D.PARAMS,
        "pointwise_initializer": Param("typed", "glorot_uniform", choices=INITIALIZERS),
        "pointwise_regularizer": regularizer_param(),
        "pointwise_constraint": constraint_param(),
    }
    DEPTHWISE = "depthwise_kernel"
    POINTWISE_LEAD = (1, 1)  # the pointwise kernel's leading 1s: (1, 1, in * multiplier, filters) as Keras'

    def build_rest(self, input_shape, depthwise_shape):
        c = self.config
        self.add_weight("pointwise_kernel", self.POINTWISE_LEAD + (depthwise_shape[2], c["filters"]),
                        c["pointwise_initializer"],
                        regularizer=c["pointwise_regularizer"], constraint=c["pointwise_constraint"])
        if c["use_bias"]:
            self.add_weight("bias", (c["filters"],), c["bias_initializer"], regularizer=c["bias_regularizer"],
                            constraint=c["bias_constraint"])
        return depthwise_shape[:2] + (c["filters"],)

    def finish(self, z2):
        self._depthwise = z2
        pointwise = self.params["pointwise_kernel"].reshape(z2.shape[1], -1)
        y = self.ops.dense_forward(z2, pointwise, self.bias_or_none(z2.dtype), self.act,
                                   self.workspace("y", (len(z2), pointwise.shape[1])))
        self._y = y
        return self.activate(y)

    def unfinish(self, dy2):
        dz = self.activation_backward(dy2)[0]
        pointwise = self.params["pointwise_kernel"].reshape(self._depthwise.shape[1], -1)
        d_depthwise = self.workspace("d_depthwise", self._depthwise.shape)
        grad = self.grads["pointwise_kernel"].reshape(pointwise.shape) if "pointwise_kernel" in self.grads else None
        self.ops.dense_backward(self._depthwise, pointwise, dz, grad, d_depthwise)
        return d_depthwise



class SeparableConv1D(SeparableConv2D):
    """SeparableConv2D over steps: (steps, channels) -> (steps', filters); depthwise_kernel (k, in, multiplier),
    pointwise_kernel (1, in * multiplier, filters) as Keras'. Runs as SeparableConv2D over (steps, 1) images
    (padding valid or same: Keras' has no causal)."""

    PARAMS = {
        **SeparableConv2D.PARAMS,
        "kernel_size": Param("int", min=1),
        "strides": Param("int", 1, min=1),
        "dilation_rate": Param("int", 1, min=1),
    }
    POINTWISE_LEAD = (1,)

    def build(self, input_shape):
        c = self.config
        self.geometry, _ = steps_geometry(self.name, input_shape, c)
        steps, channels = input_shape
        k, d = c["kernel_size"], c["dilation_rate"]
        self.dilation, self._steps = (d, 1), steps
        self.add_weight(self.DEPTHWISE, (k, channels, c["depth_multiplier"]), c["depthwise_initializer"],
                        regularizer=c["depthwise_regularizer"], constraint=c["depthwise_constraint"])
        multiplied = channels * c["depth_multiplier"]
        out_h, _, filters = self.build_rest(input_shape, (self.geometry.out_h, 1, multiplied))
        return (out_h, filters)

    def _depthwise_kernel(self):
        k, channels, multiplier = self.params[self.DEPTHWISE].shape
        return self.params[self.DEPTHWISE].reshape(k, 1, channels, multiplier)

    def forward(self, x, training):
        return super().forward(x.reshape(len(x), self._steps, 1, self.geometry.channels), training)

    def backward(self, dy):
        dx4 = super().backward(dy)
        return None if dx4 is None else dx4.reshape(len(dy), self._steps, self.geometry.channels)

def transpose_geometry(size, kernel, stride, dilation, padding, output_padding):
    """(output size, cropped from the start) of a transposed convolution along one axis, by Keras' rules
    (as its JAX and TensorFlow backends: the output is ``size * stride`` for same padding,
    ``(size - 1) * stride + max(span, stride)`` for valid, plus ``output_padding`` where given)."""
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        before, after = span - 1, span - 1 + extra
    else:
        total = stride + span - 2 if output_padding is None else span + span % 2 - 2 + output_padding
        before = min(total // 2 + total % 2, span - 1)
        after = total - before
    return (size - 1) * stride + before + after - span + 2, span - 1 - before


class Conv2DTranspose(ActivatedLayer):
    """The transposed convolution (sometimes called deconvolution): each input pixel spreads over a window
    of the output, ``strides`` apart, so the image grows. Kernel (kh, kw, filters, in) as Keras'. Host numpy
    (refused on the cuda backend)."""

    host_only = True
    PARAMS = {  # Conv2D's but groups, and output_padding
        **{name: param for name, param in Conv2D.PARAMS.items() if name != "groups"},
        "output_padding": Param("pair", None, min=0, nullable=True, doc="each below its stride"),
    }

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"expects input of shape (height, width, channels), got {tuple(input_shape)}")
        c = self.config
        check_dilation(c["strides"], c["dilation_rate"])
        padding_out = c["output_padding"] or (None, None)
        if c["output_padding"] is not None and any(p >= s for p, s in zip(c["output_padding"], c["strides"])):
            raise ShapeError(f"output_padding {c['output_padding']} must be below strides {c['strides']} "
                             "along each axis (as in Keras)")
        axes = [transpose_geometry(n, k, s, d, c["padding"], p) for n, k, s, d, p in
                zip(input_shape[:2], c["kernel_size"], c["strides"], c["dilation_rate"], padding_out)]
        (out_h, top), (out_w, left) = axes
        if out_h < 1 or out_w < 1:
            raise ShapeError(f"gives an empty output ({out_h}x{out_w}) for input {tuple(input_shape)}")
        kh, kw = c["kernel_size"]
        # the convolution whose input gradient this layer computes: its windows over the output, one per
        # input pixel, strides apart, from (top, left) of the uncropped output
        self.geometry = Conv2DGeometry(kh, kw, *c["strides"], top, left, *input_shape[:2], c["filters"])
        self._out_hw = (out_h, out_w)
        self.add_kernel_and_bias((kh, kw, c["filters"], input_shape[2]), c["filters"])
        return (out_h, out_w, c["filters"])

    def forward(self, x, training):
        c = self.config
        self._x = x
        return self.bias_and_activate(self.ops.conv2d_transpose_forward(
            x, self.params["kernel"], self.geometry, c["dilation_rate"], self._out_hw))

    def backward(self, dy):
        c = self.config
        dz = self.activation_backward(dy.reshape(-1, c["filters"]))[0].reshape(dy.shape)
        grad, dx = self.ops.conv2d_transpose_backward(self._x, dz, self.params["kernel"], self.geometry,
                                                      c["dilation_rate"], self.need_input_grad)
        if "kernel" in self.grads:
            self.grads["kernel"][...] = grad
        return dx
