"""Central-difference gradient checks in float64, shared by the layer and loss tests."""

import numpy as np


def numeric_grad(f, x, eps=1e-6):
    """d f() / d x by central differences, perturbing ``x`` in place."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def assert_grad_close(analytic, numeric, what):
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7, err_msg=f"gradient of {what}")
