"""Validate a loaded YAML config and resolve it into a spec with every default filled.

The resolved spec is plain data (``RunSpec``); ``RunSpec.to_dict()`` is what a
run writes as ``config.yaml``, and loading that file again gives the same spec.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from kerascli.config.compile import (
    _resolve_class_weight,
    _resolve_compile,
    _resolve_schedule,
    monitor_names,
)
from kerascli.config.loader import LoadedConfig
from kerascli.config.params import Checker, Param, common_params
from kerascli.graph.names import output_name, parse
from kerascli.registry import (
    BUILT_IN,
    CALLBACKS,
    DATASETS,
    LAYERS,
)

TOP_KEYS = ["name", "seed", "plugins", "data", "model", "compile", "train", "checkpoint", "callbacks"]
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")  # layer names ('_' keys in checkpoints are not layers)
RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # run names are folder names: 2024-exp is fine
RUN_NAME_RULE = "must start with a letter or digit and use only letters, digits, '_', '.', '-'"


def name_from_file(path: str) -> str:
    """A run name from a config file name: 'my config.yaml' -> 'my_config', '2024-exp.yml' -> '2024-exp'."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).lstrip("_.-")
    return name or "run"

DATA_COMMON = {
    "validation_split": Param("float", 0.0, min=0.0, max=0.9, doc="fraction held out for validation"),
    "test_split": Param("float", 0.0, min=0.0, max=0.9, doc="fraction held out for the test set"),
    "shuffle": Param("bool", True, doc="shuffle (seeded) before splitting"),
    "prefetch": Param("int", None, nullable=True, min=0, max=64,
                      doc="batches made ahead on a background thread; default 2 where batches are read from a "
                          "file, augmented or given batch by batch, else 0"),
    "workers": Param("int", 1, min=1, max=64, doc="threads that make batches ahead (with prefetch); 1: one "
                                                   "background thread"),
    "normalize": Param("str", None, nullable=True, choices=("standardize", "minmax"),
                       doc="per feature, fitted on the training split and stored with the run: standardize "
                           "((x - mean) / std) or minmax ((x - min) / (max - min))"),
}
TRAIN_PARAMS = {
    "epochs": Param("int", 10, min=1, max=1_000_000),
    "batch_size": Param("int", 32, min=1),
    "shuffle": Param("bool", True, doc="reshuffle the training set every epoch"),
    "dtype": Param("str", "float32", choices=("float32", "float64")),
    "backend": Param("str", "cpu", choices=("cpu", "cuda", "auto", "reference"),
                     doc="cpu (Numba), cuda (an NVIDIA GPU through numba-cuda), auto (cuda when usable), "
                         "reference (numpy)"),
    "threads": Param("int", 0, min=0, max=1024, doc="threads for kernels and BLAS; 0 uses every core"),
    "deterministic": Param("bool", False, doc="refuse to resume on another thread count (bit-identical weights)"),
    "on_nan": Param("str", "stop", choices=("stop", "rollback"),
                    doc="when the loss turns NaN/Inf: stop, or go back to the last epoch checkpoint with half the lr"),
    "validation_freq": Param("int", 1, min=1, doc="validate every N epochs (Keras' validation_freq)"),
    "initial_epoch": Param("int", 0, min=0, doc="epochs counted as done at the start (Keras' initial_epoch)"),
    "steps_per_epoch": Param("int", None, min=1, nullable=True,
                             doc="batches per epoch, passes over the data continuing across epochs"),
    "validation_steps": Param("int", None, min=1, nullable=True, doc="validate on the first N batches"),
    "tensorboard": Param("bool", False, doc="write TensorBoard event files into the run's tensorboard/ folder "
                                            "(a TensorBoard callback with its defaults; kerascli[tensorboard])"),
}
CHECKPOINT_PARAMS = {
    "monitor": Param("str", "val_loss", doc="metric that decides best.npz"),
    "mode": Param("str", "auto", choices=("auto", "min", "max")),
    "every_steps": Param("int", 0, min=0, doc="also checkpoint every N training steps (0: off)"),
    "every_seconds": Param("float", 0.0, min=0.0, max=1e7, doc="also checkpoint every N seconds (0: off)"),
    "keep": Param("int", 3, min=1, max=1000, doc="step checkpoints kept"),
}


@dataclass
class ModelSpec:
    inputs: list[dict]  # [{name, shape}]
    layers: list[dict]  # resolved layer configs: type, name, inputs, params...
    outputs: list[str]
    sequential: bool
    weights: str | None = None
    layer_paths: list[tuple] = field(default_factory=list)  # key path of each layer in the YAML
    freeze: list[str] = field(default_factory=list)  # layers whose weights are not trained (fine-tuning)

    def to_dict(self) -> dict:
        if self.sequential:
            layers = [{k: v for k, v in layer.items() if k != "inputs"} for layer in self.layers]
            out: dict = {"input_shape": list(self.inputs[0]["shape"]), "layers": layers}
        else:
            out = {"inputs": [dict(i) for i in self.inputs], "layers": [dict(x) for x in self.layers],
                   "outputs": list(self.outputs)}
        out["weights"] = self.weights
        out["freeze"] = list(self.freeze)
        return out


@dataclass
class RunSpec:
    name: str
    seed: int
    data: dict
    model: ModelSpec
    compile: dict
    train: dict
    checkpoint: dict
    source: LoadedConfig | None = None
    plugins: list = field(default_factory=list)  # kerascli.plugins.Plugin of the config's plugins: list
    entry_point_plugins: list = field(default_factory=list)  # those installed packages provide
    callbacks: list = field(default_factory=list)  # [{type, ...arguments}]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "plugins": [p.spec for p in self.plugins],
            "data": dict(self.data),
            "model": self.model.to_dict(),
            "compile": {**self.compile, "optimizer": dict(self.compile["optimizer"])},
            "train": dict(self.train),
            "checkpoint": dict(self.checkpoint),
            "callbacks": [dict(c) for c in self.callbacks],
        }

    def plugin_records(self) -> list[dict]:
        """Every plugin this run depends on, with the SHA-256 of its source (stored with the run)."""
        return [p.to_dict() for p in self.plugins + self.entry_point_plugins]


def default_layer_name(type_name: str) -> str:
    """Keras' naming: Dense -> dense, MaxPooling2D -> max_pooling2d, BatchNormalization -> batch_normalization."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", type_name).lower()


def resolve_model_section(loaded: LoadedConfig) -> ModelSpec:
    """The model section alone, checked (kerascli import builds a model before its config is complete)."""
    check = Checker(loaded)
    return _resolve_model(check, check.mapping(loaded.data, ()).get("model"))


def resolve_config(loaded: LoadedConfig, default_name: str | None = None) -> RunSpec:
    check = Checker(loaded)
    top = check.mapping(loaded.data, ())
    check.unknown_keys(top, TOP_KEYS, ())
    # plugins first: the rest of the config may name what they register
    entry_point_plugins = _load_entry_point_plugins()
    plugins = _load_plugins(check, top.get("plugins"))

    if "name" in top:
        name = check.value(top["name"], Param("str"), ("name",))
        if not RUN_NAME_RE.match(name):
            raise check.error(("name",), f"run name {name!r} {RUN_NAME_RULE}")
    else:
        name = default_name or name_from_file(loaded.source)
    seed = check.value(top.get("seed", 42), Param("int", min=0, max=2**32 - 1), ("seed",))

    for key in ("data", "model", "compile"):
        if key not in top:
            raise check.error((), f"missing required section {key!r}")
    data = _resolve_data(check, top["data"])
    model = _resolve_model(check, top["model"])
    compile_ = _resolve_compile(check, top["compile"], model.outputs)
    raw_train = dict(check.mapping(top.get("train") or {}, ("train",)))
    class_weight = raw_train.pop("class_weight", None)
    train = check.params(raw_train, TRAIN_PARAMS, ("train",))
    train["class_weight"] = _resolve_class_weight(check, class_weight, compile_, model.outputs)
    if train["initial_epoch"] >= train["epochs"]:
        raise check.error(("train", "initial_epoch"), f"{train['initial_epoch']} leaves nothing to train with "
                                                      f"epochs: {train['epochs']} (training runs epochs "
                                                      "initial_epoch + 1 to epochs, as in Keras)")
    ckpt = check.params(check.mapping(top.get("checkpoint") or {}, ("checkpoint",)), CHECKPOINT_PARAMS, ("checkpoint",))
    monitor_ok = monitor_names(compile_)
    if ckpt["monitor"] not in monitor_ok:
        raise check.error(("checkpoint", "monitor"), f"cannot monitor {ckpt['monitor']!r} (valid: {', '.join(sorted(monitor_ok))})")
    has_val = data["validation_split"] > 0 or "val" in _given_splits(DATASETS.get(data["dataset"]), data)
    if ckpt["monitor"].startswith("val_") and not has_val:
        # nothing to validate on: the best checkpoint follows the training value instead
        ckpt["monitor"] = ckpt["monitor"][4:]
    callbacks = _resolve_callbacks(check, top.get("callbacks"))
    for i, callback in enumerate(callbacks):
        if "monitor" in callback and CALLBACKS.source(callback["type"]) == BUILT_IN:
            if callback["monitor"] not in monitor_ok:
                raise check.error(("callbacks", i, "monitor"), f"cannot monitor {callback['monitor']!r} (valid: "
                                  f"{', '.join(sorted(monitor_ok))})")
            if callback["monitor"].startswith("val_") and not has_val:
                callback["monitor"] = callback["monitor"][4:]  # as checkpoint.monitor: the training value
        if callback.get("restore_best_weights") and callback["monitor"] != ckpt["monitor"]:
            raise check.error(("callbacks", i, "restore_best_weights"), "the run's results come from "
                              f"checkpoints/best.npz, chosen by checkpoint.monitor ({ckpt['monitor']!r}); set "
                              f"checkpoint.monitor to {callback['monitor']!r} so that the best weights are this "
                              "callback's")
        if callback["type"] == "ModelCheckpoint" and CALLBACKS.source(callback["type"]) == BUILT_IN:
            _check_checkpoint_filepath(check, callback["filepath"], monitor_ok, ("callbacks", i, "filepath"))
        if callback["type"] == "TerminateOnNaN" and train["on_nan"] == "rollback":
            raise check.error(("callbacks", i), "TerminateOnNaN ends training at a NaN loss, but train.on_nan: "
                                                "rollback retries it; keep one of them")
        sets_rate = callback["type"] in ("ReduceLROnPlateau", "LearningRateScheduler")
        if sets_rate and isinstance(compile_["optimizer"].get("learning_rate"), dict):
            raise check.error(("callbacks", i), f"{callback['type']} sets the learning rate, but "
                              "compile.optimizer.learning_rate is a schedule, which decides it (as in Keras)")
    return RunSpec(name=name, seed=seed, data=data, model=model, compile=compile_, train=train,
                   checkpoint=ckpt, source=loaded, plugins=plugins, entry_point_plugins=entry_point_plugins,
                   callbacks=callbacks)


def _load_entry_point_plugins() -> list:
    from kerascli import plugins

    return plugins.load_entry_points()


def _load_plugins(check: Checker, raw: Any) -> list:
    from kerascli import plugins

    if raw is None:
        return []
    items = check.value(raw, Param("str_list"), ("plugins",))
    loaded = []
    for i, item in enumerate(items):
        try:
            loaded.append(plugins.load(item))
        except plugins.PluginError as exc:
            raise check.error(("plugins", i), exc.message) from None
    return loaded


def _check_checkpoint_filepath(check: Checker, filepath: str, monitor_ok: set, path: tuple) -> None:
    """A ModelCheckpoint filepath: an .npz name whose fields are epoch, batch or logged values."""
    from kerascli.keras_callbacks import filepath_fields

    try:
        fields = filepath_fields(filepath)
    except ValueError as exc:
        raise check.error(path, f"{filepath!r}: {exc}") from None
    valid = {"epoch", "batch"} | monitor_ok | {"lr", "seconds"}
    unknown = [f for f in fields if f not in valid]
    if unknown:
        raise check.error(path, f"{{{unknown[0]}}} is not a logged value (fields: epoch, batch, "
                                f"{', '.join(sorted(valid - {'epoch', 'batch'}))})")
    if not filepath.endswith(".npz"):
        raise check.error(path, f"{filepath!r}: kerascli checkpoints are .npz files; end the name with .npz")


def _resolve_callbacks(check: Checker, raw: Any) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise check.error(("callbacks",), f"expected a list of callbacks ({{type: Name, ...}}), got {raw!r}")
    out = []
    for i, item in enumerate(raw):
        p = ("callbacks", i)
        item = {"type": item} if isinstance(item, str) else check.mapping(item, p, "a callback name or mapping")
        if "type" not in item:
            valid = ", ".join(CALLBACKS.names()) or "none: plugins register callbacks"
            raise check.error(p, f"missing required key 'type' (valid: {valid})")
        type_name = check.value(item["type"], Param("str", choices=CALLBACKS), p + ("type",))
        params = CALLBACKS.get(type_name).PARAMS
        # an argument of kind "schedule" is a learning-rate schedule mapping, checked as compile's are
        schedules = [k for k, param in params.items() if param.kind == "schedule" and k in item]
        plain = {k: v for k, v in item.items() if k not in schedules}
        resolved = check.params(plain, {k: v for k, v in params.items() if k not in schedules}, p,
                                fixed=("type",) + tuple(schedules))
        for key in schedules:
            resolved[key] = _resolve_schedule(check, check.mapping(item[key], p + (key,), "a schedule mapping "
                                                                   "({type: ExponentialDecay, ...})"), p + (key,))
        missing = [k for k, param in params.items() if param.kind == "schedule" and param.required and k not in item]
        if missing:
            raise check.error(p, f"missing required key {missing[0]!r}")
        out.append({"type": type_name, **resolved})
    return out


def _given_splits(dataset, params: dict) -> tuple:
    from kerascli.data.datasets import given_splits  # (the data package imports config)

    return given_splits(dataset, params)


def _resolve_augmentation(check: Checker, raw: Any) -> dict | None:
    from kerascli.data import augment  # (the data package imports config)

    if raw is None:
        return None
    path = ("data", "augmentation")
    out = check.params(check.mapping(raw, path), augment.PARAMS, path)
    for key in ("zoom_range", "brightness_range"):
        if out[key] is not None and not isinstance(out[key], list):
            out[key] = [out[key]]
    problem = augment.check(out)
    if problem:
        raise check.error(path + (problem.split(":")[0],), problem)
    return out


def _resolve_data(check: Checker, raw: Any) -> dict:
    raw = dict(check.mapping(raw, ("data",)))
    augmentation = _resolve_augmentation(check, raw.pop("augmentation", None))
    if "dataset" not in raw:
        raise check.error(("data",), f"missing required key 'dataset' (valid: {', '.join(DATASETS.names())})")
    kind = check.value(raw["dataset"], Param("str", choices=DATASETS), ("data", "dataset"))
    loader = DATASETS.get(kind)
    out = {"dataset": kind}
    out.update(check.params(raw, {**loader.PARAMS, **DATA_COMMON}, ("data",), fixed=("dataset",)))
    for key, param in loader.PARAMS.items():
        if param.kind == "path" and out[key] is not None:
            out[key] = os.path.abspath(out[key])
    problem = loader.check(out) if hasattr(loader, "check") else None
    if problem:
        key = problem.split(":")[0]
        raise check.error(("data",) + ((key,) if key in loader.PARAMS else ()), problem)
    for split, key in (("val", "validation_split"), ("test", "test_split")):
        if split in _given_splits(loader, out) and out[key] > 0:
            raise check.error(("data", key), f"dataset {kind!r} gives its own {split!r} split; remove "
                              f"data.{key}")
    if out["validation_split"] + out["test_split"] >= 0.95:
        raise check.error(("data",), "validation_split + test_split leave almost nothing to train on")
    if augmentation is not None:
        out["augmentation"] = augmentation
        if out["normalize"] and (augmentation["featurewise_center"] or augmentation["featurewise_std_normalization"]):
            raise check.error(("data", "normalize"), "data.normalize and augmentation's featurewise_* both "
                              "normalize each feature; keep one")
    return out


def _output_reference(check: Checker, ref: str, taken: set, output_counts: dict, path: tuple, layer_input):
    """A layer's input (``layer_input``) or a model output: a name, or ``name[i]`` for output i of a layer
    with several (Keras' tensor index: an LSTM with return_state gives lstm, lstm[1], lstm[2]; ``name[0]``
    is ``name``). Returns the name in its canonical form."""
    name, index = parse(ref)
    if name not in taken:
        if layer_input:
            raise check.error(path, f"{ref!r} is not an input or an earlier layer (known: "
                                    f"{', '.join(sorted(taken))})")
        raise check.error(path, f"{ref!r} is not a layer of this model")
    count = output_counts.get(name, 1)
    if index >= count:
        raise check.error(path, f"{ref!r}: {name!r} has {'one output' if count == 1 else f'{count} outputs'} "
                                f"({name}{''.join(f', {name}[{i}]' for i in range(1, count))})")
    return output_name(name, index)


def _resolve_model(check: Checker, raw: Any) -> ModelSpec:
    raw = check.mapping(raw, ("model",))
    sequential = "inputs" not in raw
    allowed = (["input_shape", "layers", "weights", "freeze"] if sequential
               else ["inputs", "layers", "outputs", "weights", "freeze"])
    if "input_shape" in raw and "inputs" in raw:
        raise check.error(("model",), "use either input_shape (Sequential) or inputs/outputs (functional), not both")
    check.unknown_keys(raw, allowed, ("model",))
    weights = raw.get("weights")
    if weights is not None:
        weights = os.path.abspath(check.value(weights, Param("path"), ("model", "weights")))
    layers_raw = raw.get("layers")
    if not isinstance(layers_raw, list) or not layers_raw:
        raise check.error(("model", "layers"), "expected a non-empty list of layers")

    if sequential:
        if "input_shape" not in raw:
            raise check.error(("model",), "missing required key 'input_shape' (or use inputs/outputs for a functional model)")
        shape = check.value(raw["input_shape"], Param("shape"), ("model", "input_shape"))
        inputs = [{"name": "input", "shape": shape}]
    else:
        inputs_raw = raw["inputs"]
        if isinstance(inputs_raw, dict):
            inputs_raw = [{"name": k, "shape": v} for k, v in inputs_raw.items()]
        if not isinstance(inputs_raw, list) or not inputs_raw:
            raise check.error(("model", "inputs"), "expected a list of {name, shape}")
        inputs = []
        for i, item in enumerate(inputs_raw):
            p = ("model", "inputs", i)
            item = check.mapping(item, p)
            got = check.params(item, {"name": Param("str"), "shape": Param("shape")}, p)
            inputs.append(got)
        names = [i["name"] for i in inputs]
        for j, name in enumerate(names):
            if not NAME_RE.match(name):
                raise check.error(("model", "inputs", j, "name"), f"input name {name!r} must start with a letter "
                                                                  "and use only letters, digits, '_', '.', '-'")
            if names.index(name) != j:
                raise check.error(("model", "inputs", j, "name"), f"duplicate input name {name!r}")

    taken: set[str] = {i["name"] for i in inputs}
    output_counts: dict[str, int] = {}  # layers with several outputs (return_state): how many
    counters: dict[str, int] = {}
    layers, paths = [], []
    previous = inputs[0]["name"]
    for i, item in enumerate(layers_raw):
        p = ("model", "layers", i)
        item = check.mapping(item, p, "a layer mapping with 'type'")
        if "type" not in item:
            raise check.error(p, "missing required key 'type'")
        type_name = check.value(item["type"], Param("str", choices=LAYERS), p + ("type",))
        cls = LAYERS.get(type_name)
        fixed = ("type", "name") if sequential else ("type", "name", "inputs")
        params = check.params(item, {**cls.PARAMS, **common_params()}, p, fixed=fixed)
        params = cls.resolve_params(params, lambda key, msg, p=p: check.error(p + (key,), msg))
        if "name" in item:
            name = check.value(item["name"], Param("str"), p + ("name",))
            if not NAME_RE.match(name):
                raise check.error(p + ("name",), f"layer name {name!r} must start with a letter and use only letters, digits, '_', '.', '-'")
            if name in taken:
                raise check.error(p + ("name",), f"duplicate name {name!r}")
        else:
            base = default_layer_name(type_name)
            while True:
                n = counters.get(base, 0)
                counters[base] = n + 1
                name = base if n == 0 else f"{base}_{n}"
                if name not in taken:
                    break
        if sequential:
            layer_inputs = [previous]
        else:
            if "inputs" not in item:
                raise check.error(p, "missing required key 'inputs' (names of the layers or inputs feeding it)")
            layer_inputs = check.value(item["inputs"], Param("str_list"), p + ("inputs",))
            for j, src in enumerate(layer_inputs):
                layer_inputs[j] = _output_reference(check, src, taken, output_counts, p + ("inputs", j), True)
        taken.add(name)
        output_counts[name] = cls.output_count(params)
        if sequential and output_counts[name] > 1:
            raise check.error(p, f"layer {name!r} ({type_name}) gives {output_counts[name]} outputs "
                                 "(return_state); a Sequential model passes one on: write the model with "
                                 "inputs/outputs and name the outputs as name[1], name[2] ...")
        layers.append({"type": type_name, "name": name, "inputs": layer_inputs, **params})
        paths.append(p)
        previous = name

    if sequential:
        outputs = [previous]
    else:
        if "outputs" not in raw:
            raise check.error(("model",), "missing required key 'outputs'")
        outputs = check.value(raw["outputs"], Param("str_list"), ("model", "outputs"))
        if not outputs:
            raise check.error(("model", "outputs"), "expected one or more layer names")
        for j, out in enumerate(outputs):
            outputs[j] = _output_reference(check, out, taken, output_counts, ("model", "outputs", j), None)
            if outputs.index(outputs[j]) != j:
                raise check.error(("model", "outputs", j), f"{out!r} is listed twice")
    freeze = check.value(raw.get("freeze", []), Param("str_list"), ("model", "freeze"))
    for j, name in enumerate(freeze):
        if name not in taken or name in {i["name"] for i in inputs}:
            raise check.error(("model", "freeze", j), f"{name!r} is not a layer of this model")
    return ModelSpec(inputs=inputs, layers=layers, outputs=outputs, sequential=sequential, weights=weights,
                     layer_paths=paths, freeze=freeze)
