"""How a config names the outputs of a layer with several (a recurrent layer's return_state): the layer's
name for the main output, ``name[i]`` for output i, as Keras' tensor index counts them."""

from __future__ import annotations

import re

_INDEXED = re.compile(r"^(.+)\[(\d+)\]$")


def output_name(layer: str, index: int) -> str:
    return layer if index == 0 else f"{layer}[{index}]"


def parse(source: str) -> tuple[str, int]:
    """(layer or model input, output index) of an output name: ``lstm[1]`` -> ("lstm", 1), ``lstm`` ->
    ("lstm", 0)."""
    match = _INDEXED.match(source)
    return (match.group(1), int(match.group(2))) if match else (source, 0)


def producer(source: str) -> str:
    """The layer (or model input) an output name comes from: ``lstm[1]`` -> ``lstm``."""
    return parse(source)[0]


def output_index(source: str) -> int:
    """Which output of its layer an output name is: ``lstm[1]`` -> 1, ``lstm`` -> 0."""
    return parse(source)[1]
