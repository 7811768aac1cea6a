"""SGD and Adam with Keras' update rules and defaults, over the model's flat buffers."""

from __future__ import annotations

import math

import numpy as np

from kerascli.config.params import Param


class Optimizer:
    PARAMS: dict[str, Param] = {}
    SLOTS: tuple[str, ...] = ()

    def __init__(self, config: dict, size: int, dtype, ops):
        self.config = dict(config)
        self.ops = ops
        self.scalar = np.dtype(dtype).type  # kernels get scalars in the buffer's dtype
        self.iterations = 0
        self.slots = {name: ops.zeros((size,), dtype) for name in self.SLOTS}
        # learning_rate: a number, or a schedule ({type: CosineDecay, ...}: kerascli.schedules) of the step
        rate = self.config.get("learning_rate")
        self.schedule = None
        if isinstance(rate, dict):
            from kerascli.registry import SCHEDULES

            self.schedule = SCHEDULES.get(rate["type"])({k: v for k, v in rate.items() if k != "type"})
            self.config["learning_rate"] = self.schedule(0)
        self.base_learning_rate = self.config.get("learning_rate")
        self.learning_rate_scale = 1.0  # lowered by a NaN rollback, kept in checkpoints

    def learning_rate_at(self, step: int) -> float:
        """The learning rate of the update made after ``step`` updates (Keras: the schedule of iterations)."""
        base = self.schedule(step) if self.schedule is not None else self.base_learning_rate
        return base * self.learning_rate_scale

    @property
    def learning_rate(self) -> float:
        """The learning rate the next update uses."""
        return self.learning_rate_at(self.iterations)

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        # apply() reads config["learning_rate"]: this update's rate, whatever the schedule
        self.config["learning_rate"] = self.learning_rate
        self.iterations += 1
        self.apply(params, grads)

    def apply(self, params: np.ndarray, grads: np.ndarray) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        return {"iterations": np.array(self.iterations, dtype=np.int64), **self.slots}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.iterations = int(state["iterations"])
        for name, value in self.slots.items():
            self.ops.assign(value, state[name])


class SGD(Optimizer):
    PARAMS = {
        "learning_rate": Param("float", 0.01, min=0.0, exclusive_min=True),
        "momentum": Param("float", 0.0, min=0.0, max=1.0),
        "nesterov": Param("bool", False),
    }
    SLOTS = ("velocity",)

    def apply(self, params, grads):
        c, f, velocity = self.config, self.scalar, self.slots["velocity"]
        lr, momentum = f(c["learning_rate"]), f(c["momentum"])
        self.ops.sgd_step(params, grads, velocity, lr, momentum, c["nesterov"])


class Adam(Optimizer):
    PARAMS = {
        "learning_rate": Param("float", 0.001, min=0.0, exclusive_min=True),
        "beta_1": Param("float", 0.9, min=0.0, max=0.999999),
        "beta_2": Param("float", 0.999, min=0.0, max=0.999999),
        "epsilon": Param("float", 1e-7, min=0.0, exclusive_min=True),
    }
    SLOTS = ("m", "v")

    def apply(self, params, grads):
        c, f, t = self.config, self.scalar, self.iterations
        # Keras folds the bias corrections of m and v into the step size
        alpha = c["learning_rate"] * math.sqrt(1 - c["beta_2"] ** t) / (1 - c["beta_1"] ** t)
        m, v = self.slots["m"], self.slots["v"]
        scalars = f(alpha), f(1 - c["beta_1"]), f(1 - c["beta_2"]), f(c["epsilon"])
        self.ops.adam_step(params, grads, m, v, *scalars)
