"""Wrappers: layers that run another layer, given as its config (``layer: {type: LSTM, units: 32}``). The
inner layer's weights are this layer's, under the inner layer's path (``bidirectional/forward_lstm/kernel``,
``time_distributed/dense/kernel``)."""

from __future__ import annotations

from kerascli.config.params import Param
from kerascli.graph.layer import Layer, ShapeError
from kerascli.layers.recurrent import _Recurrent
from kerascli.registry import LAYERS


class Wrapper(Layer):
    draws_random = True  # the layer it wraps may
    WRAPS = "a layer"
    passes_states = False  # whether a wrapped recurrent layer's return_state gives this layer more outputs

    @classmethod
    def accepts(cls, layer_class) -> bool:
        return True

    @classmethod
    def resolve_params(cls, params, error):
        inner = params["layer"]
        kind = inner["type"] if isinstance(inner, dict) else inner
        layer_class = LAYERS.get(kind)
        if not isinstance(layer_class, type) or not cls.accepts(layer_class):
            raise error("layer", f"{cls.type_name} wraps {cls.WRAPS}, got {kind}")
        if not isinstance(inner, dict):
            raise error("layer", f"{kind} needs its arguments: {{type: {kind}, ...}}")
        rest = layer_class.resolve_params({k: v for k, v in inner.items() if k != "type"},
                                          lambda key, message: error("layer", f"{key}: {message}"))
        if rest.get("return_state") and not cls.passes_states:
            raise error("layer", f"return_state: {cls.type_name} gives one output; a wrapped layer's states "
                                 "have nowhere to go (Bidirectional passes them on)")
        params["layer"] = {"type": kind, **rest}
        return params

    def adopt(self, inner, input_shape):
        """Build ``inner`` for ``input_shape`` and declare its weights as this layer's, under its name."""
        inner.input_shape = input_shape
        inner.output_shape = tuple(inner.setup(input_shape))
        for spec in inner.weight_specs:
            self.add_weight(f"{inner.name}/{spec.name}", spec.shape, spec.initializer, spec.trainable,
                            spec.regularizer, spec.constraint)
        return inner

    def _wire(self, inner):
        """The inner layer sees its weights as views of this layer's, under its own names."""
        prefix = inner.name + "/"
        inner.params = {k[len(prefix):]: v for k, v in self.params.items() if k.startswith(prefix)}
        inner.grads = {k[len(prefix):]: v for k, v in self.grads.items() if k.startswith(prefix)}
        inner.ops, inner.dtype, inner.rng, inner.need_input_grad = self.ops, self.dtype, self.rng, self.need_input_grad


class Bidirectional(Wrapper):
    """A recurrent layer run forwards and backwards over the sequence, the two outputs merged
    (``merge_mode``: concat, sum, mul, ave). ``layer`` is the recurrent layer's config
    (``{type: LSTM, units: 32, ...}``); its weights are ``forward_lstm/...`` and ``backward_lstm/...``,
    as Keras names them."""

    PARAMS = {
        "layer": Param("typed", choices=LAYERS, doc="the recurrent layer: {type: LSTM | GRU | SimpleRNN, ...}"),
        "merge_mode": Param("str", "concat", choices=("concat", "sum", "mul", "ave")),
    }
    # with the layer's return_state, Keras' outputs: the merged output, the forward half's states, the
    # backward half's; initial states likewise (forward's, then backward's)
    passes_states = True
    extra_inputs_doc = "the sequence, then the forward half's initial states and the backward half's"
    batch_parallel = True
    takes_mask = True  # each half reads it; with return_sequences padded steps give 0, as in Keras

    @classmethod
    def output_count(cls, params):
        inner = params["layer"]
        return 1 + 2 * len(LAYERS.get(inner["type"]).STATES) if inner.get("return_state") else 1

    def extra_input_count(self):
        return 2 * len(LAYERS.get(self.config["layer"]["type"]).STATES)

    @classmethod
    def accepts(cls, layer_class) -> bool:
        return issubclass(layer_class, _Recurrent)

    def output_mask(self, masks):
        return masks[0] if self.config["layer"]["return_sequences"] else None

    WRAPS = "SimpleRNN, LSTM or GRU"

    def build(self, input_shape):
        inner = dict(self.config["layer"])
        cls = LAYERS.get(inner.pop("type"))
        base = cls.__name__.lower()
        self._halves = []
        self._states = k = len(cls.STATES)
        for i, (direction, backwards) in enumerate((("forward", inner["go_backwards"]),
                                                   ("backward", not inner["go_backwards"]))):
            half = cls(f"{direction}_{base}", {**inner, "go_backwards": backwards})
            half.extra_input_shapes = tuple(self.extra_input_shapes[i * k:(i + 1) * k])
            self._halves.append(self.adopt(half, tuple(input_shape)))
        self.extra_output_shapes = tuple(s for half in self._halves for s in half.extra_output_shapes)
        shape = self._halves[0].output_shape
        return shape[:-1] + (2 * shape[-1],) if self.config["merge_mode"] == "concat" else shape

    def forward(self, x, training):
        outs, k = [], self._states
        for i, half in enumerate(self._halves):
            self._wire(half)
            half.mask = self.mask
            half.extra_inputs = self.extra_inputs[i * k:(i + 1) * k]
            outs.append(half.forward(x, training))
        if self.extra_output_shapes:
            self.extra_outputs = [state for half in self._halves for state in half.extra_outputs]
        forward, backward = outs
        if self._halves[0].config["return_sequences"]:  # the backward half's steps back in time order
            backward = self.ops.reverse_time(backward)
            if self.mask is not None:  # Keras' zero_output_for_mask, which Bidirectional sets
                for out in (forward, backward):
                    self.ops.zero_masked_steps(out, self.mask)
        self._outs = forward, backward
        mode = self.config["merge_mode"]
        if mode == "concat":
            return self.ops.concatenate([forward, backward], -1)
        if mode == "sum":
            return forward + backward
        if mode == "mul":
            return forward * backward
        return (forward + backward) * 0.5

    def backward(self, dy):
        forward, backward = self._outs
        mode = self.config["merge_mode"]
        k = self._states
        for i, half in enumerate(self._halves):
            half.extra_output_grads = tuple(self.extra_output_grads[i * k:(i + 1) * k])
        if dy is None:  # only the states are read
            d_forward = d_backward = None
        elif mode == "concat":
            d_forward, d_backward = self.ops.split(dy, [forward.shape[-1], backward.shape[-1]], -1)
        elif mode == "sum":
            d_forward, d_backward = dy, dy
        elif mode == "mul":
            d_forward, d_backward = dy * backward, dy * forward
        else:
            d_forward = d_backward = dy * 0.5
        if self._halves[0].config["return_sequences"] and dy is not None:
            if self.mask is not None:  # the padded steps' outputs were zeros: no gradient through them
                for d in (d_forward, d_backward):
                    self.ops.zero_masked_steps(d, self.mask)
            d_backward = self.ops.reverse_time(d_backward)
        dxs = [half.backward(d) for half, d in zip(self._halves, (d_forward, d_backward))]
        self.extra_input_grads = [g for half in self._halves for g in half.extra_input_grads]
        return None if dxs[0] is None else dxs[0] + dxs[1]


class TimeDistributed(Wrapper):
    """The same layer applied to every step of a sequence: (steps, ...) -> (steps, the layer's output)."""

    mask_passes = True  # Keras keeps the mask of its input on its output

    PARAMS = {"layer": Param("typed", choices=LAYERS, doc="the layer applied to each step: {type: Dense, ...}")}
    WRAPS = "a layer with one input"

    @classmethod
    def accepts(cls, layer_class) -> bool:
        return layer_class.n_inputs == 1

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ShapeError(f"expects sequences (steps, ...), got {tuple(input_shape)}")
        inner = dict(self.config["layer"])
        cls = LAYERS.get(inner.pop("type"))
        self._inner = self.adopt(cls(cls.__name__.lower(), inner), tuple(input_shape[1:]))
        self._steps = input_shape[0]
        return (self._steps,) + self._inner.output_shape

    def forward(self, x, training):
        self._wire(self._inner)
        n = len(x)
        y = self._inner.forward(x.reshape((n * self._steps,) + x.shape[2:]), training)
        return y.reshape((n, self._steps) + y.shape[1:])

    def backward(self, dy):
        n = len(dy)
        dx = self._inner.backward(dy.reshape((n * self._steps,) + dy.shape[2:]))
        return None if dx is None else dx.reshape((n, self._steps) + dx.shape[1:])
