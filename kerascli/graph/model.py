"""Model: a DAG of layers in topological order, with weights in flat buffers.

All trainable weights live in one contiguous buffer (and their gradients in a
second of the same layout) so an optimizer updates everything in one kernel
call. Non-trainable weights (BatchNormalization statistics) live in a third.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kerascli import constraints, initializers, regularizers
from kerascli.graph import fusion
from kerascli.graph.layer import ActivatedLayer, Layer
from kerascli.graph.names import output_name
from kerascli.ops.memory import align_up
from kerascli.ops.tuning import INFERENCE_ACTIVATION_BYTES

# Refuse models whose weights alone would not fit in memory, before allocating.
MAX_PARAMS = 1_000_000_000


class ModelSizeError(ValueError):
    pass


@dataclass
class Node:
    layer: Layer
    inputs: list[str]  # names of earlier nodes or model inputs


class Model:
    def __init__(self, input_shapes: dict[str, tuple], nodes: list[Node], outputs: list[str]):
        self.input_shapes = {k: tuple(v) for k, v in input_shapes.items()}
        self.nodes = nodes
        self.outputs = list(outputs)
        self.layers = [n.layer for n in nodes]
        self.output_shapes: dict[str, tuple] = {}  # set by the builder
        self.dtype = np.dtype(np.float32)
        self.ops = None  # the backend's Ops (kerascli.ops.backend), set by set_backend
        self.output_activations: dict[str, int] = {}  # applied by predict() where a loss fused the activation
        self._grad_flows: dict[str, bool] = {}  # layer name -> trainable weights at or before it
        self.param_buffer = np.zeros(0, np.float32)
        self.grad_buffer = np.zeros(0, np.float32)
        self.state_buffer = np.zeros(0, np.float32)
        self.regularized: list = []
        self.constrained: list = []
        self.activity_penalty = 0.0
        self._activity_outputs: dict = {}
        self.masked = False  # an Embedding makes a mask (kerascli.graph.masks): forward carries masks along

    # ------------------------------------------------------------- shapes and weights
    def infer_shapes_of(self, node: Node, shapes: dict[str, tuple]) -> None:
        """Build ``node``'s layer from the shapes of its inputs and record its output shape."""
        layer = node.layer
        ins = [shapes[src] for src in node.inputs]
        layer.input_shape = ins if layer.n_inputs == 0 else ins[0]
        if layer.n_inputs == 1:
            layer.extra_input_shapes = tuple(ins[1:])
        layer.weight_specs = []
        layer.output_shape = tuple(layer.setup(layer.input_shape))
        shapes[layer.name] = layer.output_shape
        # an input gradient is needed only if some layer before has trainable weights
        # (Rescaling or Reshape ahead of a first Conv2D do not make it need one)
        layer.need_input_grad = any(self._grad_flows.get(src, False) for src in node.inputs)
        self._grad_flows[layer.name] = layer.need_input_grad or any(w.trainable for w in layer.weight_specs)
        for i, shape in enumerate(layer.extra_output_shapes, 1):
            shapes[output_name(layer.name, i)] = tuple(shape)
            self._grad_flows[output_name(layer.name, i)] = self._grad_flows[layer.name]

    def count_params(self) -> tuple[int, int]:
        trainable = sum(w.size for layer in self.layers for w in layer.weight_specs if w.trainable)
        fixed = sum(w.size for layer in self.layers for w in layer.weight_specs if not w.trainable)
        return trainable, fixed

    def check_size(self) -> None:
        trainable, fixed = self.count_params()
        if trainable + fixed > MAX_PARAMS:
            raise ModelSizeError(f"the model has {trainable + fixed:,} weights; the limit is {MAX_PARAMS:,}")

    def allocate(self, dtype, seed: int, storage=None) -> None:
        """Create the flat buffers (through the Ops: call set_backend first), point each layer's weights
        into them, initialise with ``seed``. ``storage``, where given, may provide the trainable weights'
        buffer and the gradient buffer (zeros): its ``parameters(size, dtype)`` and ``gradients(size,
        dtype)`` return one, or None for the model's own (data-parallel training puts them in memory the
        ranks of a node share); where its ``initializes_parameters`` is False, another process initialises
        the weights it provided (the initializers still draw, so the other weights get the same values).

        Each weight starts on a 64-byte boundary (a few padding items between
        weights, always zero, never updated in a way that matters).
        """
        self.check_size()
        self.dtype = np.dtype(dtype)
        itemsize = self.dtype.itemsize
        offsets = {True: 0, False: 0}
        self.slices: dict[str, slice] = {}  # "layer/weight" -> its place in its buffer
        places = []
        for layer in self.layers:
            for spec in layer.weight_specs:
                start = align_up(offsets[spec.trainable], itemsize)
                offsets[spec.trainable] = start + spec.size
                places.append((layer, spec, start))
                self.slices[f"{layer.name}/{spec.name}"] = slice(start, start + spec.size)
        size = offsets[True]
        params = storage.parameters(size, self.dtype) if storage is not None else None
        grads = storage.gradients(size, self.dtype) if storage is not None else None
        self.param_buffer = params if params is not None else self.ops.zeros((size,), self.dtype)
        initialize_params = params is None or getattr(storage, "initializes_parameters", True)
        self.grad_buffer = grads if grads is not None else self.ops.zeros((size,), self.dtype)
        self.state_buffer = self.ops.zeros((offsets[False],), self.dtype)
        rng = np.random.default_rng(seed)
        for layer in self.layers:
            layer.dtype = self.dtype
            layer.params, layer.grads = {}, {}
        self.regularized, self.constrained = [], []  # (penalty, weight, its gradient), (constraint, weight)
        for layer, spec, start in places:
            buffer = self.param_buffer if spec.trainable else self.state_buffer
            view = buffer[start : start + spec.size].reshape(spec.shape)
            value = initializers.make(spec.initializer)(rng, spec.shape, self.dtype)
            if initialize_params or not spec.trainable:
                self.ops.assign(view, value)
            layer.params[spec.name] = view
            if spec.trainable:
                layer.grads[spec.name] = self.grad_buffer[start : start + spec.size].reshape(spec.shape)
                if spec.regularizer is not None:
                    self.regularized.append((regularizers.make(spec.regularizer), view, layer.grads[spec.name]))
                if spec.constraint is not None:
                    self.constrained.append((constraints.make(spec.constraint), view))
            elif spec.frozen:  # somewhere for the layer's backward to write what nothing reads
                layer.grads[spec.name] = self.ops.zeros(spec.shape, self.dtype)

    def set_backend(self, ops, seed: int) -> None:
        self.ops = ops
        for i, layer in enumerate(self.layers):
            layer.ops = ops
            layer.rng = np.random.default_rng([seed, 1, i])

    @property
    def single(self) -> bool:
        """One input and one output: batches are arrays; otherwise dicts keyed by input or output name."""
        return len(self.input_shapes) == 1 and len(self.outputs) == 1

    @property
    def output_shape(self) -> tuple:
        """The shape of the first output (the only one, for most models)."""
        return self.output_shapes[self.outputs[0]]

    def fuse_output_activation(self, activation: int, output: str | None = None) -> bool:
        """Let the loss of ``output`` (default: the first) take pre-activation values when the layer producing
        it ends in ``activation`` and nothing else reads it."""
        output = output or self.outputs[0]
        last = next(n.layer for n in self.nodes if n.layer.name == output)
        read_elsewhere = any(output in n.inputs for n in self.nodes)
        if isinstance(last, ActivatedLayer) and last.activation == activation and not read_elsewhere:
            last.fuse_output()
            self.output_activations[output] = activation
            return True
        return False

    def fuse_layers(self) -> list[tuple[str, str]]:
        """Let one Ops method run pairs of layers where a declared pattern holds (graph/fusion.py);
        returns the (producer, absorbed) name pairs."""
        return fusion.fuse(self, self.ops)

    # ------------------------------------------------------------- weights by name
    def weight_items(self, trainable_only: bool = False):
        for layer in self.layers:
            for spec in layer.weight_specs:
                if spec.trainable or not trainable_only:
                    yield f"{layer.name}/{spec.name}", layer.params[spec.name], spec

    def get_weights(self) -> dict[str, np.ndarray]:
        """Every weight by ``<layer>/<weight>``, as host arrays (copies)."""
        return self.host_weights()

    def host_weights(self, buffers: dict | None = None) -> dict[str, np.ndarray]:
        """Host copies of the weights, cut from one copy of each flat buffer (one transfer each from a
        device); ``buffers`` maps "param"/"state" to host copies already made."""
        buffers = buffers or self.host_buffers()
        out = {}
        for layer in self.layers:
            for spec in layer.weight_specs:
                key = f"{layer.name}/{spec.name}"
                out[key] = buffers["param" if spec.trainable else "state"][self.slices[key]].reshape(spec.shape)
        return out

    def host_buffers(self) -> dict[str, np.ndarray]:
        return {"param": self.ops.to_host(self.param_buffer), "state": self.ops.to_host(self.state_buffer)}

    # ------------------------------------------------------------- regularization and constraints
    @property
    def has_regularization(self) -> bool:
        return bool(self.regularized) or any(layer.activity_regularizer is not None for layer in self.layers)

    def weight_penalty(self) -> float:
        """The weight regularizers' penalties summed (host arrays: the cuda backend refuses regularizers)."""
        return sum(reg.penalty(w) for reg, w, _ in self.regularized)

    def add_penalty_gradients(self, regularized=None) -> None:
        """Add each weight regularizer's gradient to its weight's (after backward); ``regularized``: only
        these of ``self.regularized`` (data-parallel training adds them bucket by bucket)."""
        for reg, w, grad in self.regularized if regularized is None else regularized:
            grad += reg.gradient(w)

    def apply_constraints(self) -> None:
        """Project each constrained weight back (after an optimizer step)."""
        for constraint, w in self.constrained:
            w[...] = constraint(w)

    # ------------------------------------------------------------- running
    def forward(self, x, training: bool):
        """Outputs for a batch (an array, or a dict by input name); pre-activation where a loss fused the
        output activation. One output: an array; several: a dict by output name. The penalty of the
        activity regularizers (each over its layer's output, divided by the batch size, as Keras') is left
        in ``activity_penalty``."""
        values: dict[str, np.ndarray] = dict(x) if isinstance(x, dict) else {next(iter(self.input_shapes)): x}
        self.activity_penalty = 0.0
        self._activity_outputs = {}
        masks: dict | None = {} if self.masked else None
        for node in self.nodes:
            layer = node.layer
            if masks is not None:
                ins = [masks.get(s) for s in node.inputs]
                if layer.takes_mask:  # a layer of several inputs gets theirs (or None when none has one)
                    layer.mask = ins[0] if layer.n_inputs else (ins if any(m is not None for m in ins) else None)
            if layer.absorbed_by is not None or (not training and layer.inference_absorbed_by is not None):
                # the layer before it already did its work
                values[layer.name] = values[node.inputs[0]]
                if masks is not None:
                    masks[layer.name] = ins[0]
                continue
            if layer.n_inputs == 0:
                values[layer.name] = layer.forward([values[s] for s in node.inputs], training)
            else:
                if len(node.inputs) > 1:
                    layer.extra_inputs = [values[s] for s in node.inputs[1:]]
                values[layer.name] = layer.forward(values[node.inputs[0]], training)
            for i, extra in enumerate(layer.extra_outputs, 1):
                values[output_name(layer.name, i)] = extra
            if masks is not None:
                masks[layer.name] = layer.output_mask(ins)
            if layer.activity_regularizer is not None:
                y = values[layer.name]
                self.activity_penalty += layer.activity_regularizer.penalty(y) / len(y)
                self._activity_outputs[layer.name] = y
        if len(self.outputs) == 1:
            return values[self.outputs[0]]
        return {name: values[name] for name in self.outputs}

    def backward(self, d_output, after_node=None) -> None:
        """Fill the gradient buffer from the gradient of the loss with respect to the output (a dict by
        output name when there are several). ``after_node``, where given, is called with each node's index
        once its backward ran (data-parallel training sends finished parts of the gradient then)."""
        grads = dict(d_output) if isinstance(d_output, dict) else {self.outputs[0]: d_output}
        for i in range(len(self.nodes) - 1, -1, -1):
            self._backward_node(self.nodes[i], grads)
            if after_node is not None:
                after_node(i)

    def _backward_node(self, node, grads: dict) -> None:
        """One node's backward pass: its gradients, and its inputs' added to ``grads``."""
        layer = node.layer
        dy = grads.pop(layer.name, None)
        if layer.extra_output_shapes:
            layer.extra_output_grads = [grads.pop(output_name(layer.name, i), None)
                                        for i in range(1, len(layer.extra_output_shapes) + 1)]
        if (dy is None and not any(g is not None for g in layer.extra_output_grads)) \
                or not self._grad_flows[layer.name]:
            return  # nothing at or before it learns (a frozen base): no work at all
        if layer.name in self._activity_outputs:
            y = self._activity_outputs[layer.name]
            penalty = layer.activity_regularizer.gradient(y) / len(y)
            dy = penalty if dy is None else dy + penalty
        dx = dy if layer.absorbed_by is not None else layer.backward(dy)
        dxs = dx if layer.n_inputs == 0 else [dx, *layer.extra_input_grads]
        for src, g in zip(node.inputs, dxs or ()):
            if g is None or src in self.input_shapes:
                continue
            grads[src] = g if src not in grads else self.ops.add_n([grads[src], g])

    def inference_batch(self, batch_size: int) -> int:
        """How many samples to run through the model at once for inference (at most ``batch_size``)."""
        per_sample = max(math.prod(layer.inference_output_shape) for layer in self.layers) * self.dtype.itemsize
        return max(1, min(batch_size, INFERENCE_ACTIVATION_BYTES // max(per_sample, 1)))

    def predict_batch(self, x):
        """Inference outputs (probabilities where an output ends in softmax or sigmoid)."""
        out = self.forward(x, training=False)
        outs = out if isinstance(out, dict) else {self.outputs[0]: out}
        for name, act in self.output_activations.items():
            o = outs[name]
            outs[name] = self.ops.bias_activation_forward(o, self.ops.no_bias(o.dtype), act,
                                                          self.ops.empty(o.shape, o.dtype))
        return outs if isinstance(out, dict) else outs[self.outputs[0]]
