"""kerascli: train Keras-style models from YAML configs on numpy and Numba."""

__version__ = "0.1.0"
