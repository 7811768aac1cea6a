"""``kerascli export --format onnx``: the model as an ONNX graph (opset 17, a dynamic batch axis), built with
the ``onnx`` package (``pip install 'kerascli[onnx]'``) and checked with its checker. Inference only:
dropout and noise layers are identities, BatchNormalization uses its moving statistics. Images stay channels
last at the graph's edges; convolution and pooling transpose to ONNX's channels-first around their nodes."""

from __future__ import annotations

import numpy as np

from kerascli.errors import ConfigError

OPSET = 17
IDENTITY = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
            "Identity"}
MERGES = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "Maximum": "Max", "Minimum": "Min"}
EXPORTED = sorted(IDENTITY | set(MERGES) | {"Dense", "Activation", "ReLU", "Softmax", "Rescaling", "Flatten",
                                             "Reshape", "BatchNormalization", "LayerNormalization", "Conv2D",
                                             "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
                                             "GlobalMaxPooling2D", "Average", "Concatenate"})
# activation name -> (ONNX op, attributes)
ACTIVATIONS = {"relu": ("Relu", {}), "sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}), "elu": ("Elu", {}),
               "selu": ("Selu", {}), "softplus": ("Softplus", {}), "softsign": ("Softsign", {}),
               "exponential": ("Exp", {}), "softmax": ("Softmax", {"axis": -1}),
               "log_softmax": ("LogSoftmax", {"axis": -1}), "leaky_relu": ("LeakyRelu", {"alpha": 0.2}),
               "hard_sigmoid": ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5})}


def need_onnx():
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package: pip install 'kerascli[onnx]'") from None
    return onnx


class Graph:
    def __init__(self, onnx):
        self.onnx, self.helper = onnx, onnx.helper
        self.nodes, self.initializers = [], []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint: str, value) -> str:
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, kind: str, inputs: list[str], hint: str, **attrs) -> str:
        out = self.name(hint)
        self.nodes.append(self.helper.make_node(kind, inputs, [out], **attrs))
        return out


def _activation(g: Graph, x: str, name, hint: str) -> str:
    if name in (None, "linear"):
        return x
    if name not in ACTIVATIONS:
        raise ConfigError(f"layer {hint!r}: activation {name!r} has no ONNX export yet (exported: linear, "
                          + ", ".join(sorted(ACTIVATIONS)) + ")")
    kind, attrs = ACTIVATIONS[name]
    return g.op(kind, [x], f"{hint}_{name}", **attrs)


def _pair(v):
    return list(v) if isinstance(v, (list, tuple)) else [v, v]


def _channels_first(g: Graph, x: str, hint: str) -> str:
    return g.op("Transpose", [x], f"{hint}_nchw", perm=[0, 3, 1, 2])


def _channels_last(g: Graph, x: str, hint: str) -> str:
    return g.op("Transpose", [x], f"{hint}_nhwc", perm=[0, 2, 3, 1])


def _layer(g: Graph, config: dict, layer, ins: list[str], weights: dict, dtype) -> str:
    kind, name = config["type"], config["name"]
    w = {spec.name: weights[f"{name}/{spec.name}"].astype(dtype) for spec in layer.weight_specs}
    x = ins[0]
    if kind in IDENTITY:
        return g.op("Identity", [x], name)
    if kind == "Dense":
        y = g.op("MatMul", [x, g.const(f"{name}_kernel", w["kernel"])], name)
        if "bias" in w:
            y = g.op("Add", [y, g.const(f"{name}_bias", w["bias"])], f"{name}_bias")
        return _activation(g, y, config.get("activation"), name)
    if kind == "Activation":
        return _activation(g, x, config["activation"], name)
    if kind == "ReLU":
        if config.get("max_value") is not None or config.get("negative_slope") or config.get("threshold"):
            raise ConfigError(f"layer {name!r}: ReLU with max_value, negative_slope or threshold has no ONNX export yet")
        return g.op("Relu", [x], name)
    if kind == "Softmax":
        return g.op("Softmax", [x], name, axis=config.get("axis", -1))
    if kind == "Rescaling":
        y = g.op("Mul", [x, g.const(f"{name}_scale", np.asarray(config["scale"], dtype))], name)
        return g.op("Add", [y, g.const(f"{name}_offset", np.asarray(config["offset"], dtype))], f"{name}_offset")
    if kind == "Flatten":
        return g.op("Flatten", [x], name, axis=1)
    if kind == "Reshape":
        shape = g.const(f"{name}_shape", np.asarray([-1, *layer.output_shape], np.int64))
        return g.op("Reshape", [x, shape], name)
    if kind == "BatchNormalization":  # inference: one scale and shift per channel (the last axis)
        if config["axis"] not in (-1, len(layer.input_shape)):
            raise ConfigError(f"layer {name!r}: BatchNormalization over an axis other than the last has no ONNX "
                              "export yet")
        gamma = w.get("gamma", np.ones_like(w["moving_mean"]))
        beta = w.get("beta", np.zeros_like(w["moving_mean"]))
        scale = gamma / np.sqrt(w["moving_variance"].astype(np.float64) + config["epsilon"])
        shift = beta - w["moving_mean"] * scale
        y = g.op("Mul", [x, g.const(f"{name}_scale", scale.astype(dtype))], name)
        return g.op("Add", [y, g.const(f"{name}_shift", shift.astype(dtype))], f"{name}_shift")
    if kind == "LayerNormalization":
        if config["axis"] not in (-1, [-1]):
            raise ConfigError(f"layer {name!r}: LayerNormalization over axes other than the last has no ONNX export")
        size = layer.input_shape[-1]
        gamma = w.get("gamma", np.ones(size, dtype))
        inputs = [x, g.const(f"{name}_gamma", gamma)] + ([g.const(f"{name}_beta", w["beta"])] if "beta" in w else [])
        return g.op("LayerNormalization", inputs, name, axis=-1, epsilon=float(config["epsilon"]))
    if kind == "Conv2D":
        if config.get("groups", 1) != 1:
            raise ConfigError(f"layer {name!r}: grouped Conv2D has no ONNX export yet")
        kernel = np.transpose(w["kernel"], (3, 2, 0, 1))  # (kh, kw, in, out) -> (out, in, kh, kw)
        inputs = [_channels_first(g, x, name), g.const(f"{name}_kernel", kernel)]
        if "bias" in w:
            inputs.append(g.const(f"{name}_bias", w["bias"]))
        y = g.op("Conv", inputs, name, strides=_pair(config["strides"]), dilations=_pair(config["dilation_rate"]),
                 kernel_shape=_pair(config["kernel_size"]),
                 auto_pad="SAME_UPPER" if config["padding"] == "same" else "VALID")
        return _activation(g, _channels_last(g, y, name), config.get("activation"), name)
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        size = _pair(config["pool_size"])
        strides = _pair(config.get("strides") or config["pool_size"])
        extra = {"count_include_pad": 0} if kind == "AveragePooling2D" else {}
        y = g.op("MaxPool" if kind == "MaxPooling2D" else "AveragePool", [_channels_first(g, x, name)], name,
                 kernel_shape=size, strides=strides, auto_pad="SAME_UPPER" if config["padding"] == "same" else "VALID",
                 **extra)
        return _channels_last(g, y, name)
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        op = "ReduceMean" if kind == "GlobalAveragePooling2D" else "ReduceMax"
        return g.op(op, [x], name, axes=[1, 2], keepdims=1 if config.get("keepdims") else 0)
    if kind in MERGES:
        y = ins[0]
        for other in ins[1:]:
            y = g.op(MERGES[kind], [y, other], name)
        return y
    if kind == "Average":
        total = ins[0]
        for other in ins[1:]:
            total = g.op("Add", [total, other], name)
        return g.op("Mul", [total, g.const(f"{name}_n", np.asarray(1.0 / len(ins), dtype))], f"{name}_mean")
    if kind == "Concatenate":
        return g.op("Concat", ins, name, axis=config.get("axis", -1))
    raise ConfigError(f"layer {name!r} ({kind}) has no ONNX export yet; exported: {', '.join(EXPORTED)}")


def onnx_model(spec, model, weights: dict) -> bytes:
    """The serialized ONNX model of ``model`` (built from ``spec``) with ``weights``, checked."""
    onnx = need_onnx()
    for layer in spec.model.layers:
        if layer["type"] not in EXPORTED:
            raise ConfigError(f"layer {layer['name']!r} ({layer['type']}) has no ONNX export yet; exported: "
                              + ", ".join(EXPORTED))
    dtype = np.dtype(spec.train["dtype"])
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    g = Graph(onnx)
    values = {name: name for name in model.input_shapes}
    configs = {layer["name"]: layer for layer in spec.model.layers}
    for node in model.nodes:
        layer = node.layer
        values[layer.name] = _layer(g, configs[layer.name], layer, [values[s] for s in node.inputs], weights, dtype)
    outputs = []
    for out in model.outputs:
        outputs.append(onnx.helper.make_tensor_value_info(out, elem, ["batch", *model.output_shapes[out]]))
        g.nodes.append(onnx.helper.make_node("Identity", [values[out]], [out]))
    inputs = [onnx.helper.make_tensor_value_info(name, elem, ["batch", *shape])
              for name, shape in model.input_shapes.items()]
    graph = onnx.helper.make_graph(g.nodes, spec.name, inputs, outputs, g.initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="kerascli")
    proto.ir_version = min(proto.ir_version, 9)  # readable by runtimes a few years old
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()
