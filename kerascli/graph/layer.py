"""The Layer contract: declare params, build from input shapes, forward, backward.

A layer keeps what its backward pass needs from the last forward call, so a
reader sees both directions of its math together. Weights live in the model's
flat buffers: ``self.params[name]`` and ``self.grads[name]`` are views that a
layer reads and writes in place (``out=`` or ``[...] =``), never rebinds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from kerascli.config.params import Param


class ShapeError(ValueError):
    """A layer cannot take the shape it is given; the builder adds the layer's location."""


class AxesToEnd:
    """Keras ``axis`` arguments (an int or a list, counted with the batch axis as 0, negative from the end)
    on inputs of ``input_shape`` (no batch axis): the per-sample axes, sorted, and the permutations that
    move them to the end of each sample and back, so that a kernel over the rows of a 2-D array does the
    work. ``moves`` is False when they are at the end already (no copy needed)."""

    def __init__(self, axis, input_shape):
        rank = len(input_shape) + 1
        given = axis if isinstance(axis, list) else [axis]
        axes = []
        for a in given:
            if not -rank <= a < rank or a % rank == 0:
                raise ShapeError(f"axis {a} is not a feature axis of input {tuple(input_shape)} "
                                 f"(1..{rank - 1}, or -1..-{rank - 1})")
            axes.append(a % rank - 1)
        if len(set(axes)) != len(axes):
            raise ShapeError(f"axis {axis} names an axis twice")
        self.axes = sorted(axes)
        self.to_end = [a for a in range(len(input_shape)) if a not in self.axes] + self.axes
        self.back = [self.to_end.index(a) for a in range(len(input_shape))]
        self.moves = self.to_end != list(range(len(input_shape)))
        self.size = math.prod(input_shape[a] for a in self.axes)  # the row length once moved and flattened
        self.shape = tuple(input_shape[a] for a in self.axes)

    def rows(self, ops, x):
        """``x`` (batch first) as 2-D rows over the axes."""
        moved = ops.transpose_samples(x, self.to_end) if self.moves else x
        return moved.reshape(-1, self.size), moved.shape

    def restore(self, ops, rows, moved_shape):
        """The inverse of ``rows``."""
        moved = rows.reshape(moved_shape)
        return ops.transpose_samples(moved, self.back) if self.moves else moved


@dataclass
class WeightSpec:
    name: str
    shape: tuple
    initializer: Any  # a registered name, or {type: name, argument: value, ...}
    trainable: bool = True  # updated by the optimizer (False for statistics, and for a frozen layer's weights)
    regularizer: Any = None  # a resolved regularizer config (kerascli/regularizers.py), or None
    constraint: Any = None  # a resolved constraint config (kerascli/constraints.py), or None
    frozen: bool = False  # trainable by nature, but its layer has trainable: false

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # exact: np.prod in int64 wraps around for absurd shapes


class Layer:
    type_name = "Layer"  # each subclass's is its class name (Keras' convention), unless it sets one

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "type_name" not in cls.__dict__:
            cls.type_name = cls.__name__
    PARAMS: dict[str, Param] = {}
    n_inputs = 1  # 0 means "two or more" (merge layers)
    # True for layers whose own kernels (not BLAS) do most of the work: a model with
    # one runs batch-parallel (see kerascli.ops.backend.NumbaCPUOps.set_threads)
    batch_parallel = False
    # True where this configuration computes on host arrays (an axis moved by a host copy): a device
    # backend refuses it, saying why
    host_only = False
    host_only_reason = "an axis other than the last"
    # True where training draws from ``self.rng`` (dropout, noise): data-parallel ranks other than 0
    # reseed such layers before each step (kerascli.train.distributed)
    draws_random = False
    # Keras' masks (kerascli.graph.masks): True where Keras' layer supports masking and keeps its input's
    # mask on its output unchanged; other layers end a mask (as Keras does, with a warning there), unless
    # they say otherwise in ``output_mask``
    mask_passes = False
    # True where the layer reads its input's mask: the model sets ``self.mask`` (None or a (batch, steps)
    # 0/1 array of the model's dtype) before each forward call
    takes_mask = False
    mask = None
    # More outputs than the main one (a recurrent layer's return_state): after forward, ``extra_outputs``
    # holds outputs 1, 2, ... (``name[1]``, ``name[2]`` in a config), with ``extra_output_shapes`` from build;
    # before backward the model sets ``extra_output_grads`` (None where nothing reads one), and the main
    # output's gradient passed to backward may then be None.
    extra_outputs: tuple = ()
    extra_output_shapes: tuple = ()
    extra_output_grads: tuple = ()
    # More inputs than the main one (a recurrent layer's initial states, Keras' initial_state): the model
    # sets ``extra_inputs`` before forward (``extra_input_shapes`` before build) and reads
    # ``extra_input_grads`` after backward, one gradient (or None) per extra input.
    extra_inputs: tuple = ()
    extra_input_shapes: tuple = ()
    extra_input_grads: tuple = ()

    @classmethod
    def output_count(cls, params: dict) -> int:
        """How many outputs a layer of these (resolved) params gives."""
        return 1

    extra_inputs_doc = ""  # what the extra inputs are, for messages

    def extra_input_count(self) -> int:
        """How many inputs beyond its main one this layer takes (all of them or none)."""
        return 0

    def __init__(self, name: str, config: dict):
        from kerascli import regularizers

        self.name = name
        self.config = config
        self.trainable = config.get("trainable", True)  # model.freeze may set it False before build
        self.activity_regularizer = regularizers.make(config.get("activity_regularizer"))
        self.weight_specs: list[WeightSpec] = []
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.ops: Any = None
        self.rng: np.random.Generator | None = None
        self.dtype = np.dtype(np.float32)
        self.input_shape: Any = None
        self.output_shape: tuple = ()
        self.need_input_grad = True
        self._workspace: dict[str, np.ndarray] = {}
        self._views: dict = {}  # (name, shape, dtype) -> (the workspace it views, the view)

    @property
    def inference_output_shape(self) -> tuple:
        """The shape of what this layer writes per sample in inference (a layer that runs the next one's
        work too writes that one's output)."""
        return self.output_shape

    @classmethod
    def resolve_params(cls, params: dict, error: Callable[[str, str], Exception]) -> dict:
        """Fill defaults that depend on other params (pooling strides = pool_size)."""
        return params

    # ------------------------------------------------------------- building
    def add_kernel_and_bias(self, kernel_shape, units: int) -> None:
        """The ``kernel`` and (with ``use_bias``) ``bias`` (units,) weights of a layer declaring
        kernel_and_bias_params(), with their initializers, regularizers and constraints."""
        c = self.config
        self.add_weight("kernel", tuple(kernel_shape), c["kernel_initializer"], regularizer=c["kernel_regularizer"],
                        constraint=c["kernel_constraint"])
        if c["use_bias"]:
            self.add_weight("bias", (units,), c["bias_initializer"], regularizer=c["bias_regularizer"],
                            constraint=c["bias_constraint"])

    def add_weight(self, name: str, shape: tuple, initializer: Any, trainable: bool = True,
                   regularizer: Any = None, constraint: Any = None) -> None:
        """Declare a weight. ``initializer`` is a registered name or ``{type: name, argument: value}``;
        ``regularizer`` and ``constraint`` the same for those registries, or None. A weight declared
        trainable in a layer with ``trainable: false`` is frozen: kept with the statistics, never updated."""
        from kerascli import constraints, initializers, regularizers

        shape = tuple(int(s) for s in shape)
        for value, module in ((initializer, initializers), (regularizer, regularizers), (constraint, constraints)):
            made = module.make(value)
            problem = made.check_shape(shape) if made is not None else None
            if problem:
                raise ShapeError(f"weight {name!r}: {problem}")
        frozen = trainable and not self.trainable
        self.weight_specs.append(WeightSpec(name, shape, initializer, trainable and not frozen,
                                            regularizer if trainable else None, constraint, frozen))

    def setup(self, input_shape: Any) -> tuple:
        """What the model calls: declare weights for ``input_shape`` and return the output shape."""
        return tuple(self.build(input_shape))

    def build(self, input_shape: Any) -> tuple:
        """Declare weights for ``input_shape`` (no batch axis) and return the output shape."""
        raise NotImplementedError

    def buffer_bytes(self, batch: int, threads: int, itemsize: int) -> dict[str, int]:
        """Bytes of each buffer this layer allocates for a batch of ``batch`` split over ``threads``
        threads, an upper bound checked before anything is allocated (exact integers). Layers with
        workspaces beyond their output and input gradient add them."""
        inputs = self.input_shape if self.n_inputs == 0 else [self.input_shape]
        sizes = {"output": batch * math.prod(self.output_shape) * itemsize}
        if self.need_input_grad:
            sizes["input gradient"] = batch * sum(math.prod(s) for s in inputs) * itemsize
        return sizes

    def workspace(self, name: str, shape: tuple, dtype=None) -> np.ndarray:
        """A scratch array reused across steps (no allocation, no page faults per step).

        Its contents live until the same name is asked for again: a layer may
        return one as its output or input gradient, which the next layer
        consumes within the same step. Capacity only grows, so a smaller last
        batch reuses the same memory.
        """
        dtype = np.dtype(dtype or self.dtype)
        view = self._views.get((name, shape, dtype))
        flat = self._workspace.get(name)
        if view is not None and view[0] is flat:  # the same view as last step (making one costs more on a GPU)
            return view[1]
        size = math.prod(shape)  # not np.prod: this runs several times per layer per step
        if flat is None or flat.size < size or flat.dtype != dtype:
            flat = self.ops.empty((size,), dtype)
            self._workspace[name] = flat
        out = flat[:size].reshape(shape)
        self._views[(name, shape, dtype)] = (flat, out)
        return out

    # ------------------------------------------------------------- running
    def forward(self, x: Any, training: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> Any:
        """Fill ``self.grads`` and return the input gradient (None when not needed)."""
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"type": self.type_name, "name": self.name, **self.config}

    # ------------------------------------------------------------- fusion
    # Set on a layer whose forward and backward the layer before it has taken
    # over (graph/fusion.py): the model passes values straight through it.
    absorbed_by: "Layer | None" = None
    # ... only in inference (predict, evaluate); training runs the layer itself
    inference_absorbed_by: "Layer | None" = None

    # ------------------------------------------------------------- masks
    def output_mask(self, masks: list):
        """The mask of the output from the masks of the inputs (Keras' ``compute_mask``): each None, or a
        (batch, steps) 0/1 array; when the model is built, None or True ("a mask comes")."""
        return masks[0] if self.mask_passes else None

    def mask_refused(self, masks: list) -> str | None:
        """Why this layer cannot take the masks coming (some not None), or None."""
        return None


class ActivatedLayer(Layer):
    """A layer ending in an activation the loss may fuse with (softmax + cross-entropy).

    After ``fuse_output()``, forward returns pre-activation values and backward
    receives their gradient directly from the loss.

    ``act`` is the activation the layer's kernels apply inside their own loops.
    An activation whose table row says ``own_step`` (gelu, silu, mish,
    log_softmax, ...) is not one of them: the kernels apply linear, and the
    layer applies it afterwards with ``activate`` and ``deactivate``, keeping
    what its gradient needs (the input when the row says ``needs_input``).
    """

    def __init__(self, name: str, config: dict):
        super().__init__(name, config)
        from kerascli.ops.contract import activation
        from kerascli.registry import ACTIVATIONS

        self.activation = ACTIVATIONS.get(config["activation"])
        row = activation(self.activation)
        self.act = 0 if row.own_step else self.activation  # the code the kernels apply
        self.own_act = self.activation if row.own_step else None  # applied by activate()
        self._keep_input = row.needs_input
        self.fused_output = False

    def buffer_bytes(self, batch, threads, itemsize):
        sizes = super().buffer_bytes(batch, threads, itemsize)
        if self.own_act is not None:  # activate()'s output and deactivate()'s gradient
            sizes["activation"] = 2 * batch * math.prod(self.output_shape) * itemsize
        return sizes

    def fuse_output(self) -> None:
        self.fused_output = True
        self.act = 0
        self.own_act = None

    def bias_or_none(self, dtype):
        """The layer's (units,) ``bias``, or the Ops' empty stand-in where it has none."""
        return self.params["bias"] if "bias" in self.params else self.ops.no_bias(dtype)

    def bias_and_activate(self, z: np.ndarray, with_bias: bool = True) -> np.ndarray:
        """act(z + bias) over z's last axis (the layer's own product, formed elsewhere), kept for the
        backward pass, then the own-step activation; in z's shape."""
        z2 = z.reshape(-1, z.shape[-1])
        bias = self.bias_or_none(z2.dtype) if with_bias else self.ops.no_bias(z2.dtype)
        self._y = self.ops.bias_activation_forward(z2, bias, self.act, self.workspace("y", z2.shape))
        return self.activate(self._y).reshape(z.shape)

    def activate(self, z2: np.ndarray) -> np.ndarray:
        """The own-step activation of the 2-D ``z2`` (the layer's output before it), or ``z2`` as it is."""
        if self.own_act is None:
            return z2
        y = self.ops.bias_activation_forward(z2, self.ops.no_bias(z2.dtype), self.own_act,
                                             self.workspace("activated", z2.shape))
        self._activation_saved = z2 if self._keep_input else y
        return y

    def deactivate(self, dy2: np.ndarray) -> np.ndarray:
        """The gradient through ``activate``: ``dy2`` for the output after it, returned for the output before."""
        if self.own_act is None:
            return dy2
        return self.ops.activation_backward(dy2, self._activation_saved, self.own_act,
                                            self.workspace("dactivated", dy2.shape))[0]

    def activation_backward(self, dy2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gradient through the activation and its column sums (the bias gradient, stored in the layer's
        ``bias`` gradient when it has one)."""
        dy2 = self.deactivate(dy2)
        return self.ops.activation_backward(dy2, self._y, self.act, self.workspace("dz", self._y.shape),
                                            self.grads.get("bias"))
