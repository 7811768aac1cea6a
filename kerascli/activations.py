"""Activation names and the kernel codes that stand for them."""

from kerascli.ops.reference import LINEAR, RELU, SIGMOID, SOFTMAX, TANH
from kerascli.registry import ACTIVATIONS

ACTIVATIONS.add("linear", LINEAR, "none")
ACTIVATIONS.add("relu", RELU)
ACTIVATIONS.add("sigmoid", SIGMOID)
ACTIVATIONS.add("tanh", TANH)
ACTIVATIONS.add("softmax", SOFTMAX)
