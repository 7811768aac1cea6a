"""How a config names the outputs of a layer with several (a recurrent layer's return_state): the layer's
name for the main output, ``name[i]`` for output i, as Keras' tensor index counts them."""

from __future__ import annotations


def output_name(layer: str, index: int) -> str:
    return layer if index == 0 else f"{layer}[{index}]"


def producer(source: str) -> str:
    """The layer (or model input) an output name comes from: ``lstm[1]`` -> ``lstm``."""
    return source.split("[", 1)[0]


def output_index(source: str) -> int:
    """Which output of its layer an output name is: ``lstm[1]`` -> 1, ``lstm`` -> 0."""
    return int(source[source.index("[") + 1:-1]) if source.endswith("]") else 0
