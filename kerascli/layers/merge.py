"""Keras' merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate): layers with two or
more inputs."""

from __future__ import annotations

from kerascli.config.params import Param
from kerascli.graph.layer import Layer, ShapeError


def either_mask(ops, masks):
    """Keras' merge layers' mask: a step is kept where any input keeps it; no mask where an input has none."""
    if any(m is None for m in masks):
        return None
    if all(m is True for m in masks):  # the model's walk at build time
        return True
    return ops.elementwise_extreme(list(masks), True)[0]


class Add(Layer):
    PARAMS: dict = {}
    n_inputs = 0
    exactly = 0  # a layer that takes a fixed number of inputs (Subtract: 2)

    def build(self, input_shape):
        first = tuple(input_shape[0])
        if self.exactly and len(input_shape) != self.exactly:
            raise ShapeError(f"{self.type_name} takes exactly {self.exactly} inputs, got {len(input_shape)}")
        for shape in input_shape[1:]:
            if tuple(shape) != first:
                shapes = ", ".join(str(tuple(s)) for s in input_shape)
                raise ShapeError(f"{self.type_name} needs inputs of one shape, got {shapes}")
        self._count = len(input_shape)
        return first

    def forward(self, xs, training):
        return self.ops.add_n(xs)

    def backward(self, dy):
        return [dy] * self._count

    def output_mask(self, masks):
        return either_mask(self.ops, masks)


class Subtract(Add):
    """x[0] - x[1]."""

    exactly = 2

    def forward(self, xs, training):
        return xs[0] - xs[1]

    def backward(self, dy):
        return [dy, -dy]


class Average(Add):
    def forward(self, xs, training):
        out = self.ops.add_n(xs)
        out *= out.dtype.type(1.0 / self._count)
        return out

    def backward(self, dy):
        share = dy * dy.dtype.type(1.0 / self._count)
        return [share] * self._count


class Multiply(Add):
    def forward(self, xs, training):
        self._xs = xs
        return self.ops.multiply_n(xs)

    def backward(self, dy):
        # each input's gradient: dy times the product of the others
        return [self.ops.multiply_n([dy] + [x for j, x in enumerate(self._xs) if j != i]) for i in range(self._count)]


class Maximum(Add):
    """The elementwise maximum; its gradient goes to the input that gave it (the first of ties)."""

    largest = True

    def forward(self, xs, training):
        out, self._which = self.ops.elementwise_extreme(xs, self.largest)
        return out

    def backward(self, dy):
        return self.ops.route_by_index(dy, self._which, self._count)


class Minimum(Maximum):
    largest = False


class Concatenate(Layer):
    PARAMS = {"axis": Param("int", -1, min=-8, max=8, doc="axis counted with the batch axis, as in Keras")}
    n_inputs = 0

    def build(self, input_shape):
        rank = len(input_shape[0])
        axis = self.config["axis"]
        axis = axis + rank + 1 if axis < 0 else axis
        if not 1 <= axis <= rank:
            raise ShapeError(f"axis {self.config['axis']} is out of range for inputs of rank {rank} (+ batch)")
        self._axis = axis
        for shape in input_shape:
            if len(shape) != rank or any(a != b for i, (a, b) in enumerate(zip(shape, input_shape[0])) if i != axis - 1):
                shapes = ", ".join(str(tuple(s)) for s in input_shape)
                raise ShapeError(f"Concatenate needs shapes equal except on axis {self.config['axis']}, got {shapes}")
        self._sizes = [s[axis - 1] for s in input_shape]
        out = list(input_shape[0])
        out[axis - 1] = sum(self._sizes)
        return tuple(out)

    def forward(self, xs, training):
        return self.ops.concatenate(xs, self._axis)

    def backward(self, dy):
        return self.ops.split(dy, self._sizes, self._axis)

    def output_mask(self, masks):  # along the features: as the other merge layers (Keras' any over them)
        return either_mask(self.ops, masks)

    def mask_refused(self, masks):
        if self._axis != len(self.input_shape[0]):
            return "kerascli's Concatenate takes masks only along the last axis"
        return None


class Dot(Layer):
    """Per sample, the dot product of two inputs along ``axes`` (one for both, or one each; counted with the
    batch axis as 0, as in Keras): (d,) and (d,) -> (1,); (t, d) and (u, d) with axes 2 -> (t, u)."""

    PARAMS = {"axes": Param("int_list", doc="an axis, or [axis of the first, axis of the second]"),
              "normalize": Param("bool", False, choices=None, doc="not yet: only false")}
    n_inputs = 0
    input_count = (2, 2)

    def build(self, input_shape):
        if self.config["normalize"]:
            raise ShapeError("normalize: true is not supported yet")
        a, b = (tuple(s) for s in input_shape)
        axes = self.config["axes"]
        axes = axes * 2 if isinstance(axes, list) and len(axes) == 1 else axes
        axes = [axes, axes] if isinstance(axes, int) else axes
        if len(axes) != 2:
            raise ShapeError(f"axes must be one axis or two, got {self.config['axes']}")
        self._axes = [ax % (len(s) + 1) - 1 for ax, s in zip(axes, (a, b))]
        if min(self._axes) < 0 or max(len(a), len(b)) > 2:
            raise ShapeError(f"expects inputs of rank 1 or 2 per sample and feature axes, got {a}, {b}, axes {axes}")
        if a[self._axes[0]] != b[self._axes[1]]:
            raise ShapeError(f"the axes have different sizes: {a[self._axes[0]]} and {b[self._axes[1]]}")
        out = tuple(d for i, d in enumerate(a) if i != self._axes[0]) + tuple(
            d for i, d in enumerate(b) if i != self._axes[1])
        return out or (1,)

    def forward(self, xs, training):
        self._xs = xs
        y = self.ops.batched_dot(xs[0], xs[1], self._axes)
        return y.reshape((len(y),) + self.output_shape)

    def backward(self, dy):
        a, b = self._xs
        shape = (len(dy),) + tuple(d for i, d in enumerate(a.shape[1:]) if i != self._axes[0]) + tuple(
            d for i, d in enumerate(b.shape[1:]) if i != self._axes[1])
        return list(self.ops.batched_dot_backward(dy.reshape(shape), a, b, self._axes))
