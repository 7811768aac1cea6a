"""Declared fusions: pairs of layers that one Ops method may run as one, and when that is correct.

A pattern names a producer and a consumer layer type, the Ops method that runs
both, the condition (read from layer configuration and activation
properties, never from layer internals reaching into each other) and how the
producer takes the consumer over. A model fuses a pair only when its consumer
is the single reader of the producer's output, the producer is not the
model's output, and the backend has the method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from kerascli.ops.contract import activation


@dataclass(frozen=True)
class FusionPattern:
    producer: str  # layer type names
    consumer: str
    op: str  # the Ops method that runs both
    applies: Callable  # (ops, producer, consumer) -> bool
    link: Callable  # (producer, consumer) -> None: the producer takes the consumer's work over


def _conv_maxpool_applies(ops, conv, pool) -> bool:
    """A first convolution's direct kernel and the max pooling after it: the windows must tile the image
    (strides = pool_size, valid padding), the activation must be increasing (so it commutes with the
    max: gelu or swish would not) and no input gradient may be needed (the fused backward forms none).
    The convolution's full-size output is then never written and read back (benchmark CNN step 16.5 ->
    about 13 ms)."""
    pc = pool.config
    tiles = pc["padding"] == "valid" and list(pc["strides"]) == list(pc["pool_size"])
    return tiles and ops.conv2d_is_direct(conv.geometry) and not conv.need_input_grad and activation(conv.act).increasing


def _link_pool(conv, pool) -> None:
    conv.pool = pool


PATTERNS: tuple[FusionPattern, ...] = (
    FusionPattern("Conv2D", "MaxPooling2D", "conv2d_maxpool_forward", _conv_maxpool_applies, _link_pool),
)


def fuse(model, ops) -> list[tuple[str, str]]:
    """Apply every pattern that holds to ``model`` (a Model) for ``ops``; returns (producer, consumer) names."""
    readers: dict[str, int] = {}
    for node in model.nodes:
        for src in node.inputs:
            readers[src] = readers.get(src, 0) + 1
    by_name = {node.layer.name: node.layer for node in model.nodes}
    fused = []
    for node in model.nodes:
        consumer = node.layer
        if consumer.n_inputs != 1 or len(node.inputs) != 1:
            continue
        src = node.inputs[0]
        producer = by_name.get(src)
        if producer is None or src in model.outputs or readers[src] != 1 or producer.absorbed_by is not None:
            continue
        for pattern in PATTERNS:
            if (producer.type_name, consumer.type_name) != (pattern.producer, pattern.consumer):
                continue
            if hasattr(ops, pattern.op) and pattern.applies(ops, producer, consumer):
                pattern.link(producer, consumer)
                consumer.absorbed_by = producer
                fused.append((producer.name, consumer.name))
                break
    return fused
