"""BatchNormalization over the last axis, with Keras' defaults and moving statistics; frozen
(``trainable: false``), it runs in inference mode in training too, as Keras' does."""

from __future__ import annotations

from kerascli.config.params import Param, constraint_param, regularizer_param
from kerascli.graph.layer import Layer
from kerascli.registry import INITIALIZERS


class BatchNormalization(Layer):
    """Training: normalise by batch statistics and update moving ones; inference: use the moving ones."""

    PARAMS = {
        "momentum": Param("float", 0.99, min=0.0, max=1.0),
        "epsilon": Param("float", 0.001, min=0.0, exclusive_min=True),
        "center": Param("bool", True),
        "scale": Param("bool", True),
        "beta_initializer": Param("typed", "zeros", choices=INITIALIZERS),
        "gamma_initializer": Param("typed", "ones", choices=INITIALIZERS),
        "moving_mean_initializer": Param("typed", "zeros", choices=INITIALIZERS),
        "moving_variance_initializer": Param("typed", "ones", choices=INITIALIZERS),
        "beta_regularizer": regularizer_param(),
        "gamma_regularizer": regularizer_param(),
        "beta_constraint": constraint_param(),
        "gamma_constraint": constraint_param(),
    }

    def build(self, input_shape):
        c = self.config
        self.channels = input_shape[-1]
        if c["scale"]:
            self.add_weight("gamma", (self.channels,), c["gamma_initializer"], regularizer=c["gamma_regularizer"],
                            constraint=c["gamma_constraint"])
        if c["center"]:
            self.add_weight("beta", (self.channels,), c["beta_initializer"], regularizer=c["beta_regularizer"],
                            constraint=c["beta_constraint"])
        self.add_weight("moving_mean", (self.channels,), c["moving_mean_initializer"], trainable=False)
        self.add_weight("moving_variance", (self.channels,), c["moving_variance_initializer"], trainable=False)
        return tuple(input_shape)

    def _gamma_beta(self, dtype):
        gamma = self.params.get("gamma")
        beta = self.params.get("beta")
        if gamma is None:
            gamma = self._constant("ones", 1, dtype)
        if beta is None:
            beta = self._constant("zeros", 0, dtype)
        return gamma, beta

    def _constant(self, name, value, dtype):
        """A per-channel constant standing in for a weight the layer does not have (made once)."""
        have = self._workspace.get(name)
        if have is None or have.dtype != dtype:
            have = self._workspace[name] = self.ops.full((self.channels,), value, dtype)
        return have

    def forward(self, x, training):
        x2 = x.reshape(-1, self.channels)
        gamma, beta = self._gamma_beta(x.dtype)
        eps = self.config["epsilon"]
        self._frozen = training and not self.trainable
        if not training or not self.trainable:  # a frozen layer runs in inference mode, as in Keras
            self._gamma = gamma
            y = self.ops.batch_norm_inference(
                x2, self.params["moving_mean"], self.params["moving_variance"], gamma, beta, eps
            )
            return y.reshape(x.shape)
        y, mean, var, self._xhat, self._inv_std = self.ops.batch_norm_forward_train(x2, gamma, beta, eps)
        momentum = self.config["momentum"]
        self.ops.moving_average_update(self.params["moving_mean"], mean, momentum)
        self.ops.moving_average_update(self.params["moving_variance"], var, momentum)
        self._gamma = gamma
        return y.reshape(x.shape)

    def backward(self, dy):
        if self._frozen:  # y = (x - mean) * gamma / sqrt(var + eps) + beta with fixed statistics
            zeros = self._constant("zeros", 0, dy.dtype)
            dx = self.ops.batch_norm_inference(dy.reshape(-1, self.channels), zeros,
                                               self.params["moving_variance"], self._gamma, zeros,
                                               self.config["epsilon"])
            return dx.reshape(dy.shape)
        dx, dgamma, dbeta = self.ops.batch_norm_backward(
            dy.reshape(-1, self.channels), self._xhat, self._gamma, self._inv_std
        )
        if "gamma" in self.grads:
            self.ops.assign(self.grads["gamma"], dgamma)
        if "beta" in self.grads:
            self.ops.assign(self.grads["beta"], dbeta)
        return dx.reshape(dy.shape)
