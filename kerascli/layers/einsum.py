"""EinsumDense: a dense layer whose product is an einsum equation, as Keras'."""

from __future__ import annotations

import re
import string

from kerascli.config.params import Param, kernel_and_bias_params
from kerascli.graph.layer import ActivatedLayer, ShapeError
from kerascli.registry import ACTIVATIONS

# Keras' three forms: "ab,bc->ac", "...b,bc->...c" (elided leading axes), "abc...,cd->abd..." (trailing)
_FORMS = (
    (re.compile(r"^([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)$"), None),
    (re.compile(r"^\.\.\.([a-zA-Z]+),([a-zA-Z]+)->\.\.\.([a-zA-Z]+)$"), "left"),
    (re.compile(r"^([a-zA-Z]{2,})\.\.\.,([a-zA-Z]+)->([a-zA-Z]+)\.\.\.$"), "right"),
)


def analyze_equation(equation: str, bias_axes: str | None, input_shape: tuple, partial_output: list):
    """(input spec, kernel spec, output spec with any ellipsis written out as letters, kernel shape, bias shape
    or None, output shape without the batch axis) for an EinsumDense on samples of ``input_shape``, by
    Keras' rules: the equation's first input axis is the batch; ``output_shape`` gives the output's axes
    after it (None where an input axis decides); bias_axes are output letters, the bias spanning the output
    from the first of them to the end (1 on the others)."""
    for pattern, elided_side in _FORMS:
        match = pattern.match(equation.replace(" ", ""))
        if match:
            break
    else:
        raise ShapeError(f"equation {equation!r} must be of the form X,Y->Z, ...X,Y->...Z or X...,Y->Z... "
                         "(letters only, as in Keras)")
    in_spec, w_spec, out_spec = match.groups()
    for spec in (in_spec, w_spec, out_spec):
        if len(set(spec)) != len(spec):
            raise ShapeError(f"equation {equation!r} repeats a letter within one operand")
    shape = (None,) + tuple(input_shape)  # with the batch axis, as Keras sees it
    elided = len(shape) - len(in_spec)
    if elided < 0 or (elided > 0 and elided_side is None):
        raise ShapeError(f"equation {equation!r} names {len(in_spec)} input axes (the batch first), "
                         f"the input has {len(shape)}")
    spare = iter(c for c in string.ascii_letters if c not in in_spec + w_spec + out_spec)
    extra = "".join(next(spare) for _ in range(elided))
    if elided_side == "left":
        in_spec, out_spec = extra + in_spec, extra + out_spec
    elif elided_side == "right":
        in_spec, out_spec = in_spec + extra, out_spec + extra
    sizes = dict(zip(in_spec, shape))
    given = list(partial_output)
    # the output axes after the batch (the first of the elided ones, where there are any) and the elided
    # ones, in the equation's order
    first = max(elided, 1) if elided_side == "left" else 1
    named = out_spec[first:len(out_spec) - (elided if elided_side == "right" else 0)]
    if len(given) != len(named):
        raise ShapeError(f"output_shape {partial_output} has {len(given)} entries, the equation's output "
                         f"{out_spec!r} has {len(named)} after the batch axis (and any elided ones)")
    for letter, size in zip(named, given):
        if size is None:
            if letter not in sizes:
                raise ShapeError(f"output_shape leaves axis {letter!r} open but no input axis gives it")
            continue
        if letter in sizes and sizes[letter] is not None and sizes[letter] != size:
            raise ShapeError(f"input and output_shape disagree at axis {letter!r}: {sizes[letter]} vs {size}")
        sizes[letter] = size
    for letter in out_spec:
        if letter not in in_spec and letter not in w_spec:
            raise ShapeError(f"output axis {letter!r} appears in neither the input nor the kernel")
    for letter in w_spec:
        if letter not in sizes:
            raise ShapeError(f"kernel axis {letter!r} appears in neither the input nor the output")
    kernel_shape = tuple(sizes[letter] for letter in w_spec)
    output_shape = tuple(sizes[letter] for letter in out_spec[1:])
    bias_shape = None
    if bias_axes:
        for letter in bias_axes:
            if letter not in out_spec:
                raise ShapeError(f"bias axis {letter!r} is not an output axis of {equation!r}")
        first = min(out_spec.index(letter) for letter in bias_axes)
        bias_shape = tuple(sizes[letter] if letter in bias_axes else 1 for letter in out_spec[first:])
    return in_spec, w_spec, out_spec, kernel_shape, bias_shape, output_shape


class EinsumDense(ActivatedLayer):
    """y = activation(einsum(equation, x, kernel) + bias), Keras' EinsumDense: ``equation`` with the batch as
    the input's first axis (or elided), ``output_shape`` the output's axes after the batch (a number for
    one), ``bias_axes`` the output letters that carry a bias. Host numpy (refused on the cuda backend)."""

    host_only = True
    PARAMS = {
        "equation": Param("str"),
        "output_shape": Param("partial_shape", doc="the output's axes after the batch (null: as the input)"),
        "activation": Param("str", "linear", choices=ACTIVATIONS),
        "bias_axes": Param("str", None, nullable=True, doc="output letters with a bias"),
        **kernel_and_bias_params(),
    }

    def build(self, input_shape):
        c = self.config
        (self._in, self._w, self._out, kernel_shape, bias_shape,
         output_shape) = analyze_equation(c["equation"], c["bias_axes"], tuple(input_shape), c["output_shape"])
        self.add_weight("kernel", kernel_shape, c["kernel_initializer"], regularizer=c["kernel_regularizer"],
                        constraint=c["kernel_constraint"])
        if bias_shape is not None:
            self.add_weight("bias", bias_shape, c["bias_initializer"], regularizer=c["bias_regularizer"],
                            constraint=c["bias_constraint"])
        return output_shape

    def forward(self, x, training):
        self._x = x
        z = self.ops.einsum_dense_forward((self._in, self._w, self._out), x, self.params["kernel"],
                                          self.params.get("bias"))
        return self.bias_and_activate(z, with_bias=False)  # the bias (any shape) is added with the product

    def _grad_targets(self):
        """(kernel gradient, bias gradient): None for a frozen layer, which forms no weight gradients."""
        if not self.trainable:
            return None, None
        return self.grads.get("kernel"), self.grads.get("bias")

    def backward(self, dy):
        dy2 = self.deactivate(dy.reshape(self._y.shape))
        dz = self.ops.activation_backward(dy2, self._y, self.act, self.workspace("dz", self._y.shape), None)[0]
        return self.ops.einsum_dense_backward((self._in, self._w, self._out), self._x, self.params["kernel"],
                                              dz.reshape(dy.shape), *self._grad_targets(),
                                              self.need_input_grad)
