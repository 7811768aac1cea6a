"""Keras exchange: a trained model out as a Keras 3 ``.keras`` archive (config.json, metadata.json,
model.weights.h5) or ``model.to_json()`` text, and a Keras model in as a kerascli config plus an npz of its
weights. kerascli's layers already have Keras' names, arguments and weight layout, so a layer's config
crosses as it is, wrapped the way Keras serializes it, and each weight goes to the variable group where
Keras keeps it (a recurrent layer's in its cell, a wrapper's in its inner layers, attention's in its
projections: ``h5_places``). A layer kerascli lacks (or a plugin's) is refused by name, both ways.
Writing and reading the weights file needs h5py (``pip install 'kerascli[keras]'``); Keras itself is not
needed."""

from __future__ import annotations

import io
import json
import os
import re
import time
import zipfile

import numpy as np

from kerascli.errors import ConfigError, DataError
from kerascli.graph.names import output_index, output_name, producer

# the layers whose Keras weights are the layer's own variables, in kerascli's order
EXCHANGED = {
    "Dense", "EinsumDense", "Activation", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "Flatten", "Reshape", "Permute", "RepeatVector", "Rescaling", "Identity",
    "Cropping1D", "Cropping2D", "ZeroPadding1D", "ZeroPadding2D", "UpSampling1D", "UpSampling2D", "Conv1D",
    "Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "MaxPooling1D",
    "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "BatchNormalization", "LayerNormalization",
    "GroupNormalization", "UnitNormalization", "Embedding", "Add", "Subtract", "Multiply", "Average", "Maximum",
    "Minimum", "Concatenate", "Dot", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "SimpleRNN", "LSTM", "GRU",
    "Bidirectional", "TimeDistributed", "MultiHeadAttention", "Attention", "AdditiveAttention", "Normalization",
    "Masking",
}
# recurrent layers: Keras keeps their weights in their cell (layers/<group>/cell/vars/<i>)
CELLS = {"SimpleRNN", "LSTM", "GRU"}
# layers called with initial_state in Keras (their inputs after the sequence)
STATEFUL = CELLS | {"Bidirectional"}
# attention layers: their inputs are call arguments in Keras (query, value, key), use_causal_mask too
ATTENTION = {"MultiHeadAttention", "Attention", "AdditiveAttention"}
# MultiHeadAttention's projections: kerascli's weight prefix -> Keras' sub-layer
MHA_GROUPS = {"query": "query_dense", "key": "key_dense", "value": "value_dense", "attention_output": "output_dense"}
CALL_KEYS = {"use_causal_mask"}  # kerascli arguments that are call arguments in Keras
# layers whose Keras constructor takes neither trainable nor activity_regularizer (weightless: dropped)
NO_BASE_ARGUMENTS = {"SpatialDropout1D", "SpatialDropout2D"}
# kerascli's own keys in a layer's config (not Keras arguments)
OWN_KEYS = {"type", "name", "inputs", "trainable"}
KERAS_VERSION = "3.15.1"  # the Keras whose format this writes (any Keras 3 reads it)


def need_h5py():
    try:
        import h5py
    except ImportError:
        raise ConfigError("Keras' weights file (.h5) needs h5py: pip install 'kerascli[keras]'") from None
    return h5py


def _serialized(kind: str, value):
    """An initializer, regularizer or constraint from kerascli's form (a name, or {type: name, ...}) in
    Keras' serialized form."""
    if value is None or isinstance(value, str):
        return value
    args = {k: v for k, v in value.items() if k != "type"}
    names = {"initializers": _initializer_class, "regularizers": _regularizer_class,
             "constraints": _constraint_class}
    return {"module": f"keras.{kind}", "class_name": names[kind](value["type"]), "config": args,
            "registered_name": None}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _initializer_class(name: str) -> str:
    return {"he_uniform": "HeUniform", "he_normal": "HeNormal", "lecun_uniform": "LecunUniform",
            "lecun_normal": "LecunNormal", "glorot_uniform": "GlorotUniform", "glorot_normal": "GlorotNormal",
            "random_normal": "RandomNormal", "random_uniform": "RandomUniform",
            "truncated_normal": "TruncatedNormal", "variance_scaling": "VarianceScaling"}.get(name, _camel(name))


def _regularizer_class(name: str) -> str:
    return {"l1": "L1", "l2": "L2", "l1_l2": "L1L2", "orthogonal": "OrthogonalRegularizer"}.get(name, _camel(name))


def _constraint_class(name: str) -> str:
    return {"max_norm": "MaxNorm", "min_max_norm": "MinMaxNorm", "non_neg": "NonNeg",
            "unit_norm": "UnitNorm"}.get(name, _camel(name))


def _keras_layer(layer: dict, dtype: str) -> dict:
    """A layer in Keras' serialized form (module, class_name, config)."""
    return {"module": "keras.layers", "class_name": layer["type"], "config": _keras_layer_config(layer, dtype),
            "registered_name": None}


def _inner_layers(layer: dict, dtype: str) -> dict:
    """A wrapper's inner layer(s) as Keras serializes them: TimeDistributed's ``layer``; Bidirectional's
    ``layer`` and ``backward_layer`` (the same layer reading the other way, as kerascli runs it)."""
    inner = layer["layer"]
    base = snake_case(inner["type"])
    if layer["type"] == "TimeDistributed":
        return {"layer": _keras_layer({**inner, "name": base}, dtype)}
    backwards = inner.get("go_backwards", False)
    return {"layer": _keras_layer({**inner, "name": f"forward_{base}"}, dtype),
            "backward_layer": _keras_layer({**inner, "name": f"backward_{base}", "go_backwards": not backwards},
                                           dtype)}


def _keras_layer_config(layer: dict, dtype: str) -> dict:
    config = {"name": layer["name"], "trainable": layer.get("trainable", True), "dtype": dtype}
    for key, value in layer.items():
        if key in OWN_KEYS or (key in CALL_KEYS and layer["type"] in ATTENTION):
            continue
        if key == "layer" and isinstance(value, dict):
            config.update(_inner_layers(layer, dtype))
            continue
        if key.endswith("_initializer"):
            value = _serialized("initializers", value)
        elif key.endswith("_regularizer"):
            value = _serialized("regularizers", value)
        elif key.endswith("_constraint"):
            value = _serialized("constraints", value)
        config[key] = value
    if layer["type"] in NO_BASE_ARGUMENTS:
        if config.pop("activity_regularizer", None) is not None:
            raise ConfigError(f"layer {layer['name']!r} ({layer['type']}): Keras' {layer['type']} takes no "
                              "activity_regularizer")
        config.pop("trainable")
    return config


def _tensor(source: str, shape: tuple, dtype: str) -> dict:
    """A Keras tensor in a call's arguments: output ``output_index`` of its layer (``enc[1]``: an LSTM's h)."""
    return {"class_name": "__keras_tensor__",
            "config": {"shape": [None, *shape], "dtype": dtype,
                       "keras_history": [producer(source), 0, output_index(source)]}}


def keras_config(spec, model) -> dict:
    """What Keras' ``model.to_json()`` holds for the model of ``spec`` (built as ``model``)."""
    dtype = spec.train["dtype"]
    layers = spec.model.layers
    for layer in layers:
        if layer["type"] not in EXCHANGED:
            raise ConfigError(f"layer {layer['name']!r} ({layer['type']}) cannot be exported to Keras (Keras has "
                              "no such layer); exported layers: "
                              + ", ".join(sorted(EXCHANGED)))
    entries = []
    shapes = dict(model.input_shapes)
    for node in model.nodes:
        shapes[node.layer.name] = node.layer.output_shape
        for i, shape in enumerate(node.layer.extra_output_shapes, 1):
            shapes[output_name(node.layer.name, i)] = shape
    sequential = all(len(n.inputs) == 1 for n in model.nodes) and len(model.input_shapes) == 1 and \
        len(model.outputs) == 1 and all(n.inputs[0] == (model.nodes[i - 1].layer.name if i else
                                                         next(iter(model.input_shapes)))
                                        for i, n in enumerate(model.nodes)) and \
        not any(layer["type"] in ATTENTION for layer in layers)  # Keras calls them with query and value
    by_name = {layer["name"]: layer for layer in layers}
    for name, shape in model.input_shapes.items():
        entry = {"module": "keras.layers", "class_name": "InputLayer",
                 "config": {"batch_shape": [None, *shape], "dtype": dtype, "sparse": False, "ragged": False,
                            "name": name}, "registered_name": None}
        if not sequential:
            entry.update(name=name, inbound_nodes=[])
        entries.append(entry)
    for node in model.nodes:
        layer = by_name[node.layer.name]
        entry = {"module": "keras.layers", "class_name": layer["type"],
                 "config": _keras_layer_config(layer, dtype), "registered_name": None}
        in_shape = [[None, *shapes[s]] for s in node.inputs]
        entry["build_config"] = {"input_shape": in_shape if node.layer.n_inputs == 0 else in_shape[0]}
        if not sequential:
            tensors = [_tensor(s, shapes[s], dtype) for s in node.inputs]
            args, kwargs = [tensors] if node.layer.n_inputs == 0 else tensors, {}
            if layer["type"] in ATTENTION:
                args, kwargs, entry["build_config"] = _attention_call(layer, tensors, in_shape)
            elif layer["type"] in STATEFUL and len(tensors) > 1:  # Keras: layer(sequences, initial_state=[...])
                args, kwargs = tensors[:1], {"initial_state": tensors[1:]}
                entry["build_config"] = {"shapes_dict": {"sequences_shape": in_shape[0],
                                                         "initial_state_shape": in_shape[1:]}}
            entry.update(name=node.layer.name, inbound_nodes=[{"args": args, "kwargs": kwargs}])
        entries.append(entry)
    if sequential:
        (shape,) = model.input_shapes.values()
        config = {"name": spec.name, "trainable": True, "dtype": dtype, "layers": entries,
                  "build_input_shape": [None, *shape]}
        return {"module": "keras", "class_name": "Sequential", "config": config, "registered_name": None,
                "build_config": {"input_shape": [None, *shape]}}
    ins = [[n, 0, 0] for n in model.input_shapes]
    outs = [[producer(o), 0, output_index(o)] for o in model.outputs]
    config = {"name": spec.name, "trainable": True, "layers": entries,
              "input_layers": ins[0] if len(ins) == 1 else ins, "output_layers": outs[0] if len(outs) == 1 else outs}
    return {"module": "keras.src.models.functional", "class_name": "Functional", "config": config,
            "registered_name": "Functional", "build_config": {"input_shape": None}}


def _attention_call(layer: dict, tensors: list, shapes: list) -> tuple[list, dict, dict]:
    """(args, kwargs, build_config) of an attention layer's call in Keras: MultiHeadAttention(query, value,
    key=...), Attention([query, value, key]); one input is self-attention (query = value)."""
    if len(tensors) == 1:
        tensors, shapes = tensors * 2, shapes * 2
    kwargs = {"use_causal_mask": True} if layer.get("use_causal_mask") else {}
    if layer["type"] != "MultiHeadAttention":
        return [tensors], kwargs, {"input_shape": shapes}
    if len(tensors) == 3:
        kwargs["key"] = tensors[2]
    names = ("query_shape", "value_shape", "key_shape")
    return tensors[:2], kwargs, {"shapes_dict": dict(zip(names, shapes))}


def snake_case(name: str) -> str:
    """Keras' naming.to_snake_case: the name Keras' weights file gives a layer of class ``name``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def h5_names(class_names: list[str]) -> list[str]:
    """The group of each layer in model.weights.h5: Keras names them by class, not by the layers' own names
    (dense, dense_1, ... in the model's layer order, a functional model's inputs first)."""
    seen: dict[str, int] = {}
    out = []
    for cls in class_names:
        base = snake_case(cls)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.append(base if count == 0 else f"{base}_{count}")
    return out


def _inputs_of(entry: dict) -> list[str]:
    """The outputs a layer of a functional config takes (``name``, or ``name[i]`` for output i of a layer
    with several): its call's tensors (one list, or several arguments, an attention layer's ``key``, a
    recurrent layer's ``initial_state``)."""
    nodes = entry.get("inbound_nodes") or []
    if not nodes:
        return []
    args = nodes[0].get("args") or []
    tensors = args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)
    kwargs = nodes[0].get("kwargs") or {}
    key = kwargs.get("key")
    if isinstance(key, dict) and key.get("class_name") == "__keras_tensor__":
        tensors = tensors + [key]
    states = kwargs.get("initial_state")
    if isinstance(states, dict):
        states = [states]
    tensors = tensors + [t for t in states or () if isinstance(t, dict) and t.get("class_name") == "__keras_tensor__"]
    return [_history_name(t["config"]["keras_history"]) for t in tensors]


def _history_name(history: list) -> str:
    """kerascli's name of the tensor a Keras keras_history [layer, node, index] refers to."""
    return output_name(history[0], int(history[2]) if len(history) > 2 else 0)


def _call_arguments(entry: dict, layer: dict, where: str) -> None:
    """An attention layer's call arguments that kerascli keeps as layer arguments (use_causal_mask); any
    other call argument with a value is refused by name."""
    nodes = entry.get("inbound_nodes") or []
    for key, value in ((nodes[0].get("kwargs") or {}) if nodes else {}).items():
        if value is None or value is False or (key == "key" and layer["type"] == "MultiHeadAttention") or \
                (key == "initial_state" and layer["type"] in STATEFUL):
            continue  # unset, or an input (_inputs_of): MultiHeadAttention's key, a recurrent layer's states
        if key == "use_causal_mask" and layer["type"] in ATTENTION:
            layer[key] = bool(value)
            continue
        raise ConfigError(f"{where}: layer {layer['name']!r} ({layer['type']}) is called with {key}={value!r}, "
                          "which kerascli's layer does not take")


def _outputs_of(body: dict) -> list[str]:
    """The output layers' names of a functional config (one output is written flat, several as a list)."""
    outs = body.get("output_layers") or []
    return [_history_name(outs)] if outs and isinstance(outs[0], str) else [_history_name(o) for o in outs]


def _entries(config: dict) -> list[dict]:
    """The layer entries in the order of Keras' ``model.layers``, which names the weights file's groups: a
    Sequential model's layers as listed; a functional model's as Keras' graph map orders them (by depth
    from the outputs, deepest first, ties in the order a depth-first walk from the outputs meets them)."""
    entries = config["config"]["layers"]
    if config["class_name"] == "Sequential":
        return [e for e in entries if e.get("class_name") != "InputLayer"]
    by_name = {e["config"]["name"] if e.get("class_name") != "InputLayer" else e.get("name", e["config"]["name"]): e
               for e in entries}
    inputs = {name: _inputs_of(e) for name, e in by_name.items()}
    outs = _outputs_of(config["config"])
    index: dict[str, int] = {}
    finished: list[str] = []

    def walk(name):  # Keras' _build_map_helper
        if name in finished:
            return
        index.setdefault(name, len(index))
        for src in inputs[name]:
            walk(producer(src))
        finished.append(name)

    for name in outs:
        walk(producer(name))
    depth: dict[str, int] = {}
    for name in reversed(finished):  # Keras' depths: from the outputs
        d = depth.setdefault(name, 0)
        for src in map(producer, inputs[name]):
            depth[src] = max(d + 1, depth.get(src, 0))
    order = sorted(finished, key=lambda n: (-depth[n], index[n]))
    return [by_name[n] for n in order]


def h5_places(kind: str, config: dict, names: list[str]) -> list[tuple[str, str, int]]:
    """Where Keras keeps each weight of a layer of class ``kind`` (kerascli ``config``, weight ``names`` in
    kerascli's order): (weight name, its variables group under the layer's group, index in it)."""
    if kind in CELLS:
        return [(n, "cell/vars", i) for i, n in enumerate(names)]
    if kind == "MultiHeadAttention":  # query/kernel -> query_dense/vars/0, query/bias -> .../1
        return [(n, f"{MHA_GROUPS[n.split('/')[0]]}/vars", 0 if n.endswith("/kernel") else 1) for n in names]
    if kind in ("Bidirectional", "TimeDistributed"):
        inner = config["layer"]
        base = inner["type"].lower()  # kerascli's inner layer names (kerascli.layers.wrappers)
        halves = ((f"forward_{base}/", "forward_layer"), (f"backward_{base}/", "backward_layer")) \
            if kind == "Bidirectional" else ((f"{base}/", "layer"),)
        out = []
        for prefix, group in halves:
            own = [n[len(prefix):] for n in names if n.startswith(prefix)]
            out += [(prefix + n, f"{group}/{path}", i) for n, path, i in h5_places(inner["type"], inner, own)]
        return out
    return [(n, "vars", i) for i, n in enumerate(names)]


def _h5_extras(kind: str, names: list[str]) -> dict[str, np.ndarray]:
    """Variables Keras keeps that kerascli has no use for: an adapted Normalization's sample count."""
    return {"vars/2": np.array(0, dtype=np.int32)} if kind == "Normalization" and names else {}


def weights_h5(config: dict, model, weights: dict[str, np.ndarray]) -> bytes:
    """Keras 3's model.weights.h5: layers/<group>/.../vars/<i>, each weight where Keras keeps it."""
    h5py = need_h5py()
    layers = {layer.name: layer for layer in model.layers}
    entries = _entries(config)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        group = f.create_group("layers")
        for entry, name in zip(entries, h5_names([e["class_name"] for e in entries])):
            own = group.create_group(name)
            own.create_group("vars")
            layer = layers.get(entry["config"]["name"]) if entry["class_name"] != "InputLayer" else None
            if layer is None:
                continue
            names = [spec.name for spec in layer.weight_specs]
            places = {f"{path}/{i}": weights[f"{layer.name}/{n}"]
                      for n, path, i in h5_places(entry["class_name"], layer.config, names)}
            for path, value in {**places, **_h5_extras(entry["class_name"], names)}.items():
                own.create_dataset(path, data=value)
        f.create_group("vars")
    return buf.getvalue()


def keras_archive(spec, model, weights: dict[str, np.ndarray]) -> bytes:
    config = keras_config(spec, model)
    h5 = weights_h5(config, model, weights)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": KERAS_VERSION,
                                                "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S")}))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", h5)
    return buf.getvalue()


# ----------------------------------------------------------------- Keras in
def _from_serialized(value):
    """An initializer, regularizer or constraint from Keras' serialized form to kerascli's."""
    if not isinstance(value, dict):
        return value
    name = value.get("class_name", "")
    plain = {"GlorotUniform": "glorot_uniform", "GlorotNormal": "glorot_normal", "HeUniform": "he_uniform",
             "HeNormal": "he_normal", "LecunUniform": "lecun_uniform", "LecunNormal": "lecun_normal",
             "L1": "l1", "L2": "l2", "L1L2": "l1_l2", "OrthogonalRegularizer": "orthogonal", "MaxNorm": "max_norm",
             "MinMaxNorm": "min_max_norm", "NonNeg": "non_neg", "UnitNorm": "unit_norm",
             "RandomNormal": "random_normal", "RandomUniform": "random_uniform",
             "TruncatedNormal": "truncated_normal", "VarianceScaling": "variance_scaling"}
    snake = plain.get(name) or "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    args = {k: v for k, v in (value.get("config") or {}).items() if v is not None}
    return {"type": snake, **args} if args else snake


def _layer_from_keras(entry: dict, where: str) -> dict:
    from kerascli.registry import LAYERS

    kind = entry.get("class_name")
    if kind not in EXCHANGED:
        raise ConfigError(f"{where}: layer {entry.get('config', {}).get('name')!r} ({kind}) has no kerascli "
                          "counterpart that imports (see kerascli export's list)")
    config = entry.get("config") or {}
    if config.get("data_format") == "channels_first":
        raise ConfigError(f"{where}: layer {config.get('name')!r} ({kind}) reads channels first; kerascli's "
                          "images and sequences are channels last, as Keras' default")
    known = LAYERS.get(kind).PARAMS
    layer = {"type": kind, "name": config["name"]}
    for key, value in config.items():
        if key in known:
            if key.endswith(("_initializer", "_regularizer", "_constraint")):
                value = _from_serialized(value)
            elif known[key].kind == "int" and isinstance(value, list) and len(value) == 1:
                value = value[0]  # a 1D layer's sizes: Keras keeps them as 1-tuples
            elif known[key].kind == "int_list" and value == [] and known[key].nullable:
                value = None  # Normalization's axis=None: Keras keeps the empty tuple
            elif key == "layer" and isinstance(value, dict):
                value = _inner_from_keras(config, f"{where}: layer {config['name']!r}")
            layer[key] = value
    if config.get("trainable") is False:
        layer["trainable"] = False
    if kind == "MultiHeadAttention":
        _attention_from_keras(config, layer, where)
    return layer


def _attention_from_keras(config: dict, layer: dict, where: str) -> None:
    """MultiHeadAttention's Keras arguments kerascli takes in another form, or only at their defaults."""
    shape = layer.get("output_shape")
    if isinstance(shape, list):  # Keras keeps (features,) as a list
        if len(shape) != 1:
            raise ConfigError(f"{where}: layer {layer['name']!r} has output_shape {shape}; kerascli's "
                              "MultiHeadAttention gives (steps, features): one number")
        layer["output_shape"] = shape[0]
    for key, default in (("attention_axes", (None, [1], [-2], 1, -2)), ("use_gate", (None, False)),
                         ("sliding_window", (None,))):
        if config.get(key) not in default:
            raise ConfigError(f"{where}: layer {layer['name']!r} has {key}={config[key]!r}; kerascli's "
                              f"MultiHeadAttention attends over the steps of (steps, features) inputs, ungated")


def _inner_from_keras(config: dict, where: str) -> dict:
    """A wrapper's inner layer as kerascli's ``layer:`` argument; Bidirectional's ``backward_layer`` must be
    the same layer reading the other way (kerascli builds it so)."""
    inner = _layer_from_keras(config["layer"], where)
    inner.pop("name")
    backward = config.get("backward_layer")
    if backward is not None:
        mirrored = _layer_from_keras(backward, where)
        mirrored.pop("name")
        flipped = not config["layer"].get("config", {}).get("go_backwards", False)
        if mirrored.pop("go_backwards", False) != flipped or {k: v for k, v in inner.items()
                                                               if k != "go_backwards"} != mirrored:
            raise ConfigError(f"{where}: a backward_layer other than the forward layer reading the other way; "
                              "kerascli's Bidirectional runs one layer both ways")
    return inner


def read_keras(path: str, weights_path: str | None = None) -> tuple[dict, dict | None]:
    """(config.json, weights by layer name as {path under the layer's group: array}, or None) from a .keras
    archive or a JSON file (with an optional .weights.h5)."""
    h5_bytes = None
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                config = json.loads(z.read("config.json"))
                if "model.weights.h5" in z.namelist():
                    h5_bytes = z.read("model.weights.h5")
        else:
            with open(path) as f:
                config = json.load(f)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a Keras model file (.keras archive or to_json() text): {exc}") from None
    if weights_path is not None:
        try:
            with open(weights_path, "rb") as f:
                h5_bytes = f.read()
        except OSError as exc:
            raise DataError(f"cannot read {weights_path}: {exc.strerror}") from None
    weights = None
    if h5_bytes is not None:
        h5py = need_h5py()
        groups = {}
        try:
            with h5py.File(io.BytesIO(h5_bytes), "r") as f:
                for name, group in f.get("layers", {}).items():
                    groups[name] = found = {}  # every variable under the layer's group, by its path there

                    def keep(path, item, found=found):
                        if isinstance(item, h5py.Dataset):
                            found[path] = np.asarray(item)

                    group.visititems(keep)
        except (OSError, ValueError) as exc:
            raise DataError(f"{weights_path or path}: not a readable Keras weights file: {exc}") from None
        try:
            entries = _entries(config)
        except (KeyError, TypeError):
            raise DataError(f"{path}: no model config with layers") from None
        weights = {e["config"]["name"]: groups.get(name, {})
                   for e, name in zip(entries, h5_names([e.get("class_name", "") for e in entries]))}
    return config, weights


def kerascli_config(keras: dict, source: str) -> dict:
    """A kerascli config (model section, and a name) from Keras' model config."""
    kind = keras.get("class_name")
    body = keras.get("config") or {}
    if kind not in ("Sequential", "Functional", "Model"):
        raise ConfigError(f"{source}: a {kind} model; kerascli imports Sequential and functional models")
    entries = body.get("layers") or []
    inputs = [e for e in entries if e.get("class_name") == "InputLayer"]
    layers = [e for e in entries if e.get("class_name") != "InputLayer"]
    if kind == "Sequential":
        shape = (inputs[0]["config"].get("batch_shape") if inputs else None) or body.get("build_input_shape")
        if not shape:
            raise ConfigError(f"{source}: the Sequential model has no input shape (build it before saving)")
        model = {"input_shape": list(shape[1:]),
                 "layers": [_layer_from_keras(e, source) for e in layers]}
        return {"name": body.get("name") or "imported", "model": model}
    model_inputs = [{"name": e["config"]["name"], "shape": list(e["config"]["batch_shape"][1:])} for e in inputs]
    out_layers = []
    for entry in layers:
        layer = _layer_from_keras(entry, source)
        nodes = entry.get("inbound_nodes") or []
        if len(nodes) != 1:
            raise ConfigError(f"{source}: layer {layer['name']!r} is called {len(nodes)} times; kerascli layers are "
                              "called once")
        layer["inputs"] = _inputs_of(entry)
        _call_arguments(entry, layer, source)
        out_layers.append(layer)
    model = {"inputs": model_inputs, "layers": out_layers, "outputs": _outputs_of(body)}
    return {"name": body.get("name") or "imported", "model": model}


def weights_npz(model, keras_weights: dict[str, dict]) -> dict[str, np.ndarray]:
    """kerascli's ``<layer>/<weight>`` arrays from Keras' variables of each layer (checked against the
    model built from the imported config)."""
    out = {}
    for layer in model.layers:
        given = keras_weights.get(layer.name, {})
        names = [spec.name for spec in layer.weight_specs]
        places = h5_places(layer.type_name, layer.config, names)
        expected = len(places) + len(_h5_extras(layer.type_name, names))
        missing = [f"{path}/{i}" for _, path, i in places if f"{path}/{i}" not in given]
        if len(given) != expected or missing:
            raise DataError(f"Keras weights of layer {layer.name!r}: {len(given)} variables, kerascli's "
                            f"{layer.type_name} has {expected}" + (f" (no {missing[0]})" if missing else ""))
        where = {n: f"{path}/{i}" for n, path, i in places}
        for spec in layer.weight_specs:
            value = given[where[spec.name]]
            if tuple(value.shape) != tuple(spec.shape):
                raise DataError(f"Keras weights of {layer.name}/{spec.name}: shape {tuple(value.shape)}, kerascli "
                                f"expects {tuple(spec.shape)}")
            out[f"{layer.name}/{spec.name}"] = value
    return out


def export_path_check(output: str, fmt: str) -> None:
    ext = os.path.splitext(output)[1].lower()
    if fmt == "keras" and ext != ".keras":
        raise ConfigError(f"--format keras writes a .keras archive: -o must end in .keras, got {output}")
    if fmt == "keras-json" and ext != ".json":
        raise ConfigError(f"--format keras-json writes JSON: -o must end in .json, got {output}")
    if fmt == "onnx" and ext != ".onnx":
        raise ConfigError(f"--format onnx writes an ONNX model: -o must end in .onnx, got {output}")
