"""Assemble a trainable session from a resolved spec: model, loss, metrics, optimizer, data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kerascli.config.loader import format_key
from kerascli.config.schema import RunSpec
from kerascli.data.pipeline import dataset_encoding, made_one_at_a_time, prepare_splits
from kerascli.data.prefetch import PrefetchedSplit
from kerascli.data.preprocess import Standardizer, standardized_split
from kerascli.errors import ConfigError
from kerascli.graph.builder import build_model
from kerascli.ops import BackendUnavailable, get_ops
from kerascli.registry import OPTIMIZERS
from kerascli.runs.checkpoint import apply_weights, load_checkpoint
from kerascli.train.loop import Trainer
from kerascli.train.objective import Objective
from kerascli.train.threads import choose_threads


@dataclass
class Session:
    spec: RunSpec
    model: object
    trainer: Trainer
    notes: list = field(default_factory=list)  # things the user should hear about (printed by commands)
    # what the inputs go through before the model (rescale, samplewise, fitted featurewise statistics): made
    # by load_data, fitted on the training split there unless taken from a checkpoint before
    standardizer: Standardizer | None = None
    # a table's column encoding (kerascli.data.table.Encoding: features, categories, class names), from the
    # training file or a checkpoint; None for other datasets
    encoding: object = None

    @property
    def class_names(self) -> list[str] | None:
        """The data's class names (a table's text labels, an image folder's class folders), else None."""
        return self.encoding.classes if self.encoding is not None else None

    def input_entries(self) -> dict:
        """Checkpoint entries that say how raw inputs become the model's: the fitted statistics and the
        column encoding."""
        out = self.standardizer.arrays() if self.standardizer is not None else {}
        if self.encoding is not None:
            out["_encoding"] = np.array(self.encoding.to_json())
        return out

    def take_inputs_from(self, ckpt) -> None:
        """Use the statistics and encoding stored in checkpoint ``ckpt`` (evaluate, predict)."""
        from kerascli.data.table import Encoding

        self.standardizer = Standardizer.from_config(self.spec.data)
        self.standardizer.load(ckpt.arrays, ckpt.path)
        if "_encoding" in ckpt.arrays:
            self.encoding = Encoding.from_json(str(ckpt.arrays["_encoding"]), ckpt.path)


def check_output(spec: RunSpec, model) -> None:
    for name, shape in model.output_shapes.items():
        if len(shape) != 1:
            where = spec.source.where(("model", "layers")) if spec.source else None
            what = "the model's output" if len(model.outputs) == 1 else f"output {name!r}"
            raise ConfigError(
                f"{what} has shape {shape}; losses need one vector per sample, e.g. end with Flatten and Dense",
                key="model.layers", where=where,
            )


# A buffer larger than this (one layer's output over a batch, a convolution's patches...) is refused
# before anything is allocated, and so are all buffers together beyond the machine's memory.
MAX_BUFFER_BYTES = 4 << 30


def check_buffer_sizes(spec: RunSpec, model, threads: int) -> None:
    itemsize = 8 if spec.train["dtype"] == "float64" else 4
    batch = spec.train["batch_size"]
    paths = dict(zip((layer["name"] for layer in spec.model.layers), spec.model.layer_paths or []))
    total = sum(w.size for layer in model.layers for w in layer.weight_specs) * itemsize * 4  # weights, grads, slots
    for layer in model.layers:
        for what, need in layer.buffer_bytes(batch, threads, itemsize).items():
            total += need
            if need > MAX_BUFFER_BYTES:
                path = paths.get(layer.name, ("train", "batch_size"))
                raise ConfigError(
                    f"layer {layer.name!r} would need {need / 2**30:,.1f} GiB for its {what} with batch_size {batch} "
                    f"(limit {MAX_BUFFER_BYTES >> 30} GiB per buffer); use a smaller batch_size or layer",
                    key=format_key(path), where=spec.source.where(path) if spec.source else None,
                )
    have, where = model.ops.memory_bytes(), model.ops.memory_name
    if total > have:
        raise ConfigError(f"the model's weights and buffers would need {total / 2**30:,.1f} GiB with batch_size "
                          f"{batch}, more than {where} {have / 2**30:,.1f} GiB of memory; use a "
                          "smaller batch_size or model", key="train.batch_size",
                          where=spec.source.where(("train", "batch_size")) if spec.source else None)


def build_session(spec: RunSpec, *, initial_weights: bool = True, storage=None) -> Session:
    """Model with weights (initialised from the seed, then ``model.weights`` if given) and a trainer
    (``storage``: see Model.allocate)."""
    model = build_model(spec.model, spec.source)
    check_output(spec, model)
    threads, note = choose_threads(spec.train["threads"])
    ops = backend_ops(spec)
    model.set_backend(ops, spec.seed)
    check_buffer_sizes(spec, model, threads)
    model.allocate(np.dtype(spec.train["dtype"]), spec.seed, storage)
    objective = Objective(model, *per_output(spec.compile, model.outputs))
    refuse_unsupported(ops, model, objective, spec)
    model.fuse_layers()
    opt_cfg = {k: v for k, v in spec.compile["optimizer"].items() if k != "type"}
    optimizer = OPTIMIZERS.get(spec.compile["optimizer"]["type"])(opt_cfg, model.param_buffer.size, model.dtype, model.ops)
    placed = sorted((model.slices[key].start, spec.shape) for key, _, spec in model.weight_items(trainable_only=True))
    starts = [start for start, _ in placed]
    optimizer.set_weights_layout(starts + [model.param_buffer.size] if starts else [0, 0],
                                 [shape for _, shape in placed])
    session = Session(spec, model, Trainer(model, objective, optimizer), [note] if note else [])
    use_threads(session, threads)
    if initial_weights:
        load_initial_weights(session)
    return session


def _backend_where(spec: RunSpec):
    return spec.source.where(("train", "backend")) if spec.source else None


def backend_ops(spec: RunSpec):
    """The Ops of ``train.backend``, or a ConfigError saying why it cannot run here."""
    try:
        return get_ops(spec.train["backend"])
    except BackendUnavailable as exc:
        raise ConfigError(str(exc), key="train.backend", where=_backend_where(spec)) from None


def refuse_unsupported(ops, model, objective, spec: RunSpec) -> None:
    """A ConfigError when the Ops has no kernels for one of the model's layers, losses or metrics."""
    reason = ops.unsupported(model, objective)
    if reason:
        raise ConfigError(f"backend {ops.name}: {reason}", key="train.backend", where=_backend_where(spec))


def use_threads(session: Session, threads: int) -> None:
    """Switch the session to ``threads`` threads (a deterministic resume takes its run's count)."""
    batch_parallel = any(layer.batch_parallel for layer in session.model.layers)
    session.trainer.threads = session.model.ops.set_threads(threads, batch_parallel=batch_parallel)


def load_initial_weights(session: Session) -> None:
    """Start from ``model.weights`` when the config names a file (a resume takes its checkpoint's instead)."""
    path = session.spec.model.weights
    if path:
        apply_weights(session.model, load_checkpoint(path).weights(), path)


def adapt_layers(session: Session, splits: dict) -> None:
    """Fit the layers that adapt to data (Normalization without mean and variance) to the training split's
    inputs, batch by batch, before a run's first epoch (a resume takes them from its checkpoint). Such a
    layer must take a model input directly: nothing before it is trained yet."""
    model = session.model
    for node in model.nodes:
        layer = node.layer
        if not getattr(layer, "needs_adapt", False):
            continue
        source = node.inputs[0]
        if source not in model.input_shapes:
            raise ConfigError(f"layer {layer.name!r} ({layer.type_name}) adapts its mean and variance to the training "
                              f"data of a model input, but takes {source!r}; put it right after an input or give "
                              "mean and variance")
        train = splits["train"]
        batch = session.spec.train["batch_size"]
        layer.adapt(x[source] if isinstance(x, dict) else x for x, _, _ in train.batches(batch))


def per_output(compile_: dict, outputs: list[str]) -> tuple[dict, dict, dict]:
    """(loss, loss weight, metrics) of each output from the resolved compile section (with one output its
    loss is a name or a mapping with 'type' and its metrics a list; with several, mappings by output name)."""
    loss, weights, metrics = compile_["loss"], compile_.get("loss_weights") or {}, compile_["metrics"]
    losses = {outputs[0]: loss} if len(outputs) == 1 else loss
    metrics = metrics if isinstance(metrics, dict) else {o: list(metrics) for o in outputs}
    return losses, weights, metrics


def load_data(session: Session) -> dict:
    """The run's splits, standardised (and the training split augmented) as the data config asks; feature-wise
    statistics are fitted on the training split unless the session took them from a checkpoint."""
    spec, model = session.spec, session.model
    splits = prepare_splits(spec.data, spec.seed, model, session.trainer.objective, model.dtype,
                            spec.train["batch_size"], encoding=session.encoding)
    if session.encoding is None:
        session.encoding = dataset_encoding(spec.data)
    if session.standardizer is None:
        session.standardizer = Standardizer.from_config(spec.data)
    standardizer = session.standardizer
    if standardizer.needs_fit:
        standardizer.fit(splits["train"], spec.train["batch_size"])
    params = spec.data.get("augmentation")
    from kerascli.data.augment import AugmentedSplit, transforms_at_random

    augmented = bool(params) and transforms_at_random(params)
    if standardizer.active:
        for name in [s for s in splits if s != "train" or not augmented]:
            splits[name] = standardized_split(splits[name], standardizer)
    if augmented:
        host_ops = model.ops if model.ops.name in ("cpu", "reference") else get_ops("cpu")  # made on the host
        splits["train"] = AugmentedSplit(splits["train"], params, spec.seed, host_ops, standardizer)
    set_class_weight(session, splits)
    for name, split in splits.items():
        depth, workers = prefetch_depth(spec.data, split), spec.data.get("workers", 1)
        if depth or workers > 1:
            splits[name] = PrefetchedSplit(split, depth, workers)
    return splits


def prefetch_depth(data_spec: dict, split) -> int:
    """data.prefetch, or by default 2 for batches that cost something to make (read from a file, augmented,
    given by the dataset) and 0 for arrays in memory."""
    if data_spec.get("prefetch") is not None:
        return data_spec["prefetch"]
    return 2 if made_one_at_a_time(split) else 0


def set_class_weight(session: Session, splits: dict) -> None:
    """The objective's weight of each class id from ``train.class_weight`` (``balanced``: from the training
    split's labels, n / (classes * count), 0 for a class it lacks)."""
    spec, model, objective = session.spec, session.model, session.trainer.objective
    given = spec.train.get("class_weight")
    if given is None:
        return
    units = model.output_shapes[objective.outputs[0]][0]
    classes = 2 if units == 1 else units
    where = spec.source.where(("train", "class_weight")) if spec.source else None
    if given == "balanced":
        train = splits["train"]
        if getattr(train, "streamed", False):
            raise ConfigError("class_weight: balanced counts the training labels, which a dataset given batch by "
                              "batch does not hold; give the weights ({0: 1.0, 1: 5.0, ...})",
                              key="train.class_weight", where=where)
        ids = model.ops.class_ids(np.asarray(model.ops.to_host(train.y)))
        counts = np.bincount(ids, minlength=classes)[:classes].astype(np.float64)
        table = np.divide(len(ids), classes * counts, out=np.zeros(classes), where=counts > 0)
    else:
        if len(given) != classes:
            raise ConfigError(f"class_weight gives {len(given)} classes but the output has {classes}",
                              key="train.class_weight", where=where)
        table = np.asarray(given, np.float64)
    objective.class_table = model.ops.to_device(table.astype(model.dtype))
