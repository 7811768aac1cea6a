"""MaxPooling2D, AveragePooling2D and their global forms, channels-last."""

from __future__ import annotations

from kerascli.config.params import Param
from kerascli.graph.layer import Layer, ShapeError
from kerascli.layers.conv import spatial_geometry


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


class MaxPooling2D(_Pooling2D):
    def forward(self, x, training):
        out_shape = (x.shape[0],) + self.output_shape
        # inference keeps no places (an empty arg): nothing will route a gradient back
        self._arg = self.workspace("arg", out_shape if training else (0, 0, 0, 0), "int32")
        return self.ops.max_pool2d_forward(x, self._window(), self.out_h, self.out_w, self.workspace("y", out_shape),
                                           self._arg)

    def backward(self, dy):
        dx = self.workspace("dx", (dy.shape[0],) + self.in_shape)
        return self.ops.max_pool2d_backward(dy, self._arg, self._window(), dx)


class AveragePooling2D(_Pooling2D):
    def forward(self, x, training):
        y = self.workspace("y", (x.shape[0],) + self.output_shape)
        return self.ops.avg_pool2d_forward(x, self._window(), self.out_h, self.out_w, y)

    def backward(self, dy):
        return self.ops.avg_pool2d_backward(dy, self._window(), self.workspace("dx", (dy.shape[0],) + self.in_shape))


class GlobalAveragePooling2D(Layer):
    """The mean over every pixel of each channel: (H, W, C) -> (C,), or (1, 1, C) with ``keepdims``."""

    PARAMS = {"keepdims": Param("bool", False)}
    largest = False

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"expects input of shape (height, width, channels), got {tuple(input_shape)}")
        self.in_shape = tuple(input_shape)
        return (1, 1, input_shape[2]) if self.config["keepdims"] else (input_shape[2],)

    def forward(self, x, training):
        out, self._where = self.ops.global_pool2d_forward(x, self.largest)
        return out.reshape((len(x),) + self.output_shape)

    def backward(self, dy):
        return self.ops.global_pool2d_backward(dy.reshape(len(dy), -1), self._where, (len(dy),) + self.in_shape)


class GlobalMaxPooling2D(GlobalAveragePooling2D):
    """The maximum over every pixel of each channel; its gradient goes to that pixel (the first of ties)."""

    largest = True


def _image(input_shape):
    if len(input_shape) != 3:
        raise ShapeError(f"expects input of shape (height, width, channels), got {tuple(input_shape)}")


class ZeroPadding2D(Layer):
    """Zeros around each image: ``padding`` n, [rows, columns] or [[top, bottom], [left, right]]."""

    PARAMS = {"padding": Param("margins2d", [[1, 1], [1, 1]])}

    def build(self, input_shape):
        _image(input_shape)
        (top, bottom), (left, right) = self.config["padding"]
        return (input_shape[0] + top + bottom, input_shape[1] + left + right, input_shape[2])

    def forward(self, x, training):
        return self.ops.pad2d(x, self.config["padding"])

    def backward(self, dy):
        return self.ops.crop2d(dy, self.config["padding"])


class Cropping2D(Layer):
    """Each image without its margins: ``cropping`` n, [rows, columns] or [[top, bottom], [left, right]]."""

    PARAMS = {"cropping": Param("margins2d", [[0, 0], [0, 0]])}

    def build(self, input_shape):
        _image(input_shape)
        (top, bottom), (left, right) = self.config["cropping"]
        h, w = input_shape[0] - top - bottom, input_shape[1] - left - right
        if h < 1 or w < 1:
            raise ShapeError(f"cropping {self.config['cropping']} leaves nothing of {tuple(input_shape)}")
        return (h, w, input_shape[2])

    def forward(self, x, training):
        return self.ops.crop2d(x, self.config["cropping"])

    def backward(self, dy):
        return self.ops.pad2d(dy, self.config["cropping"])


class UpSampling2D(Layer):
    """Each pixel repeated ``size`` times down and across (Keras' nearest interpolation)."""

    PARAMS = {"size": Param("pair", [2, 2], min=1),
              "interpolation": Param("str", "nearest", choices=("nearest",), doc="nearest (bilinear: not yet)")}

    def build(self, input_shape):
        _image(input_shape)
        rows, cols = self.config["size"]
        return (input_shape[0] * rows, input_shape[1] * cols, input_shape[2])

    def forward(self, x, training):
        return self.ops.upsample2d(x, *self.config["size"])

    def backward(self, dy):
        return self.ops.upsample2d_backward(dy, *self.config["size"])


class _Via2D(Layer):
    """A 1-D layer run as its 2-D twin over (steps, 1) images: (samples, steps, channels) in and out."""

    def inner(self):
        """(the 2-D layer class, its config) for this layer's config."""
        raise NotImplementedError

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(f"expects sequences of shape (steps, channels), got {tuple(input_shape)}")
        cls, config = self.inner()
        self._inner = cls(self.name, config)
        self._inner.input_shape = (input_shape[0], 1, input_shape[1])
        self._inner.output_shape = out = tuple(self._inner.setup(self._inner.input_shape))
        return (out[0], out[2]) if len(out) == 3 else out

    def _run(self, method, value):
        self._inner.ops, self._inner.dtype = self.ops, self.dtype
        shape = value.shape
        out = method(value.reshape((len(value), shape[1], 1) + shape[2:]) if value.ndim == 3 else value)
        return out.reshape((len(out), out.shape[1], out.shape[3])) if out.ndim == 4 else out

    def forward(self, x, training):
        return self._run(lambda v: self._inner.forward(v, training), x)

    def backward(self, dy):
        if dy.ndim == 2 and self._inner.output_shape != dy.shape[1:]:  # keepdims: (1, channels) per sample
            dy = dy.reshape((len(dy),) + self._inner.output_shape)
        return self._run(self._inner.backward, dy)


class _Pooling1D(_Via2D):
    batch_parallel = True
    PARAMS = {
        "pool_size": Param("int", 2, min=1),
        "strides": Param("int", None, min=1, nullable=True, doc="defaults to pool_size"),
        "padding": Param("str", "valid", choices=("valid", "same")),
    }

    @classmethod
    def resolve_params(cls, params, error):
        if params["strides"] is None:
            params["strides"] = params["pool_size"]
        return params

    def inner(self):
        c = self.config
        return self.POOL, {"pool_size": [c["pool_size"], 1], "strides": [c["strides"], 1], "padding": c["padding"]}


class MaxPooling1D(_Pooling1D):
    POOL = MaxPooling2D


class AveragePooling1D(_Pooling1D):
    PARAMS = {**_Pooling1D.PARAMS, "pool_size": Param("int", min=1)}  # required, as in Keras
    POOL = AveragePooling2D


class GlobalAveragePooling1D(_Via2D):
    """The mean over every step of each channel: (steps, C) -> (C,), or (1, C) with ``keepdims``."""

    PARAMS = {"keepdims": Param("bool", False)}
    POOL = GlobalAveragePooling2D

    def inner(self):
        return self.POOL, {"keepdims": False}

    def build(self, input_shape):
        out = super().build(input_shape)
        return (1,) + out if self.config["keepdims"] else out

    takes_mask = True  # the mean of the kept steps (a sample with none gives 0)

    def forward(self, x, training):
        self._keep = self.mask
        if self._keep is not None:
            y = self.ops.masked_step_mean(x, self._keep, self.workspace("y", (len(x), x.shape[2])))
        else:
            y = super().forward(x, training)
        return y.reshape((len(x),) + self.output_shape)

    def backward(self, dy):
        if self._keep is not None:
            n, steps, channels = len(dy), self.input_shape[0], self.input_shape[1]
            return self.ops.masked_step_mean_backward(dy.reshape(n, channels), self._keep,
                                                      self.workspace("dx", (n, steps, channels)))
        return super().backward(dy.reshape(len(dy), -1))


class GlobalMaxPooling1D(GlobalAveragePooling1D):
    """The maximum over every step of each channel; its gradient goes to that step (the first of ties)."""

    POOL = GlobalMaxPooling2D
    takes_mask = False  # as Keras' (the mask ends here)


class ZeroPadding1D(_Via2D):
    """Zeros before and after each sequence: ``padding`` n or [before, after]."""

    PARAMS = {"padding": Param("pair", [1, 1], min=0)}

    def inner(self):
        return ZeroPadding2D, {"padding": [list(self.config["padding"]), [0, 0]]}


class Cropping1D(_Via2D):
    """Each sequence without its first and last steps: ``cropping`` n or [before, after]."""

    PARAMS = {"cropping": Param("pair", [1, 1], min=0)}

    def inner(self):
        return Cropping2D, {"cropping": [list(self.config["cropping"]), [0, 0]]}


class UpSampling1D(_Via2D):
    """Each step repeated ``size`` times."""

    PARAMS = {"size": Param("int", 2, min=1)}

    def inner(self):
        return UpSampling2D, {"size": [self.config["size"], 1], "interpolation": "nearest"}
