"""SimpleRNN, LSTM and GRU: Keras 3's arguments, defaults and weight layout (its cell level dropped:
``lstm/kernel``, ``lstm/recurrent_kernel``, ``lstm/bias``; gates in Keras' order).

Batch-major sequences (samples, steps, features) as Keras'. The input projection of every step is one
product (steps x samples rows); the loop over steps (each step's product with the recurrent kernel and its
cell update) is one call of the Ops (kerascli/ops/algorithms/recurrent.py; on the cpu one Numba kernel per
direction, calling BLAS from inside it); the weight gradients are again one product each after the backward
loop.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from kerascli.config.params import (
    RATE,
    Param,
    constraint_param,
    kernel_and_bias_params,
    regularizer_param,
)
from kerascli.graph.layer import Layer, ShapeError
from kerascli.initializers import Initializer
from kerascli.initializers import make as make_initializer
from kerascli.ops.contract import activation
from kerascli.registry import ACTIVATIONS, INITIALIZERS


def _rnn_params(**extra) -> dict:
    return {
        "units": Param("int", min=1),
        "activation": Param("str", "tanh", choices=ACTIVATIONS),
        **extra,
        "use_bias": Param("bool", True),
        **kernel_and_bias_params(),
        "recurrent_initializer": Param("typed", "orthogonal", choices=INITIALIZERS),
        "recurrent_regularizer": regularizer_param(),
        "recurrent_constraint": constraint_param(),
        "dropout": replace(RATE, doc="fraction of the inputs dropped (one mask per sequence)"),
        "recurrent_dropout": replace(RATE, doc="fraction of the state dropped"),
        "return_sequences": Param("bool", False),
        "return_state": Param("bool", False, doc="also give the final states as outputs name[1] (h), name[2] "
                                                 "(an LSTM's c)"),
        "go_backwards": Param("bool", False),
    }


class _ForgetBias(Initializer):
    """Keras' unit_forget_bias: the bias initializer's values, with the forget gate's set to one."""

    def __init__(self, inner, units):
        super().__init__()
        self.inner, self.units = make_initializer(inner), units

    def draw(self, rng, shape):
        u = self.units
        values = self.inner(rng, (u,), np.float64)
        return np.concatenate([values, np.ones(u), self.inner(rng, (2 * u,), np.float64)])


class _Recurrent(Layer):
    """The loop over steps, shared by the cells: ``GATES`` pre-activations per unit. With a mask (an
    Embedding's ``mask_zero``), a padded step changes nothing: the state (and the output) of that sample
    carry over it, as in Keras."""
    draws_random = True  # dropout, recurrent_dropout
    takes_mask = True
    # threads take parts of the batch through the whole loop over steps, each with one BLAS thread: per step
    # the products are too small for BLAS to share among threads well (LSTM(128), 64 samples, two threads:
    # 52 us per product with two BLAS threads, 43 us for each half on one)
    batch_parallel = True

    GATES = 1
    SHARES_GATE_GRADIENT = False  # the recurrent product's gradient is the input projection's (LSTM, SimpleRNN)
    STATES = ("h",)  # Keras' states, in its order
    extra_inputs_doc = "the sequence, then the initial state h"

    @classmethod
    def output_count(cls, params):
        return 1 + len(cls.STATES) if params.get("return_state") else 1

    def extra_input_count(self):
        return len(self.STATES)  # Keras' initial_state: every state, or none

    @classmethod
    def resolve_params(cls, params, error):
        for key in ("activation", "recurrent_activation"):
            if key in params:
                row = activation(ACTIVATIONS.get(params[key]))
                if row.own_step or not row.elementwise:
                    raise error(key, f"{row.name} cannot be a recurrent cell's activation (one computed "
                                     "elementwise from its output is needed: tanh, sigmoid, relu, ...)")
        return params

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(f"expects sequences of shape (steps, features), got {tuple(input_shape)}")
        c = self.config
        self.steps, self.features = input_shape
        self.units = units = c["units"]
        self.act = ACTIVATIONS.get(c["activation"])
        self.rec_act = ACTIVATIONS.get(c.get("recurrent_activation", "sigmoid"))
        for i, shape in enumerate(self.extra_input_shapes):
            if tuple(shape) != (units,):
                raise ShapeError(f"initial state {self.STATES[i]} (input {i + 2}) must have shape ({units},) for "
                                 f"{units} units, got {tuple(shape)}")
        self.extra_output_shapes = ((units,),) * len(self.STATES) if c["return_state"] else ()
        width = self.GATES * units
        self.add_weight("kernel", (self.features, width), c["kernel_initializer"],
                        regularizer=c["kernel_regularizer"], constraint=c["kernel_constraint"])
        self.add_weight("recurrent_kernel", (units, width), c["recurrent_initializer"],
                        regularizer=c["recurrent_regularizer"], constraint=c["recurrent_constraint"])
        if c["use_bias"]:
            self.add_weight("bias", self.bias_shape(), self.bias_initializer(),
                            regularizer=c["bias_regularizer"], constraint=c["bias_constraint"])
        return (self.steps, units) if c["return_sequences"] else (units,)

    def bias_shape(self):
        return (self.GATES * self.units,)

    def bias_initializer(self):
        return self.config["bias_initializer"]

    def buffer_bytes(self, batch, threads, itemsize):
        per_step = batch * self.units * itemsize
        return {**super().buffer_bytes(batch, threads, itemsize),
                "sequence state": (self.steps + 1) * per_step * (3 + 3 * self.GATES)}

    # ------------------------------------------------------------------ forward
    def _masks(self, n, dtype, training):
        """Keras' dropout masks: one per sequence for the inputs and one for the state, 0 or 1/(1 - rate)."""
        c, ops = self.config, self.ops
        masks = []
        for rate, width, name in ((c["dropout"], self.features, "input_mask"),
                                  (c["recurrent_dropout"], self.units, "state_mask")):
            if training and rate > 0:
                masks.append(ops.dropout_mask(self.rng, (n, width), dtype, rate,
                                              out=self.workspace(name, (n, width))))
            else:
                masks.append(None)
        return masks

    def forward(self, x, training):
        ops, c = self.ops, self.config
        n, steps, units = len(x), self.steps, self.units
        if c["go_backwards"]:
            x = ops.reverse_time(x)
        self._keep = None  # (steps, batch): 1 where a step is data, 0 where it is padding
        if self.mask is not None:
            self._keep = ops.swap_batch_and_time(ops.reverse_time(self.mask) if c["go_backwards"] else self.mask)
        self._in_mask, self._state_mask = self._masks(n, x.dtype, training)
        if self._in_mask is not None:
            x = ops.scale_by(x, self._in_mask[:, None, :])
        # every step's input projection in one product, the input bias with it: [x, 1] @ [kernel; bias]
        biased = "bias" in self.params
        width = self.features + biased
        self._x2 = ops.time_major_rows(x, biased, out=self.workspace("x2", (steps * n, width)))
        weights = self.params["kernel"]
        if biased:
            weights = self.workspace("kernel_and_bias", (width, self.GATES * units))
            weights[:-1] = self.params["kernel"]
            weights[-1] = self.input_bias()
        xw = ops.matmul_rows(self._x2, weights, self.workspace("xw", (steps * n, self.GATES * units)))
        self._xw = xw.reshape(steps, n, -1)
        self._h = self.workspace("h", (steps + 1, n, units))  # h[0]: the state before the first step
        self._h[0] = self.extra_inputs[0] if self.extra_inputs else 0
        self.run_forward(n)
        if c["return_state"]:
            self.extra_outputs = self.final_states()
        out = self._h[1:]
        if c["return_sequences"]:
            return ops.swap_batch_and_time(out)
        return out[-1]

    def output_mask(self, masks):
        return masks[0] if self.config["return_sequences"] else None

    def final_states(self):
        return [self._h[-1]]

    def state_gradients(self, n):
        """The workspaces the backward loop takes the final states' gradients in (those that return_state
        outputs received, else zeros) and gives the initial states' back in."""
        grads = []
        for i, name in enumerate(self.STATES):
            grad = self.workspace(f"d{name}", (n, self.units))
            given = self.extra_output_grads[i] if i < len(self.extra_output_grads) else None
            grad[...] = 0 if given is None else given
            grads.append(grad)
        return grads

    def input_bias(self):
        return self.params["bias"]

    # ------------------------------------------------------------------ backward
    def backward(self, dy):
        ops, c = self.ops, self.config
        steps, n = self.steps, self._xw.shape[1]
        # the gradient arriving at each step's output: every step's, or the last one's alone (none where only
        # the states are read)
        if dy is None:
            arriving = self.workspace("no_output_gradient", (1, n, self.units))
            arriving[...] = 0
        else:
            arriving = ops.swap_batch_and_time(dy) if c["return_sequences"] else dy[None]
        states = self.state_gradients(n)  # the final states' gradients in, the initial states' out
        dxw = self.run_backward(arriving, *states, n)  # (steps, n, gates * units): the input projections'
        self.extra_input_grads = states if self.extra_inputs else ()
        dxw2 = dxw.reshape(steps * n, -1)
        # the weights' gradients in one product: [kernel; bias] from the rows [x, 1], and, where the
        # recurrent product's gradient is the input projection's, recurrent_kernel with them from the
        # states that entered each step: [x, 1, h] (one product of 161 rows for an LSTM(128) of 32 features
        # takes 2.7 ms where two of 33 and 128 rows took 3.5)
        left = self._x2
        if self.joint_gradient():
            width = left.shape[1]
            left = self.workspace("inputs_and_states", (steps * n, width + self.units))
            left[:, :width] = self._x2
            left[:, width:] = self._h[:-1].reshape(-1, self.units)
        grad = self.workspace("dweights", (left.shape[1], dxw2.shape[1]))
        dx2 = self.workspace("dx2", (steps * n, self.features)) if self.need_input_grad else None
        ops.dense_backward(left, self.params["kernel"], dxw2, grad, dx2)
        self.grads["kernel"][...] = grad[: self.features]
        if "bias" in self.grads:
            self.store_input_bias_gradient(grad[self.features])
        if left is not self._x2:
            self.grads["recurrent_kernel"][...] = grad[-self.units :]
        if dx2 is None:
            return None
        dx = ops.swap_batch_and_time(dx2.reshape(steps, n, self.features))
        if self._in_mask is not None:
            dx = ops.scale_by(dx, self._in_mask[:, None, :])
        return ops.reverse_time(dx) if c["go_backwards"] else dx

    def store_input_bias_gradient(self, grad):
        self.grads["bias"][...] = grad

    def joint_gradient(self) -> bool:
        """Whether recurrent_kernel's gradient comes in one product with the kernel's (``backward``): where
        each step's recurrent product has the input projection's gradient (not GRU's) and took the states
        themselves (no recurrent dropout)."""
        return self.SHARES_GATE_GRADIENT and self._state_mask is None

    def recurrent_kernel_gradient(self, drec_all, columns=slice(None), states=None):
        """recurrent_kernel's gradient (its ``columns``) from every step's recurrent product gradient and
        the states that entered the products (``states``: the masked states h[0..T-1] unless given)."""
        n = drec_all.shape[1]
        if states is None:
            states = self._h[:-1]
            if self._state_mask is not None:
                states = self.ops.scale_by(states, self._state_mask[None])
        target = self.grads["recurrent_kernel"][:, columns]
        grad = target if target.flags.c_contiguous else self.workspace("drecurrent", target.shape)
        self.ops.dense_backward(states.reshape(-1, self.units), None, drec_all.reshape(self.steps * n, -1), grad,
                                None)
        if grad is not target:
            target[...] = grad


class SimpleRNN(_Recurrent):
    """h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)."""

    SHARES_GATE_GRADIENT = True

    PARAMS = _rnn_params()
    GATES = 1

    def run_forward(self, n):
        self.ops.simple_rnn_sequence_forward(self._xw, self.params["recurrent_kernel"], self._h, self._keep,
                                             self._state_mask, self.act, self.workspace)

    def run_backward(self, arriving, dh, n):
        dz = self.workspace("dz", (self.steps, n, self.units))
        self.ops.simple_rnn_sequence_backward(arriving, dh, self.params["recurrent_kernel"], self._h, self._keep,
                                              self._state_mask, self.act, dz, self.workspace)
        if not self.joint_gradient():
            self.recurrent_kernel_gradient(dz)
        return dz


class LSTM(_Recurrent):
    """Keras' LSTM: gates i, f, c, o in the kernel's columns; c_t = f c_{t-1} + i g, h_t = o act(c_t)."""

    SHARES_GATE_GRADIENT = True

    PARAMS = _rnn_params(recurrent_activation=Param("str", "sigmoid", choices=ACTIVATIONS),
                         unit_forget_bias=Param("bool", True))
    GATES = 4
    STATES = ("h", "c")
    extra_inputs_doc = "the sequence, then the initial states h and c"

    def final_states(self):
        return [self._h[-1], self._c[-1]]

    def bias_initializer(self):
        c = self.config
        return _ForgetBias(c["bias_initializer"], self.units) if c["unit_forget_bias"] else c["bias_initializer"]

    def run_forward(self, n):
        units = self.units
        self._c = self.workspace("c", (self.steps + 1, n, units))
        self._c[0] = self.extra_inputs[1] if self.extra_inputs else 0
        self._gates = self.workspace("gates", (self.steps, n, 4 * units))
        self.ops.lstm_sequence_forward(self._xw, self.params["recurrent_kernel"], self._h, self._c, self._gates,
                                       self._keep, self._state_mask, self.act, self.rec_act, self.workspace)

    def run_backward(self, arriving, dh, dc, n):
        dz = self.workspace("dz", (self.steps, n, 4 * self.units))
        self.ops.lstm_sequence_backward(arriving, dh, dc, self.params["recurrent_kernel"], self._gates, self._c,
                                        self._keep, self._state_mask, self.act, self.rec_act, dz, self.workspace)
        if not self.joint_gradient():
            self.recurrent_kernel_gradient(dz)
        return dz


class GRU(_Recurrent):
    """Keras' GRU: gates z, r, h. With ``reset_after`` (Keras' default) the reset gate applies after the
    recurrent product and the bias has two rows (input, recurrent); without, before it."""

    PARAMS = _rnn_params(recurrent_activation=Param("str", "sigmoid", choices=ACTIVATIONS),
                         reset_after=Param("bool", True))
    GATES = 3

    def bias_shape(self):
        return (2, 3 * self.units) if self.config["reset_after"] else (3 * self.units,)

    def input_bias(self):
        bias = self.params["bias"]
        return bias[0] if self.config["reset_after"] else bias

    def run_forward(self, n):
        reset_after = self.config["reset_after"]
        self._gates = self.workspace("gates", (self.steps, n, 4 * self.units))
        self._rh = self.workspace("rh", (self.steps, n, self.units))
        recurrent_bias = self.params["bias"][1] if reset_after and "bias" in self.params else None
        self.ops.gru_sequence_forward(self._xw, self.params["recurrent_kernel"], recurrent_bias, self._h,
                                      self._gates, self._rh, self._keep, self._state_mask, self.act, self.rec_act,
                                      reset_after, self.workspace)

    def run_backward(self, arriving, dh, n):
        units, reset_after = self.units, self.config["reset_after"]
        dxw = self.workspace("dxw", (self.steps, n, 3 * units))
        drec = self._drec = self.workspace("drec", (self.steps, n, 3 * units))
        self.ops.gru_sequence_backward(arriving, dh, self.params["recurrent_kernel"], self._gates, self._h,
                                       self._keep, self._state_mask, self.act, self.rec_act, reset_after, dxw, drec,
                                       self.workspace)
        if reset_after:
            self.recurrent_kernel_gradient(drec)
        else:
            self.recurrent_kernel_gradient(drec[:, :, :2 * units], slice(0, 2 * units))
            self.recurrent_kernel_gradient(drec[:, :, 2 * units:], slice(2 * units, None), states=self._rh)
        return dxw

    def store_input_bias_gradient(self, grad):
        if self.config["reset_after"]:  # rows: the input bias, the recurrent bias
            self.grads["bias"][0] = grad
            self.grads["bias"][1] = self._drec.reshape(-1, 3 * self.units).sum(axis=0)
        else:
            self.grads["bias"][...] = grad


