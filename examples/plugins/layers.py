"""Two custom layers: one written as `call` only (its gradient comes from the tape), one with a
hand-written backward (for speed). Used by custom_layers.yaml."""

from kerascli.api import Layer, Param, register_layer


@register_layer("ScaledDense")
class ScaledDense(Layer):
    """activation(x @ kernel + bias) * scale, written with primitives only."""

    PARAMS = {
        "units": Param("int", min=1),
        "activation": Param("str", "linear", choices=("linear", "relu", "sigmoid", "tanh", "softmax")),
        "scale": Param("float", 1.0),
    }

    def build(self, input_shape):
        units = self.config["units"]
        self.kernel = self.add_weight("kernel", (input_shape[-1], units), initializer="glorot_uniform")
        self.bias = self.add_weight("bias", (units,), initializer="zeros")

    def call(self, x, training=False):
        z = self.ops.matmul(x, self.kernel) + self.bias
        return self.ops.activation(z, self.config["activation"]) * self.config["scale"]


@register_layer("GatedDense")
class GatedDense(Layer):
    """x @ kernel * sigmoid(x @ gate): a gated linear unit, with its backward written by hand."""

    PARAMS = {"units": Param("int", min=1)}

    def build(self, input_shape):
        shape = (input_shape[-1], self.config["units"])
        self.kernel = self.add_weight("kernel", shape)
        self.gate = self.add_weight("gate", shape)

    def call(self, x, training=False):
        self._x = x
        self._linear = self.ops.gemm(x, self.kernel)
        self._sig = self.ops.activation(self.ops.gemm(x, self.gate), "sigmoid")
        return self._linear * self._sig

    def backward(self, dy):
        d_linear = dy * self._sig
        d_gate = dy * self._linear * self._sig * (1 - self._sig)
        self.grads["kernel"][...] = self.ops.gemm(self._x, d_linear, trans_a=True)
        self.grads["gate"][...] = self.ops.gemm(self._x, d_gate, trans_a=True)
        if not self.need_input_grad:
            return None
        return self.ops.gemm(d_linear, self.kernel, trans_b=True) + self.ops.gemm(d_gate, self.gate, trans_b=True)
