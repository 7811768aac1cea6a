"""What every backend agrees on: the activation table, and the kernel families.

Activations are data. Each row gives the activation's name, the integer code
kernels switch on (Numba compiles a branch per code), its plain-numpy forward
and gradient (the definitions every backend is tested against), and the
properties that decide what may be done with it:

* ``increasing``: non-decreasing, so it commutes with a max: applying it
  after max pooling gives what applying it before would (the fused
  convolution + max pooling kernel relies on this);
* ``elementwise``: each output depends on its own input only (softmax
  normalises a whole row);
* ``sparse_gradient``: its gradient is exactly zero wherever its output is
  zero (relu): gradients behind it are mostly zeros;
* ``needs_input``: its gradient cannot be had from its output (gelu, silu,
  mish, hard_silu are not one-to-one), so ``backward`` takes the input ``z``
  in place of ``y`` and layers keep ``z`` for it. The kernels that fuse an
  activation into a GEMM or a convolution never see these;
* ``own_step``: layers run it as a step of its own after their linear part
  (bias_activation_forward and bias_activation_backward are the only kernels
  that see it; kerascli.graph.layer): every needs_input row, and log_softmax.

Every other gradient is computed from the activation's output ``y``, which is
what layers keep from the forward pass.

Adding an activation: a row here (numpy forward and gradient, properties),
one branch in each of ``activation_value`` and ``activation_gradient``
(kerascli/ops/scalar.py, which the cpu and cuda kernels compile), and a
registry entry. Parity tests run every kernel for every row of the table;
tests/test_activations.py holds each row to Keras.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Activation:
    name: str
    code: int
    forward: Callable[[np.ndarray], np.ndarray]  # z (rows, cols) -> y
    backward: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (dy, y) -> dz
    increasing: bool
    elementwise: bool = True
    sparse_gradient: bool = False
    needs_input: bool = False
    own_step: bool = False
    aliases: tuple = ()


LEAKY_SLOPE = 0.2  # Keras' leaky_relu default negative_slope
SELU_ALPHA, SELU_SCALE = 1.67326324235437728481, 1.05070098735548049342  # Keras' (Klambauer et al.)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _softmax_backward(dy, y):
    return y * (dy - (dy * y).sum(axis=1, keepdims=True))


def _log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _log_softmax_backward(dy, y):
    return dy - np.exp(y) * dy.sum(axis=1, keepdims=True)


_erf = np.vectorize(math.erf, otypes=[np.float64])
GELU_TANH_C = math.sqrt(2.0 / math.pi)  # the tanh approximation's constants (Hendrycks and Gimpel)
GELU_TANH_K = 0.044715


def _gelu_backward(dy, z):
    cdf = 0.5 * (1 + _erf(z / math.sqrt(2.0)))
    return (dy * (cdf + z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))).astype(dy.dtype)


def _gelu_tanh(z):
    return (0.5 * z * (1 + np.tanh(GELU_TANH_C * (z + GELU_TANH_K * z ** 3)))).astype(z.dtype)


def _gelu_tanh_backward(dy, z):
    t = np.tanh(GELU_TANH_C * (z + GELU_TANH_K * z ** 3))
    return (dy * (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * GELU_TANH_C * (1 + 3 * GELU_TANH_K * z * z))).astype(dy.dtype)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _softplus(z):
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def _mish_backward(dy, z):
    t = np.tanh(_softplus(z))
    return (dy * (t + z * _sigmoid(z) * (1 - t * t))).astype(dy.dtype)


ACTIVATION_TABLE: tuple[Activation, ...] = (
    Activation("linear", 0, lambda z: z.copy(), lambda dy, y: dy.copy(), increasing=True, aliases=("none",)),
    Activation("relu", 1, lambda z: np.maximum(z, 0), lambda dy, y: np.where(y > 0, dy, 0).astype(dy.dtype),
               increasing=True, sparse_gradient=True),
    Activation("sigmoid", 2, lambda z: 1 / (1 + np.exp(-z)), lambda dy, y: dy * y * (1 - y), increasing=True),
    Activation("tanh", 3, np.tanh, lambda dy, y: dy * (1 - y * y), increasing=True),
    Activation("softmax", 4, _softmax, _softmax_backward, increasing=False, elementwise=False),
    # Keras 3's, with its default arguments; gradients from the output as the others'
    Activation("relu6", 5, lambda z: np.clip(z, 0, 6), lambda dy, y: np.where((y > 0) & (y < 6), dy, 0).astype(dy.dtype),
               increasing=True, sparse_gradient=True),
    Activation("leaky_relu", 6, lambda z: np.where(z > 0, z, LEAKY_SLOPE * z).astype(z.dtype),
               lambda dy, y: np.where(y > 0, dy, LEAKY_SLOPE * dy).astype(dy.dtype), increasing=True),
    Activation("elu", 7, lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))).astype(z.dtype),
               lambda dy, y: np.where(y > 0, dy, dy * (y + 1)).astype(dy.dtype), increasing=True),
    Activation("selu", 8, lambda z: (SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0))))
               .astype(z.dtype),
               lambda dy, y: np.where(y > 0, SELU_SCALE * dy, dy * (y + SELU_SCALE * SELU_ALPHA)).astype(dy.dtype),
               increasing=True),
    Activation("softplus", 9, lambda z: (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))).astype(z.dtype),
               lambda dy, y: (dy * -np.expm1(-y)).astype(dy.dtype), increasing=True),
    Activation("softsign", 10, lambda z: z / (1 + np.abs(z)), lambda dy, y: dy * (1 - np.abs(y)) ** 2,
               increasing=True),
    Activation("hard_sigmoid", 11, lambda z: np.clip(z + 3, 0, 6) / 6,
               lambda dy, y: np.where((y > 0) & (y < 1), dy / 6, 0).astype(dy.dtype), increasing=True,
               sparse_gradient=True),
    Activation("exponential", 12, np.exp, lambda dy, y: dy * y, increasing=True),
    # gradients from the input (needs_input): backward's second argument is z
    Activation("gelu", 13, lambda z: (0.5 * z * (1 + _erf(z / math.sqrt(2.0)))).astype(z.dtype), _gelu_backward,
               increasing=False, needs_input=True, own_step=True),
    # Keras' gelu(x, approximate=True)
    Activation("gelu_approximate", 14, _gelu_tanh, _gelu_tanh_backward, increasing=False, needs_input=True,
               own_step=True),
    Activation("silu", 15, lambda z: z * _sigmoid(z),
               lambda dy, z: dy * _sigmoid(z) * (1 + z * (1 - _sigmoid(z))), increasing=False, needs_input=True,
               own_step=True, aliases=("swish",)),
    Activation("mish", 16, lambda z: (z * np.tanh(_softplus(z))).astype(z.dtype), _mish_backward, increasing=False,
               needs_input=True, own_step=True),
    Activation("hard_silu", 17, lambda z: z * np.clip(z + 3, 0, 6) / 6,
               lambda dy, z: np.where(z < -3, 0, np.where(z > 3, dy, dy * (2 * z + 3) / 6)).astype(dy.dtype),
               increasing=False, needs_input=True, own_step=True, aliases=("hard_swish",)),
    Activation("log_softmax", 18, _log_softmax, _log_softmax_backward, increasing=False, elementwise=False,
               own_step=True),
)
assert [a.code for a in ACTIVATION_TABLE] == list(range(len(ACTIVATION_TABLE)))
assert all(a.own_step for a in ACTIVATION_TABLE if a.needs_input)

BY_NAME = {a.name: a for a in ACTIVATION_TABLE}
LINEAR, RELU, SIGMOID, TANH, SOFTMAX = (BY_NAME[n].code for n in ("linear", "relu", "sigmoid", "tanh", "softmax"))
RELU6, LEAKY_RELU, ELU, SELU, SOFTPLUS, SOFTSIGN, HARD_SIGMOID, EXPONENTIAL = (
    BY_NAME[n].code for n in ("relu6", "leaky_relu", "elu", "selu", "softplus", "softsign", "hard_sigmoid",
                              "exponential"))
GELU, GELU_APPROXIMATE, SILU, MISH, HARD_SILU, LOG_SOFTMAX = (
    BY_NAME[n].code for n in ("gelu", "gelu_approximate", "silu", "mish", "hard_silu", "log_softmax"))


def activation(code: int) -> Activation:
    return ACTIVATION_TABLE[code]


@dataclass(frozen=True)
class ElementLoss:
    """A loss that is the mean over the last axis of f(prediction, target) (Keras' regression losses):
    f and its derivative in the prediction, in numpy; ``param`` is the loss's one argument (huber's delta)."""

    name: str
    code: int
    value: Callable  # (p, t, param) -> f, elementwise
    gradient: Callable  # (p, t, param) -> df/dp, elementwise


_EPS = 1e-7  # Keras' backend epsilon


def _huber(p, t, delta):
    e = np.abs(p - t)
    return np.where(e <= delta, 0.5 * e * e, delta * e - 0.5 * delta * delta)


def _log_cosh(p, t, _):
    x = p - t
    return x + np.logaddexp(0, -2 * x) - np.log(2.0)  # log(cosh x) without overflow


def _kl_divergence(p, t, _):
    t, p = np.clip(t, _EPS, 1), np.clip(p, _EPS, 1)
    return t * np.log(t / p)


def _hinge_targets(t, convert):
    return 2 * t - 1 if convert else t


ELEMENT_LOSSES: tuple[ElementLoss, ...] = (
    ElementLoss("mean_absolute_error", 0, lambda p, t, _: np.abs(p - t), lambda p, t, _: np.sign(p - t)),
    ElementLoss("mean_absolute_percentage_error", 1,
                lambda p, t, _: 100 * np.abs((t - p) / np.maximum(np.abs(t), _EPS)),
                lambda p, t, _: 100 * np.sign(p - t) / np.maximum(np.abs(t), _EPS)),
    ElementLoss("mean_squared_logarithmic_error", 2,
                lambda p, t, _: (np.log(np.maximum(p, _EPS) + 1) - np.log(np.maximum(t, _EPS) + 1)) ** 2,
                lambda p, t, _: np.where(p > _EPS, 2 * (np.log(np.maximum(p, _EPS) + 1)
                                                        - np.log(np.maximum(t, _EPS) + 1)) / (p + 1), 0)),
    ElementLoss("huber", 3, _huber,
                lambda p, t, delta: np.where(np.abs(p - t) <= delta, p - t, delta * np.sign(p - t))),
    ElementLoss("log_cosh", 4, _log_cosh, lambda p, t, _: np.tanh(p - t)),
    ElementLoss("poisson", 5, lambda p, t, _: p - t * np.log(p + _EPS), lambda p, t, _: 1 - t / (p + _EPS)),
    # Kullback-Leibler: both clipped to [eps, 1] (the loss sums over the last axis: its caller scales)
    ElementLoss("kl_divergence", 6, _kl_divergence,
                lambda p, t, _: np.where((p >= _EPS) & (p <= 1), -np.clip(t, _EPS, 1) / np.clip(p, _EPS, 1), 0)),
    # the hinges: ``param`` 1 where the batch's targets are all 0 or 1 (then taken as -1 or 1, as Keras does)
    ElementLoss("hinge", 7, lambda p, t, convert: np.maximum(1 - _hinge_targets(t, convert) * p, 0),
                lambda p, t, convert: np.where(1 - _hinge_targets(t, convert) * p > 0,
                                               -_hinge_targets(t, convert), 0)),
    ElementLoss("squared_hinge", 8, lambda p, t, convert: np.maximum(1 - _hinge_targets(t, convert) * p, 0) ** 2,
                lambda p, t, convert: -2 * _hinge_targets(t, convert)
                * np.maximum(1 - _hinge_targets(t, convert) * p, 0)),
)
assert [loss.code for loss in ELEMENT_LOSSES] == list(range(len(ELEMENT_LOSSES)))
MAE, MAPE, MSLE, HUBER, LOG_COSH, POISSON, KL_DIVERGENCE, HINGE, SQUARED_HINGE = range(len(ELEMENT_LOSSES))


@dataclass(frozen=True)
class Conv2DGeometry:
    """Where a 2-D convolution's windows fall: kernel size, strides, padding before, output size and
    input channels (layers compute it once from Keras' rules; kernels and algorithms read it)."""

    kh: int
    kw: int
    sh: int
    sw: int
    pad_top: int
    pad_left: int
    out_h: int
    out_w: int
    channels: int  # input channels

    @property
    def patch_size(self) -> int:
        return self.kh * self.kw * self.channels


    def window(self):
        return self.kh, self.kw, self.sh, self.sw, self.pad_top, self.pad_left, self.out_h, self.out_w

    def work(self, n: int, filters: int) -> int:
        return n * self.out_h * self.out_w * self.patch_size * filters


# fill_mode codes of the augmentation kernels: how a coordinate outside an image is read (scipy.ndimage's modes,
# which Keras' ImageDataGenerator uses)
FILL_CONSTANT, FILL_NEAREST, FILL_REFLECT, FILL_WRAP = 0, 1, 2, 3
FILL_MODES = {"constant": FILL_CONSTANT, "nearest": FILL_NEAREST, "reflect": FILL_REFLECT, "wrap": FILL_WRAP}

# Kernel families: every backend's kernels live in modules of these names (kerascli/ops/reference/<family>.py,
# kerascli/ops/cpu/<family>.py, ...), function for function with the reference signatures.
KERNEL_FAMILIES = ("activations", "losses", "conv", "pooling", "norm", "dropout", "optim", "recurrent", "augment",
                   "embedding", "winograd", "masks")
