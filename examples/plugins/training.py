"""A custom loss, metric, optimizer and callback. Used by custom_training.yaml."""

import numpy as np

from kerascli.api import (
    Callback,
    Optimizer,
    Param,
    ops,
    register_callback,
    register_loss,
    register_metric,
    register_optimizer,
)


@register_loss("huber_loss")
def huber_loss(y_true, y_pred):
    """Keras' Huber loss with delta 1: squared near the target, linear far from it; per sample."""
    error = ops.abs(y_pred - y_true)
    small = ops.minimum(error, 1.0)
    return ops.mean(0.5 * ops.square(small) + (error - small), axis=-1)


@register_metric("max_abs_error")
def max_abs_error(y_true, y_pred):
    """The largest absolute error of each sample."""
    return ops.max(ops.abs(y_pred - y_true), axis=-1)


@register_optimizer("sign_sgd")
class SignSGD(Optimizer):
    """p -= learning_rate * sign(g): every weight moves by the same step (signSGD, Bernstein et al. 2018)."""

    PARAMS = {"learning_rate": Param("float", 0.01, min=0.0, exclusive_min=True)}

    def apply(self, params, grads):
        params -= self.scalar(self.config["learning_rate"]) * np.sign(grads)


@register_callback("StopAtLoss")
class StopAtLoss(Callback):
    """Stop training once the epoch's loss is at or below ``threshold``."""

    PARAMS = {"threshold": Param("float", min=0.0)}

    def on_epoch_end(self, epoch, logs=None):
        if logs["loss"] <= self.config["threshold"]:
            self.stop_training = True
