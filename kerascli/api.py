"""The public surface for plugins: everything a custom layer, loss, metric, optimizer, callback or dataset
may import. Anything else in kerascli is internal and may change.

    from kerascli.api import Layer, Param, register_layer

    @register_layer("ScaledDense")
    class ScaledDense(Layer):
        PARAMS = {"units": Param("int", min=1), "scale": Param("float", 1.0)}

        def build(self, input_shape):
            self.kernel = self.add_weight("kernel", (input_shape[-1], self.config["units"]))
            self.bias = self.add_weight("bias", (self.config["units"],), initializer="zeros")

        def call(self, x, training=False):
            return self.ops.relu(self.ops.matmul(x, self.kernel) + self.bias) * self.config["scale"]

A layer that writes only ``call`` gets its gradient from the tape
(kerascli.graph.tape): ``self.ops`` then offers the primitives ``matmul``,
``add``, ``multiply``, ``activation``, ``sum``, ``mean``, ``reshape``,
``concat`` ... (``ops`` below, also usable in losses and metrics), and the
arithmetic operators work on the values it gives. A layer that also writes
``backward(dy)`` runs ``call`` on plain arrays with the backend's Ops and fills
``self.grads[name]`` itself, for speed.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Callable

import numpy as np

from kerascli.config.params import Param
from kerascli.data.datasets import Dataset as _Dataset
from kerascli.errors import ConfigError
from kerascli.graph.layer import Layer as _Layer
from kerascli.graph.layer import ShapeError
from kerascli.graph.tape import PRIMITIVES, Tape, TapeOps, Var
from kerascli.optimizers import Optimizer as _Optimizer
from kerascli.plugins import current_source
from kerascli.registry import (
    CALLBACKS,
    DATASETS,
    LAYERS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    NameClash,
)

__all__ = ["Layer", "Loss", "Metric", "Optimizer", "Callback", "Dataset", "PyDataset", "Param", "ShapeError",
           "ops", "register_layer", "register_loss", "register_metric", "register_optimizer", "register_callback",
           "register_dataset"]

ops = PRIMITIVES  # the differentiable primitives, for losses and metrics written as functions


class _WeightRef:
    """What ``add_weight`` returns: stands for the weight until ``call`` runs, when the layer's attribute
    holding it is pointed at the current value (a taped value, or the array itself)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self):
        return f"<weight {self.name}>"


class Layer(_Layer):
    """A Keras-style layer: ``build(input_shape)`` with ``add_weight``, ``call(inputs, training)``,
    optionally ``compute_output_shape(input_shape)`` (otherwise ``call`` is run once on zeros to find it),
    ``get_config``, and optionally a hand-written ``backward``. ``self.config`` holds the arguments
    declared in ``PARAMS``; ``self.rng`` is the layer's seeded random generator."""
    draws_random = True  # a plugin's layer may use self.rng

    PARAMS: dict[str, Param] = {}

    # ``self.ops`` offers the primitives (on taped values while call runs for a gradient, on plain arrays
    # otherwise) and every kernel and method of the backend's Ops
    @property
    def ops(self):
        return self._tape_ops

    @ops.setter
    def ops(self, backend):
        self._tape_ops = backend if backend is None or isinstance(backend, TapeOps) else TapeOps(backend)

    def add_weight(self, name: str, shape, initializer: str = "glorot_uniform", trainable: bool = True):
        super().add_weight(name, tuple(shape), initializer, trainable)
        return _WeightRef(name)

    def build(self, input_shape) -> None:
        """Create weights with add_weight (nothing to do for a layer without weights)."""

    def call(self, inputs, training: bool = False):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return None  # not given: found by running call once

    # ---------------------------------------------------------------- what the model calls
    def setup(self, input_shape) -> tuple:
        self.build(input_shape)
        shape = self.compute_output_shape(input_shape)
        if shape is None:
            shape = self._probe_output_shape(input_shape)
        return tuple(int(s) for s in shape)

    def _probe_output_shape(self, input_shape) -> tuple:
        """Run ``call`` on one sample of zeros (weights zero too) to learn the output shape."""
        from kerascli.ops import get_ops

        shapes = input_shape if self.n_inputs == 0 else [input_shape]
        inputs = [np.zeros((1,) + tuple(s)) for s in shapes]
        weights = {w.name: np.zeros(w.shape) for w in self.weight_specs}
        saved_ops = self.ops
        try:
            self.ops = get_ops("reference")
            with self._weights_bound(weights):
                out = self._call(inputs if self.n_inputs == 0 else inputs[0], False)
        except ShapeError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code: one message naming the layer
            raise ShapeError(f"call failed on input of shape {tuple(input_shape)}: {type(exc).__name__}: {exc}") \
                from None
        finally:
            self.ops = saved_ops
        out = out.value if isinstance(out, Var) else np.asarray(out)
        if out.ndim < 1 or out.shape[0] != 1:
            raise ShapeError(f"call must return one output row per input row (with the batch axis first), got "
                             f"shape {out.shape} for a batch of 1")
        return out.shape[1:]

    @contextlib.contextmanager
    def _weights_bound(self, values: dict):
        """Point each attribute that holds a weight reference at ``values[name]`` while call runs."""
        refs = {attr: ref for attr, ref in vars(self).items() if isinstance(ref, _WeightRef)}
        for attr, ref in refs.items():
            setattr(self, attr, values[ref.name])
        try:
            yield
        finally:
            for attr, ref in refs.items():
                setattr(self, attr, ref)

    def _call(self, inputs, training):
        cls = type(self)
        if "_call_takes_training" not in cls.__dict__:  # read the signature once per class, not per batch
            cls._call_takes_training = "training" in inspect.signature(cls.call).parameters
        return self.call(inputs, training=training) if cls._call_takes_training else self.call(inputs)

    def _hand_written_backward(self) -> bool:
        return type(self).backward is not Layer.backward

    def forward(self, x, training):
        expected = (len(x[0]) if self.n_inputs == 0 else len(x),) + self.output_shape
        if self._hand_written_backward():
            if not getattr(self, "_weights_live", False):
                # the weights' attributes become the live weight arrays, for call and backward alike (they
                # are views into the model's buffers, updated in place): once
                for attr, ref in list(vars(self).items()):
                    if isinstance(ref, _WeightRef):
                        setattr(self, attr, self.params[ref.name])
                self._weights_live = True
            out = np.asarray(self._call(x, training))
            self._check_output(out.shape, expected)
            return out
        tape = Tape()
        self._tape = tape
        xs = x if self.n_inputs == 0 else [x]
        self._input_vars = [tape.watch(v, needs_grad=self.need_input_grad) for v in xs]
        self._weight_vars = {name: tape.watch(value, needs_grad=name in self.grads)
                             for name, value in self.params.items()}
        with self._weights_bound(self._weight_vars):
            out = self._call(self._input_vars if self.n_inputs == 0 else self._input_vars[0], training)
        if not isinstance(out, Var):
            out = tape.watch(np.asarray(out), needs_grad=False)  # does not depend on inputs or weights
        self._check_output(out.shape, expected)
        self._out = out
        return out.value.astype(self.dtype, copy=False)

    def _check_output(self, got, expected):
        if tuple(got) != tuple(expected):
            raise ConfigError(f"layer {self.name!r} ({self.type_name}): call returned shape {tuple(got)}, expected "
                              f"{tuple(expected)} (batch, then the output shape it gave at build)")

    def backward(self, dy):
        """From the tape: weight gradients into self.grads, and the input gradient(s) returned."""
        self._tape.backward(self._out, dy)
        for name, var in self._weight_vars.items():
            if name in self.grads:
                self.grads[name][...] = var.grad
        self._tape = None
        if not self.need_input_grad:
            return None
        grads = [v.grad.astype(self.dtype, copy=False) for v in self._input_vars]
        return grads if self.n_inputs == 0 else grads[0]


class Loss:
    """A loss as a class: ``call(y_true, y_pred)`` returns one value per sample, from ``ops`` primitives.
    ``targets(y, units, dtype)`` may convert labels as stored in the dataset (default: floats, one column
    per output unit when the labels are one per sample)."""

    def call(self, y_true, y_pred):
        raise NotImplementedError

    def targets(self, y, units, dtype):
        y = np.asarray(y)
        return (y.reshape(-1, 1) if y.ndim == 1 and units == 1 else y).astype(dtype)


class Metric:
    """A metric as a class: ``call(y_true, y_pred)`` returns one value per sample (or their mean)."""

    def call(self, y_true, y_pred):
        raise NotImplementedError


Optimizer = _Optimizer  # subclass with PARAMS, SLOTS and apply(params, grads) over the flat buffers
Dataset = _Dataset  # subclass with PARAMS (and SPLITS) and a static load(params): see its docstring


class PyDataset:
    """A dataset given batch by batch, as Keras' ``keras.utils.PyDataset``: ``__len__`` is the number of
    batches in an epoch and ``__getitem__(index)`` returns batch ``index`` as ``(x, y)`` (arrays, or dicts of
    them by input and output name). ``on_epoch_end`` runs after each training epoch. A ``Dataset``'s ``load``
    may return one (or a dict of them by split). Batches are asked for by index, in a seeded order when
    ``train.shuffle`` is on: give the same batch for the same index, and a resumed run trains exactly as
    an uninterrupted one."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int):
        raise NotImplementedError

    def on_epoch_end(self) -> None: ...


class Callback:
    """Keras' callback hooks. ``self.config`` holds the arguments declared in ``PARAMS``; ``self.model`` is
    the model being trained (``self.model.optimizer`` its optimizer); set ``self.stop_training = True`` to
    stop after the current epoch. ``self.run_dir`` is the run directory; ``save_checkpoint(path)`` writes
    a checkpoint."""

    PARAMS: dict[str, Param] = {}

    def __init__(self, config: dict):
        self.config = config
        self.model = None
        self.stop_training = False
        self.run_dir: str | None = None  # the run directory (set before on_train_begin)
        self._write_checkpoint = None

    def save_checkpoint(self, path: str, weights_only: bool = False) -> None:
        """Write a checkpoint of the training now to ``path`` (atomically; the run's own format, which
        ``evaluate``, ``predict``, ``resume`` and ``model.weights`` read); ``weights_only`` leaves out the
        optimizer's state."""
        self._write_checkpoint(path, weights_only)

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...

    def get_state(self):
        """JSON-able state to keep in checkpoints (counters, best values), or None; a resumed run hands it
        to ``set_state`` after ``on_train_begin``."""
        return None

    def set_state(self, state) -> None: ...


# ---------------------------------------------------------------- registration
def _add(registry, name: str, item: Any, aliases: tuple, module: str | None) -> None:
    try:
        registry.add(name, item, *aliases, source=current_source(module))
    except NameClash as exc:
        raise ConfigError(str(exc)) from None


def _require(cls, base, methods: tuple[str, ...], what: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{what} must be a subclass of kerascli.api.{base.__name__}, got {cls!r}")
    missing = [m for m in methods if getattr(cls, m) is getattr(base, m)]
    if missing:
        raise ConfigError(f"{what} {cls.__name__} does not define {', '.join(missing)}")


def register_layer(name: str | None = None, *aliases: str) -> Callable[[type], type]:
    """Register a Layer subclass under ``name`` (default: the class name) as a ``type:`` for configs."""

    def decorator(cls):
        _require(cls, Layer, ("call",), "a registered layer")
        cls.type_name = name or cls.__name__
        _add(LAYERS, cls.type_name, cls, aliases, cls.__module__)
        return cls

    return decorator


def _instance_if_class(item, base, what: str):
    """A registered loss or metric is a function, or a subclass of ``base`` with ``call``: its instance
    (None for a function)."""
    if isinstance(item, type):
        _require(item, base, ("call",), what)
        return item()
    if not callable(item):
        raise ConfigError(f"{what} must be a function or a {base.__name__} subclass, got {item!r}")
    return None


def register_loss(name: str, *aliases: str) -> Callable:
    """Register ``fn(y_true, y_pred) -> per-sample values`` (or a Loss subclass) as a ``compile.loss``."""

    def decorator(item):
        from kerascli.losses import FunctionLoss

        instance = _instance_if_class(item, Loss, "a registered loss")
        call, targets = (instance.call, instance.targets) if instance else (item, Loss().targets)
        _add(LOSSES, name, FunctionLoss.make(name, call, targets), aliases, getattr(item, "__module__", None))
        return item

    return decorator


def register_metric(name: str, *aliases: str) -> Callable:
    """Register ``fn(y_true, y_pred) -> per-sample values`` (or a Metric subclass) for ``compile.metrics``."""

    def decorator(item):
        from kerascli.metrics import FunctionMetric

        instance = _instance_if_class(item, Metric, "a registered metric")
        _add(METRICS, name, FunctionMetric.make(instance.call if instance else item), aliases,
             getattr(item, "__module__", None))
        return item

    return decorator


def _register_class(registry, base, methods: tuple[str, ...], what: str, name: str | None, aliases: tuple):
    def decorator(cls):
        _require(cls, base, methods, what)
        _add(registry, name or cls.__name__, cls, aliases, cls.__module__)
        return cls

    return decorator


def register_optimizer(name: str, *aliases: str) -> Callable[[type], type]:
    """Register an Optimizer subclass (with ``apply``) as a ``compile.optimizer`` type."""
    return _register_class(OPTIMIZERS, Optimizer, ("apply",), "a registered optimizer", name, aliases)


def register_dataset(name: str, *aliases: str) -> Callable[[type], type]:
    """Register a Dataset subclass (with ``load``) as a ``data.dataset``."""
    return _register_class(DATASETS, Dataset, ("load",), "a registered dataset", name, aliases)


def register_callback(name: str | None = None, *aliases: str) -> Callable[[type], type]:
    """Register a Callback subclass (default name: the class name) for the ``callbacks:`` section."""
    return _register_class(CALLBACKS, Callback, (), "a registered callback", name, aliases)
