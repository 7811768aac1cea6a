"""Activation names, from the activation table (kerascli.ops.contract): the registry maps each name to its code."""

from kerascli.ops.contract import ACTIVATION_TABLE
from kerascli.registry import ACTIVATIONS

for _activation in ACTIVATION_TABLE:
    ACTIVATIONS.add(_activation.name, _activation.code, *_activation.aliases)
