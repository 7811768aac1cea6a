"""Dense, Activation, Dropout, Flatten, Reshape, Rescaling."""

from __future__ import annotations

import math
from dataclasses import replace

from kerascli.config.params import (
    RATE,
    REQUIRED,
    Param,
    constraint_param,
    kernel_and_bias_params,
    regularizer_param,
)
from kerascli.graph.layer import ActivatedLayer, Layer, ShapeError
from kerascli.registry import ACTIVATIONS, INITIALIZERS


class Dense(ActivatedLayer):
    """y = activation(x @ kernel + bias) over the last axis; kernel is (in, units)."""

    mask_passes = True  # Keras keeps the mask of its input on its output

    PARAMS = {
        "units": Param("int", min=1),
        "activation": Param("str", "linear", choices=ACTIVATIONS),
        "use_bias": Param("bool", True),
        **kernel_and_bias_params(),
    }

    def build(self, input_shape):
        c = self.config
        self.in_features = input_shape[-1]
        units = c["units"]
        self.add_kernel_and_bias((self.in_features, units), units)
        return tuple(input_shape[:-1]) + (units,)

    def forward(self, x, training):
        x2 = x.reshape(-1, self.in_features)
        units = self.config["units"]
        y = self.ops.dense_forward(x2, self.params["kernel"], self.bias_or_none(x.dtype), self.act, self.workspace("y", (len(x2), units)))
        self._x2, self._y, self._xshape = x2, y, x.shape
        return self.activate(y).reshape(x.shape[:-1] + (units,))

    def backward(self, dy):
        dz, _ = self.activation_backward(dy.reshape(self._y.shape))  # fills the bias gradient
        dx = self.workspace("dx", self._x2.shape) if self.need_input_grad else None
        grad_kernel = self.grads["kernel"] if self.trainable else None  # frozen: no weight gradient to form
        self.ops.dense_backward(self._x2, self.params["kernel"], dz, grad_kernel, dx)
        return None if dx is None else dx.reshape(self._xshape)


class Activation(ActivatedLayer):
    mask_passes = True  # Keras keeps the mask of its input on its output

    PARAMS = {"activation": Param("str", choices=ACTIVATIONS)}

    def build(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training):
        x2 = x.reshape(-1, self.output_shape[-1])
        if self.act == 0:  # linear, or an own-step activation: no copy before it
            self._y = x2
            return self.activate(x2).reshape(x.shape)
        y = self.ops.bias_activation_forward(x2, self.ops.no_bias(x.dtype), self.act, self.workspace("y", x2.shape))
        self._y = y
        return y.reshape(x.shape)

    def backward(self, dy):
        dz, _ = self.activation_backward(dy.reshape(self._y.shape))
        return dz.reshape(dy.shape)


class Dropout(Layer):
    """Inverted dropout: in training, zero each value with probability ``rate`` and scale the rest."""

    mask_passes = True  # Keras keeps the mask of its input on its output
    draws_random = True

    PARAMS = {"rate": replace(RATE, default=REQUIRED)}

    def build(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training):
        rate = self.config["rate"]
        self._u = None
        if not training or rate == 0.0:
            return x
        self._u = self.ops.uniform(self.rng, x.shape, x.dtype, out=self.workspace("u", x.shape))
        return self.ops.dropout(x, self._u, rate)

    def backward(self, dy):
        if self._u is None:
            return dy
        return self.ops.dropout(dy, self._u, self.config["rate"])


class SpatialDropout1D(Dropout):
    """Dropout of whole channels: one draw per sample and channel, shared by every step (or pixel)."""

    mask_passes = False  # Keras' SpatialDropout does not support masking

    RANK = 2

    def build(self, input_shape):
        if len(input_shape) != self.RANK:
            raise ShapeError(f"expects input of rank {self.RANK} per sample, got {tuple(input_shape)}")
        return tuple(input_shape)

    def forward(self, x, training):
        rate = self.config["rate"]
        self._mask = None
        if not training or rate == 0.0:
            return x
        shape = (len(x),) + (1,) * (x.ndim - 2) + (x.shape[-1],)
        self._mask = self.ops.dropout_mask(self.rng, shape, x.dtype, rate)
        return self.ops.scale_by(x, self._mask)

    def backward(self, dy):
        return dy if self._mask is None else self.ops.scale_by(dy, self._mask)


class SpatialDropout2D(SpatialDropout1D):
    RANK = 3


class GaussianNoise(Layer):
    """In training, x + normal noise of standard deviation ``stddev``; at inference, x."""

    mask_passes = True  # Keras keeps the mask of its input on its output
    draws_random = True

    PARAMS = {"stddev": Param("float", min=0.0)}

    def build(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training):
        if not training or self.config["stddev"] == 0:
            return x
        return x + self.ops.normal(self.rng, x.shape, x.dtype, 0.0, self.config["stddev"])

    def backward(self, dy):
        return dy


class GaussianDropout(Layer):
    """In training, x times normal noise of mean 1 and standard deviation sqrt(rate / (1 - rate))."""

    mask_passes = True  # Keras keeps the mask of its input on its output
    draws_random = True

    PARAMS = {"rate": replace(RATE, default=REQUIRED)}

    def build(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training):
        rate = self.config["rate"]
        self._noise = None
        if not training or rate == 0:
            return x
        self._noise = self.ops.normal(self.rng, x.shape, x.dtype, 1.0, math.sqrt(rate / (1 - rate)))
        return self.ops.scale_by(x, self._noise)

    def backward(self, dy):
        return dy if self._noise is None else self.ops.scale_by(dy, self._noise)


class AlphaDropout(GaussianDropout):
    """Dropout that keeps selu's mean and variance: dropped values set to selu's negative saturation, then
    an affine correction (Keras' definition)."""

    SATURATION = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946

    def forward(self, x, training):
        rate = self.config["rate"]
        self._noise = None
        if not training or rate == 0:
            return x
        kept = (self.ops.uniform(self.rng, x.shape, x.dtype) >= rate).astype(x.dtype)
        alpha_p = self.SATURATION
        a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
        self._noise = self.ops.scale_by(kept, a)
        return (a * (x * kept + (1 - kept) * alpha_p) - a * alpha_p * rate).astype(x.dtype)


class Flatten(Layer):
    PARAMS: dict = {}

    def build(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training):
        self._xshape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._xshape)


class Reshape(Layer):
    PARAMS = {"target_shape": Param("shape", min=-1, doc="shape without the batch axis; one entry may be -1")}

    def build(self, input_shape):
        size = math.prod(input_shape)
        target = list(self.config["target_shape"])
        known = math.prod(t for t in target if t != -1)
        if -1 in target:
            if size % known:
                raise ShapeError(f"cannot reshape input of shape {tuple(input_shape)} ({size} values) to {tuple(target)}")
            target[target.index(-1)] = size // known
        elif known != size:
            raise ShapeError(
                f"cannot reshape input of shape {tuple(input_shape)} ({size} values) to {tuple(target)} ({known} values)"
            )
        self._target = tuple(target)
        return self._target

    def forward(self, x, training):
        self._xshape = x.shape
        return x.reshape((x.shape[0],) + self._target)

    def backward(self, dy):
        return dy.reshape(self._xshape)


class Rescaling(Layer):
    """y = x * scale + offset, e.g. scale: 0.0625 maps 0..16 pixels to 0..1."""

    mask_passes = True  # Keras keeps the mask of its input on its output

    PARAMS = {"scale": Param("float"), "offset": Param("float", 0.0)}

    def build(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training):
        return self.ops.scale_shift(x, self.config["scale"], self.config["offset"])

    def backward(self, dy):
        return self.ops.scale_shift(dy, self.config["scale"], 0.0)


class Masking(Layer):
    """Keras' Masking: a step whose every feature equals ``mask_value`` is padding; it is set to 0 and a mask
    marking it goes to the layers after (kerascli.graph.masks), as an Embedding's ``mask_zero`` does."""

    PARAMS = {"mask_value": Param("float", 0.0)}
    makes_mask = True

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(f"expects sequences of shape (steps, features), got {tuple(input_shape)}")
        return tuple(input_shape)

    def forward(self, x, training):
        self._keep = self.ops.mask_from_values(x, self.config["mask_value"],
                                               self.workspace("mask", x.shape[:2]))
        y = self.workspace("y", x.shape)
        self.ops.assign(y, x)
        self.ops.zero_masked_steps(y, self._keep)
        return y

    def backward(self, dy):
        dx = self.workspace("dx", dy.shape)
        self.ops.assign(dx, dy)
        self.ops.zero_masked_steps(dx, self._keep)
        return dx

    def output_mask(self, masks):
        return self._keep


class Identity(Layer):
    """Its input, as it is."""

    mask_passes = True  # Keras keeps the mask of its input on its output

    PARAMS: dict = {}

    def build(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training):
        return x

    def backward(self, dy):
        return dy


class Permute(Layer):
    """The per-sample axes reordered: ``dims`` counts them from 1, as Keras does (the batch axis stays)."""

    PARAMS = {"dims": Param("shape", doc="a permutation of 1..rank")}

    def build(self, input_shape):
        dims = list(self.config["dims"])
        if sorted(dims) != list(range(1, len(input_shape) + 1)):
            raise ShapeError(f"dims {dims} is not a permutation of 1..{len(input_shape)} for input "
                             f"{tuple(input_shape)}")
        self._axes = [d - 1 for d in dims]
        self._back = [self._axes.index(i) for i in range(len(dims))]
        return tuple(input_shape[a] for a in self._axes)

    def forward(self, x, training):
        return self.ops.transpose_samples(x, self._axes)

    def backward(self, dy):
        return self.ops.transpose_samples(dy, self._back)


class RepeatVector(Layer):
    """(features,) -> (n, features)."""

    PARAMS = {"n": Param("int", min=1)}

    def build(self, input_shape):
        if len(input_shape) != 1:
            raise ShapeError(f"expects one vector per sample, got input of shape {tuple(input_shape)}")
        return (self.config["n"], input_shape[0])

    def forward(self, x, training):
        return self.ops.repeat_vector(x, self.config["n"])

    def backward(self, dy):
        return dy.sum(axis=1)


class Embedding(Layer):
    """Integer ids (samples, ...) -> their rows of ``embeddings`` (input_dim, output_dim)."""

    PARAMS = {
        "input_dim": Param("int", min=1, doc="the number of ids (ids run from 0 to input_dim - 1)"),
        "output_dim": Param("int", min=1),
        "embeddings_initializer": Param("typed", "random_uniform", choices=INITIALIZERS),  # Keras: "uniform"
        "embeddings_regularizer": regularizer_param(),
        "embeddings_constraint": constraint_param(),
        "mask_zero": Param("bool", False, doc="id 0 is padding: a mask for the layers after (graph/masks.py)"),
    }

    @property
    def makes_mask(self) -> bool:
        return self.config["mask_zero"]

    def output_mask(self, masks):
        if not self.config["mask_zero"]:
            return None
        return self.ops.mask_from_ids(self._ids, self.workspace("mask", self._ids.shape))

    def build(self, input_shape):
        c = self.config
        self.add_weight("embeddings", (c["input_dim"], c["output_dim"]), c["embeddings_initializer"],
                        regularizer=c["embeddings_regularizer"], constraint=c["embeddings_constraint"])
        return tuple(input_shape) + (c["output_dim"],)

    def forward(self, x, training):
        self._ids = self.ops.embedding_ids(x, self.config["input_dim"], self.name)
        return self.ops.gather_rows(self.params["embeddings"], self._ids)

    def backward(self, dy):
        if "embeddings" in self.grads:
            width = self.config["output_dim"]
            self.ops.scatter_add_rows(self.grads["embeddings"], self._ids.reshape(-1), dy.reshape(-1, width))
        return None  # ids have no gradient
