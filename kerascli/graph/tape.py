"""A small tape for reverse-mode gradients: what lets a custom layer, loss or metric be written as a
function of primitives and get its gradient without a hand-written backward.

Each primitive takes arrays or ``Var``s. With no ``Var`` among its inputs it
simply computes (a custom metric on plain arrays). Otherwise it computes the
value, and records on its inputs' tape how to send a gradient back to each of
them, next to the forward definition (micrograd's habit). ``Tape.backward``
walks the records in reverse, summing gradients where a value was used more
than once and reducing them over broadcast axes.

The primitives are the methods of ``Primitives`` (``kerascli.api.ops`` and a
call-only layer's ``self.ops``): matmul/gemm, add, subtract, multiply,
divide, negative, power, square, sqrt, exp, log, abs, maximum, minimum,
clip, activation (relu, sigmoid, tanh, softmax, linear), sum, mean, max,
reshape, transpose, expand_dims, concat, take (a slice along an axis) and
where.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from kerascli.ops.contract import BY_NAME


class Var:
    """A value on a tape. ``grad`` holds the gradient after ``Tape.backward`` when ``needs_grad``."""

    # numpy defers to Var's operators (array + var records on the tape), and a numpy function applied to a
    # Var fails loudly instead of silently dropping it from the tape: use the primitives
    __array_ufunc__ = None

    def __init__(self, value, tape: "Tape", needs_grad: bool = True):
        self.value = np.asarray(value)
        self.tape = tape
        self.needs_grad = needs_grad
        self.grad: np.ndarray | None = None

    shape = property(lambda self: self.value.shape)
    dtype = property(lambda self: self.value.dtype)
    ndim = property(lambda self: self.value.ndim)

    def __len__(self):
        return len(self.value)

    def __repr__(self):
        return f"Var(shape={self.shape}, dtype={self.dtype})"

    # operators, so that x * w + b reads as it does in numpy
    def __add__(self, other):
        return PRIMITIVES.add(self, other)

    __radd__ = __add__

    def __sub__(self, other):
        return PRIMITIVES.subtract(self, other)

    def __rsub__(self, other):
        return PRIMITIVES.subtract(other, self)

    def __mul__(self, other):
        return PRIMITIVES.multiply(self, other)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return PRIMITIVES.divide(self, other)

    def __rtruediv__(self, other):
        return PRIMITIVES.divide(other, self)

    def __neg__(self):
        return PRIMITIVES.negative(self)

    def __pow__(self, p):
        return PRIMITIVES.power(self, p)

    def __matmul__(self, other):
        return PRIMITIVES.matmul(self, other)

    def __rmatmul__(self, other):
        return PRIMITIVES.matmul(other, self)

    def __getitem__(self, key):
        return PRIMITIVES.getitem(self, key)


class Tape:
    def __init__(self):
        self.records: list[tuple[Var, list[tuple[Var, Callable]]]] = []
        self.watched: list[Var] = []

    def watch(self, value, needs_grad: bool = True) -> Var:
        """A Var for an input or weight; after backward its ``grad`` is set (zeros if it did not matter)."""
        var = Var(value, self, needs_grad)
        self.watched.append(var)
        return var

    def backward(self, out: Var, seed) -> None:
        """Gradients of sum(out * seed) with respect to every recorded Var, into ``.grad``."""
        out.grad = np.asarray(seed, dtype=out.dtype).copy()
        for result, inputs in reversed(self.records):
            if result.grad is None:
                continue
            for var, send in inputs:
                if not var.needs_grad:
                    continue
                g = _unbroadcast(send(result.grad), var.shape).astype(var.dtype, copy=False)
                var.grad = g if var.grad is None else var.grad + g
        for var in self.watched:
            if var.needs_grad and var.grad is None:
                var.grad = np.zeros(var.shape, var.dtype)

    def clear(self) -> None:
        self.records.clear()
        self.watched.clear()


def _unbroadcast(grad, shape):
    """Sum ``grad`` over the axes broadcasting added or stretched to reach it from ``shape``."""
    grad = np.asarray(grad)
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad.reshape(shape)


def _value(x):
    return x.value if isinstance(x, Var) else np.asarray(x)


def _record(value, inputs: list[tuple[object, Callable]]):
    """The result of a primitive: a plain array, or a Var recorded with its inputs' backward functions."""
    vars_ = [(x, send) for x, send in inputs if isinstance(x, Var)]
    if not vars_:
        return value
    tape = vars_[0][0].tape
    out = Var(value, tape)
    tape.records.append((out, vars_))
    return out


def _softmax(z, axis):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class Primitives:
    """The differentiable primitives. Each accepts arrays, Python numbers or Vars."""

    # ---------------------------------------------------------------- products
    def matmul(self, a, b):
        """a @ b with numpy's rules (a batch of rows times a weight matrix: (..., k) @ (k, n))."""
        av, bv = _value(a), _value(b)
        out = av @ bv

        def to_a(g):
            return g @ np.swapaxes(bv, -1, -2) if bv.ndim > 1 else np.multiply.outer(g, bv)

        def to_b(g):
            if av.ndim == 1:
                return np.multiply.outer(av, g)
            a2, g2 = av.reshape(-1, av.shape[-1]), g.reshape(-1, g.shape[-1]) if g.ndim > 1 else g.reshape(-1, 1)
            return (a2.T @ g2).reshape(bv.shape) if bv.ndim == 2 else (a2.T @ g2)[:, 0]

        return _record(out, [(a, to_a), (b, to_b)])

    def gemm(self, a, b, trans_a: bool = False, trans_b: bool = False):
        """op(a) @ op(b) for 2-D a and b, op transposing where asked."""
        return self.matmul(self.transpose(a) if trans_a else a, self.transpose(b) if trans_b else b)

    # ---------------------------------------------------------------- elementwise
    def add(self, a, b):
        return _record(_value(a) + _value(b), [(a, lambda g: g), (b, lambda g: g)])

    def subtract(self, a, b):
        return _record(_value(a) - _value(b), [(a, lambda g: g), (b, lambda g: -g)])

    def multiply(self, a, b):
        av, bv = _value(a), _value(b)
        return _record(av * bv, [(a, lambda g: g * bv), (b, lambda g: g * av)])

    def divide(self, a, b):
        av, bv = _value(a), _value(b)
        return _record(av / bv, [(a, lambda g: g / bv), (b, lambda g: -g * av / (bv * bv))])

    def negative(self, x):
        return _record(-_value(x), [(x, lambda g: -g)])

    def power(self, x, p: float):
        xv = _value(x)
        return _record(xv ** p, [(x, lambda g: g * p * xv ** (p - 1))])

    def square(self, x):
        xv = _value(x)
        return _record(xv * xv, [(x, lambda g: 2 * g * xv)])

    def sqrt(self, x):
        y = np.sqrt(_value(x))
        return _record(y, [(x, lambda g: g / (2 * y))])

    def exp(self, x):
        y = np.exp(_value(x))
        return _record(y, [(x, lambda g: g * y)])

    def log(self, x):
        xv = _value(x)
        return _record(np.log(xv), [(x, lambda g: g / xv)])

    def abs(self, x):
        xv = _value(x)
        return _record(np.abs(xv), [(x, lambda g: g * np.sign(xv))])

    def maximum(self, a, b):
        av, bv = _value(a), _value(b)
        first = av >= bv  # ties go to the first argument
        return _record(np.maximum(av, bv), [(a, lambda g: g * first), (b, lambda g: g * ~first)])

    def minimum(self, a, b):
        av, bv = _value(a), _value(b)
        first = av <= bv
        return _record(np.minimum(av, bv), [(a, lambda g: g * first), (b, lambda g: g * ~first)])

    def clip(self, x, low: float, high: float):
        xv = _value(x)
        inside = (xv >= low) & (xv <= high)
        return _record(np.clip(xv, low, high), [(x, lambda g: g * inside)])

    def where(self, condition, a, b):
        c = _value(condition).astype(bool)
        return _record(np.where(c, _value(a), _value(b)), [(a, lambda g: g * c), (b, lambda g: g * ~c)])

    def activation(self, x, name: str):
        """One of the activation table's functions by name (relu, sigmoid, tanh, softmax over the last
        axis, linear)."""
        if name not in BY_NAME:
            raise ValueError(f"unknown activation {name!r} (valid: {', '.join(BY_NAME)})")
        xv = _value(x)
        if name == "softmax":
            y = _softmax(xv, -1)
            return _record(y, [(x, lambda g: y * (g - (g * y).sum(axis=-1, keepdims=True)))])
        table = BY_NAME[name]
        flat = xv.reshape(-1, xv.shape[-1]) if xv.ndim else xv.reshape(1, 1)
        y = table.forward(flat).reshape(xv.shape)
        return _record(y, [(x, lambda g: table.backward(np.asarray(g).reshape(flat.shape), y.reshape(flat.shape))
                            .reshape(xv.shape))])

    def relu(self, x):
        return self.activation(x, "relu")

    def sigmoid(self, x):
        return self.activation(x, "sigmoid")

    def tanh(self, x):
        return self.activation(x, "tanh")

    def softmax(self, x):
        return self.activation(x, "softmax")

    # ---------------------------------------------------------------- reductions
    def sum(self, x, axis=None, keepdims: bool = False):
        xv = _value(x)

        def send(g):
            g = np.asarray(g)
            if not keepdims and axis is not None:
                g = np.expand_dims(g, axis)
            return np.broadcast_to(g, xv.shape)

        return _record(xv.sum(axis=axis, keepdims=keepdims), [(x, send)])

    def mean(self, x, axis=None, keepdims: bool = False):
        xv = _value(x)
        count = xv.size if axis is None else np.prod([xv.shape[a] for a in np.atleast_1d(axis)])
        return self.divide(self.sum(x, axis, keepdims), float(count))

    def max(self, x, axis=None, keepdims: bool = False):
        xv = _value(x)
        y = xv.max(axis=axis, keepdims=True)
        first = np.cumsum(xv == y, axis=axis if axis is not None else None).reshape(xv.shape) == 1
        winner = (xv == y) & first  # one winner per reduced slice: the first maximum

        def send(g):
            g = np.asarray(g)
            if not keepdims and axis is not None:
                g = np.expand_dims(g, axis)
            return g * winner

        return _record(y if keepdims else y.squeeze(axis=axis) if axis is not None else y.reshape(()), [(x, send)])

    # ---------------------------------------------------------------- shape
    def reshape(self, x, shape):
        xv = _value(x)
        return _record(xv.reshape(shape), [(x, lambda g: np.reshape(g, xv.shape))])

    def transpose(self, x, axes=None):
        xv = _value(x)
        inverse = None if axes is None else np.argsort(axes)
        return _record(np.transpose(xv, axes), [(x, lambda g: np.transpose(g, inverse))])

    def expand_dims(self, x, axis: int):
        xv = _value(x)
        return _record(np.expand_dims(xv, axis), [(x, lambda g: np.reshape(g, xv.shape))])

    def concat(self, xs, axis: int = -1):
        values = [_value(x) for x in xs]
        cuts = np.cumsum([v.shape[axis] for v in values])[:-1]

        def sender(i):
            return lambda g: np.split(g, cuts, axis=axis)[i]

        return _record(np.concatenate(values, axis=axis), [(x, sender(i)) for i, x in enumerate(xs)])

    def getitem(self, x, key):
        xv = _value(x)

        def send(g):
            out = np.zeros_like(xv, dtype=np.asarray(g).dtype)
            np.add.at(out, key, g)
            return out

        return _record(xv[key], [(x, send)])

    def take(self, x, start: int, stop: int, axis: int = -1):
        """x[..., start:stop, ...] along ``axis``."""
        index = [slice(None)] * _value(x).ndim
        index[axis] = slice(start, stop)
        return self.getitem(x, tuple(index))


PRIMITIVES = Primitives()
PRIMITIVE_NAMES = tuple(name for name in vars(Primitives) if not name.startswith("_"))


class TapeOps:
    """A call-only layer's ``self.ops`` while it runs: the primitives, and every other attribute of the
    backend's Ops (a layer may still call kernels on plain arrays)."""

    def __init__(self, ops):
        self._ops = ops

    def __getattr__(self, name):
        if name in PRIMITIVE_NAMES:
            return getattr(PRIMITIVES, name)
        return getattr(self._ops, name)
