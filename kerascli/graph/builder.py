"""Build a Model from a resolved ModelSpec; shape problems become config errors with a location."""

from __future__ import annotations

from kerascli.config.loader import LoadedConfig, format_key
from kerascli.config.schema import ModelSpec
from kerascli.errors import ConfigError
from kerascli.graph.layer import ShapeError
from kerascli.graph.masks import mask_flow
from kerascli.graph.model import Model, ModelSizeError, Node
from kerascli.registry import LAYERS


def build_model(spec: ModelSpec, source: LoadedConfig | None = None) -> Model:
    """Create layers and infer every shape; weights are allocated by ``Model.allocate``."""

    def where(path):
        return source.where(path) if source is not None else None

    nodes = []
    for layer_spec in spec.layers:
        cls = LAYERS.get(layer_spec["type"])
        params = {k: v for k, v in layer_spec.items() if k not in ("type", "name", "inputs")}
        layer = cls(layer_spec["name"], params)
        if layer.name in spec.freeze:  # model.freeze: as trainable: false on the layer
            layer.trainable = False
        nodes.append(Node(layer, list(layer_spec["inputs"])))
    for node, path in zip(nodes, spec.layer_paths or [()] * len(nodes)):
        layer = node.layer
        extra = layer.extra_input_count() if layer.n_inputs == 1 else 0
        if layer.n_inputs == 1 and len(node.inputs) != 1 and len(node.inputs) != 1 + extra:
            wanted = f"one input, or {1 + extra} ({layer.extra_inputs_doc})" if extra else "one input"
            raise ConfigError(f"{layer.type_name} takes {wanted}, got {len(node.inputs)}: {node.inputs}",
                              key=format_key(path) or layer.name, where=where(path))
        low, high = getattr(layer, "input_count", (2, None))
        if layer.n_inputs == 0 and not (low <= len(node.inputs) <= (high or len(node.inputs))):
            wanted = f"{low} to {high}" if high else f"{low} or more"
            raise ConfigError(f"{layer.type_name} takes {wanted} inputs, got {node.inputs}",
                              key=format_key(path) or layer.name, where=where(path))

    model = Model({i["name"]: tuple(i["shape"]) for i in spec.inputs}, nodes, spec.outputs)
    shapes = dict(model.input_shapes)
    for node, path in zip(nodes, spec.layer_paths or [()] * len(nodes)):
        try:
            model.infer_shapes_of(node, shapes)
        except ShapeError as exc:
            ins = ", ".join(str(shapes[s]) for s in node.inputs)
            raise ConfigError(f"layer {node.layer.name!r} ({node.layer.type_name}) with input shape {ins}: {exc}",
                              key=format_key(path) or node.layer.name, where=where(path)) from None
    model.output_shapes = {name: shapes[name] for name in model.outputs}
    flags, problem = mask_flow(model)
    if problem is not None:
        name, message = problem
        paths = dict(zip((n.layer.name for n in nodes), spec.layer_paths or [()] * len(nodes)))
        path = paths.get(name, ("model", "outputs")) if name else ("model", "outputs")
        raise ConfigError(f"layer {name!r}: {message}" if name else message, key=format_key(path) or name,
                          where=where(path))
    model.masked = any(flags.values())
    try:
        model.check_size()
    except ModelSizeError as exc:
        raise ConfigError(str(exc), key="model", where=where(("model",))) from None
    return model
