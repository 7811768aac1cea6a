"""Built-in layers; importing this package registers them."""

from kerascli.layers import conv, core, merge, normalization, pooling  # noqa: F401
