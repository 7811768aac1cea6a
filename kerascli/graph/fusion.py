"""Declared fusions: pairs of layers that one Ops method may run as one, and when that is correct.

A pattern names a producer and a consumer layer type, the Ops method that runs
both, the condition (read from layer configuration and activation
properties, never from layer internals reaching into each other) and how the
producer takes the consumer over. A model fuses a pair only when its consumer
is the single reader of the producer's output, the producer is not the
model's output, and the backend has the method. A pattern may hold for inference
only: training then runs both layers as they are (a backward pass needs what the
fused forward does not keep).
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
    training: bool = True  # False: fused for inference only (training runs the two layers as they are)


def _pool_commutes(conv, pool) -> bool:
    """The pooling windows tile the image (strides = pool_size, valid padding) and the convolution's
    activation is increasing, so that it commutes with the max (gelu or swish would not); and the
    convolution runs on the Ops' kernels (not dilated or grouped)."""
    pc = pool.config
    tiles = pc["padding"] == "valid" and list(pc["strides"]) == list(pc["pool_size"])
    return tiles and activation(conv.activation).increasing and not conv.windowed


def _conv_maxpool_applies(ops, conv, pool) -> bool:
    """A first convolution (a patch small enough for the direct kernels) and the max pooling after it,
    in training too: no input gradient may be needed (the fused backward forms only the weight gradients,
    with the direct kernel). The convolution's full-size output is never written and read back
    (benchmark CNN step 16.5 -> about 13 ms)."""
    return _pool_commutes(conv, pool) and ops.conv2d_is_direct(conv.geometry) and not conv.need_input_grad


def _conv_maxpool_inference_applies(ops, conv, pool) -> bool:
    """Any other convolution and the max pooling after it, in inference (predict, evaluate): nothing of
    the convolution's output is kept for a backward pass there."""
    return _pool_commutes(conv, pool) and ops.conv2d_fuses_pool_in_inference(conv.geometry)


def _link_pool(conv, pool) -> None:
    conv.pool = pool


def _link_inference_pool(conv, pool) -> None:
    conv.inference_pool = pool


PATTERNS: tuple[FusionPattern, ...] = (
    FusionPattern("Conv2D", "MaxPooling2D", "conv2d_maxpool_forward", _conv_maxpool_applies, _link_pool),
    FusionPattern("Conv2D", "MaxPooling2D", "conv2d_maxpool_forward", _conv_maxpool_inference_applies,
                  _link_inference_pool, training=False),
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
        if producer is None or src in model.outputs or readers[src] != 1 or producer.absorbed_by is not None \
                or producer.inference_absorbed_by is not None:
            continue
        for pattern in PATTERNS:
            if (producer.type_name, consumer.type_name) != (pattern.producer, pattern.consumer):
                continue
            if hasattr(ops, pattern.op) and pattern.applies(ops, producer, consumer):
                pattern.link(producer, consumer)
                if pattern.training:
                    consumer.absorbed_by = producer
                else:
                    consumer.inference_absorbed_by = producer
                fused.append((producer.name, consumer.name))
                break
    return fused
