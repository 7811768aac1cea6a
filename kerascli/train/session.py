"""Assemble a trainable session from a resolved spec: model, loss, metrics, optimizer, data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kerascli.config.schema import RunSpec
from kerascli.data.pipeline import Split, prepare_splits
from kerascli.errors import ConfigError
from kerascli.graph.builder import build_model
from kerascli.metrics import make_metric
from kerascli.ops import get_backend
from kerascli.registry import LOSSES, OPTIMIZERS
from kerascli.runs.checkpoint import apply_weights, load_checkpoint
from kerascli.train.loop import Trainer
from kerascli.train.threads import set_threads


@dataclass
class Session:
    spec: RunSpec
    model: object
    trainer: Trainer


def check_output(spec: RunSpec, model) -> None:
    if len(model.output_shape) != 1:
        where = spec.source.where(("model", "layers")) if spec.source else None
        raise ConfigError(
            f"the model's output has shape {model.output_shape}; losses need one vector per sample, "
            "e.g. end with Flatten and Dense",
            key="model.layers", where=where,
        )


# A batch whose largest layer output would exceed this is refused before training.
MAX_ACTIVATION_BYTES = 4 << 30


def check_activation_size(spec: RunSpec, model) -> None:
    itemsize = 8 if spec.train["dtype"] == "float64" else 4
    for layer in model.layers:
        need = int(np.prod(layer.output_shape, dtype=np.int64)) * spec.train["batch_size"] * itemsize
        if need > MAX_ACTIVATION_BYTES:
            where = spec.source.where(("train", "batch_size")) if spec.source else None
            raise ConfigError(
                f"a batch of {spec.train['batch_size']} would need {need / 2**30:.1f} GiB for the output of layer "
                f"{layer.name!r} {layer.output_shape}; use a smaller batch_size or model",
                key="train.batch_size", where=where,
            )


def build_session(spec: RunSpec, *, initial_weights: bool = True) -> Session:
    """Model with weights (initialised from the seed, then ``model.weights`` if given) and a trainer."""
    model = build_model(spec.model, spec.source)
    check_output(spec, model)
    check_activation_size(spec, model)
    model.allocate(np.dtype(spec.train["dtype"]), spec.seed)
    model.set_backend(get_backend(spec.train["backend"]), spec.seed)
    threads = set_threads(spec.train["threads"], batch_parallel=any(layer.batch_parallel for layer in model.layers))
    loss = LOSSES.get(spec.compile["loss"])()
    fused = loss.fuses is not None and model.fuse_output_activation(loss.fuses)
    model.fuse_layers()
    units = model.output_shape[0]
    metrics = [make_metric(name, loss.name, units) for name in spec.compile["metrics"]]
    opt_cfg = {k: v for k, v in spec.compile["optimizer"].items() if k != "type"}
    optimizer = OPTIMIZERS.get(spec.compile["optimizer"]["type"])(opt_cfg, model.param_buffer.size, model.dtype, model.ops)
    if initial_weights and spec.model.weights:
        ckpt = load_checkpoint(spec.model.weights)
        apply_weights(model, ckpt.weights(), spec.model.weights)
    trainer = Trainer(model, loss, metrics, optimizer, fused)
    trainer.threads = threads
    return Session(spec, model, trainer)


def load_data(session: Session) -> dict[str, Split]:
    spec, model = session.spec, session.model
    (input_shape,) = model.input_shapes.values()
    return prepare_splits(spec.data, spec.seed, input_shape, session.trainer.loss, model.output_shape[0], model.dtype)
