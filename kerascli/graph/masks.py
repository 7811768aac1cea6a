"""Keras' masks: which steps of a sequence are padding.

``Embedding(mask_zero: true)`` marks the steps whose id is 0. As in Keras, the mask travels with the
outputs of the layers that keep it (``Layer.mask_passes``: Dense, dropout, activations, normalizations,
TimeDistributed ...), is combined by the merge layers, is read by the layers that take it
(``Layer.takes_mask``: the recurrent layers skip padded steps, carrying their state over them;
GlobalAveragePooling1D averages the kept steps) and ends at a layer that does not support masking (Keras
warns there). The model finds where masks go when it is built; this module is that walk."""

from __future__ import annotations


def mask_flow(model) -> tuple[dict[str, bool], tuple | None]:
    """({layer or input name: whether its output carries a mask}, a problem or None). A problem is (layer
    name or None for the model's outputs, message): a mask reaching a layer that refuses one, or a model
    output (Keras would weight the loss by it, which kerascli does not do)."""
    flags: dict[str, bool] = {name: False for name in model.input_shapes}
    for node in model.nodes:
        layer = node.layer
        ins = [True if flags.get(s) else None for s in node.inputs]  # a state output (lstm[1]) has none
        refused = layer.mask_refused(ins) if any(ins) else None
        if refused:
            return flags, (layer.name, f"receives the mask of an Embedding with mask_zero: {refused}")
        flags[layer.name] = bool(getattr(layer, "makes_mask", False) or layer.output_mask(ins))
    masked = [name for name in model.outputs if flags.get(name)]
    if masked:
        return flags, (None, f"output {masked[0]!r} carries the mask of an Embedding with mask_zero; kerascli "
                             "does not weight the loss by masks: end the sequence first (a recurrent layer "
                             "without return_sequences, or GlobalAveragePooling1D)")
    return flags, None
