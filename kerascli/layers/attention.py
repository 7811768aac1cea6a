"""MultiHeadAttention with Keras 3's arguments, defaults and weights: ``query``, ``key``, ``value`` and
``attention_output`` sub-layers (checkpoint keys ``multi_head_attention/query/kernel`` ...), kernels
(features, heads, key_dim) and (heads, value_dim, output features)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from kerascli.config.params import (
    RATE,
    Param,
    kernel_and_bias_params,
)
from kerascli.graph.layer import Layer, ShapeError


def _query_mask(layer, masks):
    """Keras' attention layers' output mask: the query's."""
    return masks[0]


class MultiHeadAttention(Layer):
    """Inputs: [query, value] or [query, value, key] (key = value when absent), or one input for
    self-attention (the layer before it, in a Sequential model): each (steps, features)."""
    draws_random = True  # attention dropout

    takes_mask = True  # masks of query, value and key: Keras' automatic attention masks
    n_inputs = 0
    input_count = (1, 3)
    host_only = True
    PARAMS = {
        "num_heads": Param("int", min=1),
        "key_dim": Param("int", min=1),
        "value_dim": Param("int", None, min=1, nullable=True, doc="defaults to key_dim"),
        "dropout": replace(RATE, doc="dropout on the attention weights"),
        "use_bias": Param("bool", True),
        "output_shape": Param("int", None, min=1, nullable=True, doc="output features (default: the query's)"),
        "use_causal_mask": Param("bool", False, doc="each query step attends to itself and earlier steps only"),
        **kernel_and_bias_params(),
    }

    def build(self, input_shape):
        shapes = list(input_shape)
        for s in shapes:
            if len(s) != 2:
                raise ShapeError(f"expects sequences of shape (steps, features), got {tuple(s)}")
        query, value = shapes[0], shapes[1] if len(shapes) > 1 else shapes[0]
        key = shapes[2] if len(shapes) > 2 else value
        if key[0] != value[0]:
            raise ShapeError(f"key and value need the same number of steps, got {key[0]} and {value[0]}")
        if self.config["use_causal_mask"] and query[0] != value[0]:
            raise ShapeError("use_causal_mask needs query and value of the same length")
        c = self.config
        heads, dk = c["num_heads"], c["key_dim"]
        dv = c["value_dim"] or dk
        self._dims = heads, dk, dv
        out = c["output_shape"] or query[1]
        for name, features, width in (("query", query[1], dk), ("key", key[1], dk), ("value", value[1], dv)):
            self._projection(name, (features, heads, width), (heads, width))
        self._projection("attention_output", (heads, dv, out), (out,))
        self._steps = query[0]
        return (query[0], out)

    def _projection(self, name, kernel_shape, bias_shape):
        c = self.config
        self.add_weight(f"{name}/kernel", kernel_shape, c["kernel_initializer"], regularizer=c["kernel_regularizer"],
                        constraint=c["kernel_constraint"])
        if c["use_bias"]:
            self.add_weight(f"{name}/bias", bias_shape, c["bias_initializer"], regularizer=c["bias_regularizer"],
                            constraint=c["bias_constraint"])

    def _project(self, name, x, n_in=1):
        """x (B, T, in...) @ name/kernel (in..., out...) + name/bias, as (B, T, out...); ``n_in`` axes in."""
        kernel = self.params[f"{name}/kernel"]
        fan_in = math.prod(kernel.shape[:n_in])
        y = self.ops.gemm(x.reshape(-1, fan_in), kernel.reshape(fan_in, -1))
        if f"{name}/bias" in self.params:
            y += self.params[f"{name}/bias"].reshape(-1)
        return y.reshape(x.shape[:x.ndim - n_in] + kernel.shape[n_in:])

    def _project_backward(self, name, x, dy, n_in=1):
        """The projection's weight gradients from dy (B, T, out...); returns the gradient of x."""
        kernel = self.params[f"{name}/kernel"]
        fan_in = math.prod(kernel.shape[:n_in])
        x2, d2 = x.reshape(-1, fan_in), dy.reshape(x2_rows(x, n_in), -1)
        self.grads[f"{name}/kernel"][...] = self.ops.gemm(x2, d2, trans_a=True).reshape(kernel.shape)
        if f"{name}/bias" in self.grads:
            self.grads[f"{name}/bias"][...] = d2.sum(axis=0).reshape(self.grads[f"{name}/bias"].shape)
        return self.ops.gemm(d2, kernel.reshape(fan_in, -1), trans_b=True).reshape(x.shape)

    output_mask = _query_mask

    def _allowed(self, n, tq, tv):
        """(B, 1, Tq, Tv): False where the masks of the query, the value or the key keep a query step from
        a key step (Keras' automatic mask), or None without masks."""
        masks = self.mask if self.mask is not None else [None]
        q = masks[0]
        v = masks[1] if len(masks) > 1 else q  # self-attention: the value is the query
        k = masks[2] if len(masks) > 2 else v
        if q is None and v is None and k is None:
            return None
        allowed = np.ones((n, 1, tq, tv), bool)
        if q is not None:
            allowed &= (q != 0)[:, None, :, None]
        for m in (v, k):
            if m is not None:
                allowed &= (m != 0)[:, None, None, :]
        return allowed

    def forward(self, xs, training):
        query, value = xs[0], xs[1] if len(xs) > 1 else xs[0]
        key = xs[2] if len(xs) > 2 else value
        self._inputs = (query, key, value)
        self._allowed_steps = self._allowed(len(query), query.shape[1], value.shape[1])
        self._q, self._k, self._v = self._project("query", query), self._project("key", key), \
            self._project("value", value)
        rate = self.config["dropout"]
        keep = None
        if training and rate > 0:
            heads = self._dims[0]
            shape = (len(query), heads, query.shape[1], value.shape[1])
            keep = self.ops.dropout_mask(self.rng, shape, query.dtype, rate)
        self._keep = keep
        self._o, self._used, self._weights = self.ops.attention_forward(self._q, self._k, self._v,
                                                                        self.config["use_causal_mask"], keep,
                                                                        self._allowed_steps)
        return self._project("attention_output", self._o, n_in=2)

    def backward(self, dy):
        query, key, value = self._inputs
        do = self._project_backward("attention_output", self._o, dy, n_in=2)
        dq, dk, dv = self.ops.attention_backward(do, self._q, self._k, self._v, self._used, self._weights,
                                                 self._keep, self._allowed_steps)
        d_query = self._project_backward("query", query, dq)
        d_key = self._project_backward("key", key, dk)
        d_value = self._project_backward("value", value, dv)
        count = len(self.input_shape)
        if count == 1:
            return [d_query + d_key + d_value]
        if count == 2:
            return [d_query, d_key + d_value]
        return [d_query, d_value, d_key]



def x2_rows(x, n_in):
    """The number of rows of x with its last ``n_in`` axes flattened into one."""
    return math.prod(x.shape[:x.ndim - n_in])


class Attention(Layer):
    """Keras' Attention (Luong-style): inputs [query, value] or [query, value, key], (steps, dim) each;
    scores q . k (``score_mode: dot``) or sum(tanh(q + k)) (``concat``), softmax over the value steps,
    the weighted sum of the values. ``use_scale`` learns a scalar ``scale`` (and with concat a scalar
    ``concat_score_weight``)."""
    draws_random = True  # attention dropout

    takes_mask = True  # masks of query, value and key: Keras' automatic attention masks
    n_inputs = 0
    input_count = (2, 3)
    host_only = True
    PARAMS = {
        "use_scale": Param("bool", False),
        "score_mode": Param("str", "dot", choices=("dot", "concat")),
        "dropout": replace(RATE, doc="dropout on the attention weights"),
        "use_causal_mask": Param("bool", False, doc="each query step attends to itself and earlier steps only"),
    }

    def mode(self):
        return self.config["score_mode"]

    def build(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        if any(len(s) != 2 for s in shapes) or len({s[1] for s in shapes}) != 1:
            raise ShapeError(f"expects inputs of shape (steps, dim) with one dim, got {', '.join(map(str, shapes))}")
        value, key = shapes[1], shapes[2] if len(shapes) > 2 else shapes[1]
        if key[0] != value[0]:
            raise ShapeError(f"key and value need the same number of steps, got {key[0]} and {value[0]}")
        if self.config["use_causal_mask"] and shapes[0][0] != value[0]:
            raise ShapeError("use_causal_mask needs query and value of the same length")
        self.build_weights(shapes[0][1])
        return shapes[0]

    def build_weights(self, dim):
        if self.config["use_scale"]:
            self.add_weight("scale", (), "ones")
        if self.config["score_mode"] == "concat":
            self.add_weight("concat_score_weight", (), "ones")

    def _scale_weight(self):
        scale = self.params.get("scale")
        weight = self.params.get("concat_score_weight")
        return (None if scale is None else scale if scale.ndim else float(scale),
                None if weight is None else float(weight))

    output_mask = _query_mask

    def forward(self, xs, training):
        query, value = xs[0], xs[1]
        key = xs[2] if len(xs) > 2 else value
        self._inputs = (query, key, value)
        rate = self.config["dropout"]
        self._keep = None
        if training and rate > 0:
            shape = (len(query), query.shape[1], value.shape[1])
            self._keep = self.ops.dropout_mask(self.rng, shape, query.dtype, rate)
        # Keras' masks here: the value's keeps the queries from padded value steps, the query's zeroes the
        # outputs of padded query steps
        q_mask, v_mask = (self.mask[0], self.mask[1]) if self.mask is not None else (None, None)
        allowed = None if v_mask is None else (v_mask != 0)[:, None, :]
        out, self._cache = self.ops.scored_attention_forward(query, key, value, self.mode(),
                                                             *self._scale_weight(), self.config["use_causal_mask"],
                                                             self._keep, allowed)
        self._q_kept = None if q_mask is None else (q_mask != 0)[:, :, None]
        return out if self._q_kept is None else np.where(self._q_kept, out, 0).astype(out.dtype)

    def backward(self, dy):
        if self._q_kept is not None:
            dy = np.where(self._q_kept, dy, 0).astype(dy.dtype)
        query, key, value = self._inputs
        dq, dk, dv, dscale, dweight = self.ops.scored_attention_backward(
            dy, query, key, value, self.mode(), *self._scale_weight(), self._keep, self._cache)
        for name, grad in (("scale", dscale), ("concat_score_weight", dweight)):
            if name in self.grads:
                self.grads[name][...] = grad
        if len(self.input_shape) == 2:
            return [dq, dk + dv]
        return [dq, dv, dk]


class AdditiveAttention(Attention):
    """Keras' AdditiveAttention (Bahdanau-style): scores sum(scale * tanh(q + k)) with a learned ``scale``
    per dimension (``use_scale``, glorot_uniform as Keras)."""

    PARAMS = {
        "use_scale": Param("bool", True),
        "dropout": replace(RATE, doc="dropout on the attention weights"),
        "use_causal_mask": Param("bool", False, doc="each query step attends to itself and earlier steps only"),
    }

    def build_weights(self, dim):
        if self.config["use_scale"]:
            self.add_weight("scale", (dim,), "glorot_uniform")

    def mode(self):
        return "additive"
