"""Keras 3's optimizers (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adafactor, Adamax, Nadam, Lion, Ftrl): their
update rules,
arguments and defaults, over the model's flat buffers. Every one takes ``weight_decay`` (decoupled, as in
Keras: weights shrink by weight_decay * learning_rate before the update) and a learning-rate schedule."""

from __future__ import annotations

import math

import numpy as np

from kerascli.config.params import Param


class Optimizer:
    PARAMS: dict[str, Param] = {}
    SLOTS: tuple[str, ...] = ()
    # whether each parameter's update reads only its own gradient and slot values (so the update of the
    # whole buffer is the updates of its parts: data-parallel ranks may each update a part)
    ELEMENTWISE = False

    SLOT_START: dict[str, float] = {}  # initial slot values other than 0

    def __init__(self, config: dict, size: int, dtype, ops):
        self.config = dict(config)
        self.ops = ops
        self.scalar = np.dtype(dtype).type  # kernels get scalars in the buffer's dtype
        self.iterations = 0
        self.slots = {name: ops.full((size,), self.slot_start(name), dtype) for name in self.slot_names()}
        # segments of the flat buffers that clipping takes one norm over: all of it (global_clipnorm), and
        # each weight (clipnorm; one segment until set_weights_layout says where weights start)
        self.whole = self.bounds = ops.to_device(np.array([0, size], np.int64))
        self.weights: list = []  # (start, shape) of each weight, where set_weights_layout gave shapes
        # learning_rate: a number, or a schedule ({type: CosineDecay, ...}: kerascli.schedules) of the step
        rate = self.config.get("learning_rate")
        self.schedule = None
        if isinstance(rate, dict):
            from kerascli.registry import SCHEDULES

            self.schedule = SCHEDULES.get(rate["type"])({k: v for k, v in rate.items() if k != "type"})
            self.config["learning_rate"] = self.schedule(0)
        self.base_learning_rate = self.config.get("learning_rate")
        self.learning_rate_scale = 1.0  # lowered by a NaN rollback, kept in checkpoints
        # with gradient_accumulation_steps N: gradients summed since the last update (Keras' counter of
        # steps is iterations * N + this), kept in checkpoints
        self.accumulated = 0

    def slot_names(self) -> tuple[str, ...]:
        """The optimizer's state arrays (one value per parameter), named as in checkpoints."""
        return self._slot_names() + (("gradient_accumulator",) if self.config.get("gradient_accumulation_steps")
                                     else ()) + (("average",) if self.config.get("use_ema") else ())

    def _slot_names(self) -> tuple[str, ...]:
        return self.SLOTS

    def slot_start(self, name: str) -> float:
        return self.SLOT_START.get(name, 0.0)

    def learning_rate_at(self, step: int) -> float:
        """The learning rate of the update made after ``step`` updates (Keras: the schedule of iterations)."""
        base = self.schedule(step) if self.schedule is not None else self.base_learning_rate
        return base * self.learning_rate_scale

    @property
    def learning_rate(self) -> float:
        """The learning rate the next update uses (with gradient accumulation, Keras' schedule of all steps
        so far: the rate of the update made at this step)."""
        steps = self.config.get("gradient_accumulation_steps")
        return self.learning_rate_at(self.iterations * steps + self.accumulated if steps else self.iterations)

    def set_learning_rate(self, value: float) -> None:
        """Use ``value`` from the next update on (ReduceLROnPlateau); kept in checkpoints as the scale of the
        configured rate. A schedule's rate cannot be set, as in Keras."""
        if self.schedule is not None:
            raise ValueError("the learning rate follows a schedule and cannot be set")
        self.learning_rate_scale = value / self.base_learning_rate

    def set_weights_layout(self, bounds, shapes=None) -> None:
        """Where each weight starts in the flat buffers (and where the last ends): clipnorm clips each
        weight's gradient by its own norm, as Keras clips each variable's; ``shapes`` are the weights'
        shapes in the same order (for an optimizer whose state depends on them)."""
        self.bounds = self.ops.to_device(np.asarray(bounds, dtype=np.int64))
        self.weights = list(zip(bounds[:-1], shapes or []))

    @property
    def changes_gradients(self) -> bool:
        """Whether ``step`` writes into the gradients it is given (clipping, gradient accumulation)."""
        return any(self.config.get(k) for k in ("clipnorm", "clipvalue", "global_clipnorm",
                                                "gradient_accumulation_steps"))

    def clip(self, grads) -> None:
        """Keras' gradient clipping, in place: clipnorm per weight, global_clipnorm over all, or clipvalue."""
        c, f = self.config, self.scalar
        if c.get("clipnorm"):
            self.ops.clip_norms(grads, self.bounds, f(c["clipnorm"]))
        elif c.get("global_clipnorm"):
            self.ops.clip_norms(grads, self.whole, f(c["global_clipnorm"]))
        elif c.get("clipvalue"):
            self.ops.optimizer_step("clip_values", (grads,), (f(c["clipvalue"]),))

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        updates_before = self.iterations
        self._update(params, grads)
        if self.config.get("use_ema"):  # as Keras, after every step (accumulating ones too)
            # the first step's average is the weights themselves
            momentum = self.config["ema_momentum"] if updates_before else 0.0
            self.ops.optimizer_step("moving_average_weights", (self.slots["average"], params),
                                    (self.scalar(momentum),))
            every = self.config.get("ema_overwrite_frequency")
            if every and (updates_before + 1) % every == 0:
                self.ops.assign(params, self.slots["average"])

    @classmethod
    def updates_by_parts(cls, config: dict) -> bool:
        """Whether an optimizer of this class with ``config`` can update a part of the buffers at a time
        (``step_part``): elementwise rules, and no clipping by norms taken over whole weights."""
        return cls.ELEMENTWISE and not (config.get("clipnorm") or config.get("global_clipnorm"))

    def step_part(self, params: np.ndarray, grads: np.ndarray, lo: int, hi: int) -> None:
        """One step over the part [lo, hi) of the flat buffers: ``params`` and ``grads`` are that part, the
        slots are cut to it (``updates_by_parts`` says where the parts' steps make up the whole one)."""
        if not type(self).updates_by_parts(self.config):
            raise ValueError(f"{type(self).__name__} with this configuration updates whole weights only")
        whole = self.slots
        self.slots = {name: slot[lo:hi] for name, slot in whole.items()}
        try:
            self.step(params, grads)
        finally:
            self.slots = whole

    def finalize(self, params) -> bool:
        """At the end of training, as Keras' fit: with use_ema the weights become their moving average.
        Returns whether they changed."""
        if not self.config.get("use_ema") or not self.iterations:
            return False
        self.ops.assign(params, self.slots["average"])
        return True

    def _update(self, params: np.ndarray, grads: np.ndarray) -> None:
        # apply() reads config["learning_rate"]: this update's rate, whatever the schedule
        rate = self.learning_rate
        steps = self.config.get("gradient_accumulation_steps")
        if steps:  # as Keras: every N-th step updates with the mean of the last N gradients
            accumulator = self.slots["gradient_accumulator"]
            if self.accumulated + 1 < steps:
                self.ops.optimizer_step("accumulate_gradient", (accumulator, grads))
                self.accumulated += 1
                return
            self.ops.optimizer_step("average_accumulated_gradient", (grads, accumulator), (self.scalar(steps),))
            self.accumulated = 0
        self.config["learning_rate"] = rate
        self.clip(grads)
        if self.config.get("weight_decay"):
            rate = self.scalar(self.config["weight_decay"] * self.config["learning_rate"])
            self.ops.optimizer_step("decay_weights", (params,), (rate,))
        self.iterations += 1
        self.apply(params, grads)

    def apply(self, params: np.ndarray, grads: np.ndarray) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        return {"iterations": np.array(self.iterations, dtype=np.int64),
                "accumulated": np.array(self.accumulated, dtype=np.int64), **self.slots}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.iterations = int(state["iterations"])
        self.accumulated = int(state.get("accumulated", 0))
        for name, value in self.slots.items():
            self.ops.assign(value, state[name])


def _rate(default: float) -> Param:
    return Param("float", default, min=0.0, exclusive_min=True)


def _beta(default: float) -> Param:
    return Param("float", default, min=0.0, max=0.999999)


EPSILON = Param("float", 1e-7, min=0.0, exclusive_min=True)
WEIGHT_DECAY = Param("float", None, min=0.0, nullable=True, doc="decoupled weight decay (None: off)")
# Keras' gradient clipping, every optimizer: at most one of them; and gradient accumulation
CLIPPING = {name: Param("float", None, min=0.0, exclusive_min=True, nullable=True, doc=doc) for name, doc in (
    ("clipnorm", "clip each weight's gradient to this norm"),
    ("clipvalue", "clip each gradient value to [-clipvalue, clipvalue]"),
    ("global_clipnorm", "clip all gradients together to this norm"))}
CLIPPING["gradient_accumulation_steps"] = Param("int", None, min=2, nullable=True,
                                                doc="update every N steps with the mean of their gradients")
# Keras' exponential moving average of the weights (the weights become it when training ends)
CLIPPING["use_ema"] = Param("bool", False)
CLIPPING["ema_momentum"] = Param("float", 0.99, min=0.0, max=1.0)
CLIPPING["ema_overwrite_frequency"] = Param("int", None, min=1, nullable=True,
                                            doc="copy the average into the weights every N updates")


class SGD(Optimizer):
    ELEMENTWISE = True
    PARAMS = {
        "learning_rate": _rate(0.01),
        "momentum": Param("float", 0.0, min=0.0, max=1.0),
        "nesterov": Param("bool", False),
        "weight_decay": WEIGHT_DECAY,
        **CLIPPING,
    }
    SLOTS = ("velocity",)

    def apply(self, params, grads):
        c, f, velocity = self.config, self.scalar, self.slots["velocity"]
        lr, momentum = f(c["learning_rate"]), f(c["momentum"])
        self.ops.sgd_step(params, grads, velocity, lr, momentum, c["nesterov"])


class Adam(Optimizer):
    """With ``amsgrad``, the denominator takes the largest v so far (a ``velocity_hat`` slot), as Keras."""

    ELEMENTWISE = True
    PARAMS = {"learning_rate": _rate(0.001), "beta_1": _beta(0.9), "beta_2": _beta(0.999), "epsilon": EPSILON,
              "amsgrad": Param("bool", False), "weight_decay": WEIGHT_DECAY, **CLIPPING}

    def _slot_names(self):
        return ("m", "v") + (("velocity_hat",) if self.config.get("amsgrad") else ())

    def apply(self, params, grads):
        c, f, t = self.config, self.scalar, self.iterations
        # Keras folds the bias corrections of m and v into the step size
        alpha = c["learning_rate"] * math.sqrt(1 - c["beta_2"] ** t) / (1 - c["beta_1"] ** t)
        m, v = self.slots["m"], self.slots["v"]
        scalars = f(alpha), f(1 - c["beta_1"]), f(1 - c["beta_2"]), f(c["epsilon"])
        if c.get("amsgrad"):
            self.ops.optimizer_step("adam_amsgrad_update", (params, grads, m, v, self.slots["velocity_hat"]),
                                    scalars)
        else:
            self.ops.adam_step(params, grads, m, v, *scalars)


class AdamW(Adam):
    """Adam with decoupled weight decay on by default (Keras: 0.004)."""

    PARAMS = {**Adam.PARAMS, "weight_decay": Param("float", 0.004, min=0.0, nullable=True)}


class RMSprop(Optimizer):
    ELEMENTWISE = True
    PARAMS = {"learning_rate": _rate(0.001), "rho": _beta(0.9), "momentum": Param("float", 0.0, min=0.0, max=1.0),
              "epsilon": EPSILON, "centered": Param("bool", False), "weight_decay": WEIGHT_DECAY, **CLIPPING}

    def _slot_names(self):
        c = self.config
        return ("velocity",) + (("momentum",) if c["momentum"] > 0 else ()) + (
            ("average_gradient",) if c["centered"] else ())

    def apply(self, params, grads):
        c, f, s = self.config, self.scalar, self.slots
        velocity = s["velocity"]
        self.ops.optimizer_step("rmsprop_update", (params, grads, velocity, s.get("momentum", velocity),
                                                   s.get("average_gradient", velocity)),
                                (f(c["learning_rate"]), f(c["rho"]), f(c["momentum"]), f(c["epsilon"]),
                                 c["centered"]))


class Adagrad(Optimizer):
    ELEMENTWISE = True
    PARAMS = {"learning_rate": _rate(0.001), "initial_accumulator_value": Param("float", 0.1, min=0.0),
              "epsilon": EPSILON, "weight_decay": WEIGHT_DECAY, **CLIPPING}
    SLOTS = ("accumulator",)

    def slot_start(self, name):
        return self.config["initial_accumulator_value"] if name == "accumulator" else 0.0

    def apply(self, params, grads):
        c, f = self.config, self.scalar
        self.ops.optimizer_step("adagrad_update", (params, grads, self.slots["accumulator"]),
                                (f(c["learning_rate"]), f(c["epsilon"])))


class Adamax(Optimizer):
    ELEMENTWISE = True
    PARAMS = {"learning_rate": _rate(0.001), "beta_1": _beta(0.9), "beta_2": _beta(0.999), "epsilon": EPSILON,
              "weight_decay": WEIGHT_DECAY, **CLIPPING}
    SLOTS = ("m", "u")

    def apply(self, params, grads):
        c, f, t = self.config, self.scalar, self.iterations
        lr_t = c["learning_rate"] / (1 - c["beta_1"] ** t)
        self.ops.optimizer_step("adamax_update", (params, grads, self.slots["m"], self.slots["u"]),
                                (f(lr_t), f(1 - c["beta_1"]), f(c["beta_2"]), f(c["epsilon"])))


class Nadam(Optimizer):
    ELEMENTWISE = True
    PARAMS = {"learning_rate": _rate(0.001), "beta_1": _beta(0.9), "beta_2": _beta(0.999), "epsilon": EPSILON,
              "weight_decay": WEIGHT_DECAY, **CLIPPING}
    SLOTS = ("m", "v")

    def _momentum(self, t: int) -> float:
        """Nadam's momentum at step t (Keras: beta_1 (1 - 0.5 * 0.96^t))."""
        return self.config["beta_1"] * (1 - 0.5 * 0.96 ** t)

    def _momentum_product(self, t: int) -> float:
        """The product of the momenta of steps 1..t (Keras keeps it as a variable; here it follows from t,
        extended from the last step asked for, recomputed after a resume moved t back)."""
        step, product = getattr(self, "_product", (0, 1.0))
        if step > t:
            step, product = 0, 1.0
        while step < t:
            step += 1
            product *= self._momentum(step)
        self._product = (step, product)
        return product

    def apply(self, params, grads):
        c, f, t = self.config, self.scalar, self.iterations
        u_t, u_next = self._momentum(t), self._momentum(t + 1)
        product = self._momentum_product(t)
        m_coef, g_coef = u_next / (1 - product * u_next), (1 - u_t) / (1 - product)
        v_coef = 1 / (1 - c["beta_2"] ** t)
        self.ops.optimizer_step("nadam_update", (params, grads, self.slots["m"], self.slots["v"]),
                                (f(c["learning_rate"]), f(1 - c["beta_1"]), f(1 - c["beta_2"]), f(c["epsilon"]),
                                 f(m_coef), f(g_coef), f(v_coef)))


class Lion(Optimizer):
    ELEMENTWISE = True
    PARAMS = {"learning_rate": _rate(0.001), "beta_1": Param("float", 0.9, min=0.0, max=1.0),
              "beta_2": Param("float", 0.99, min=0.0, max=1.0), "weight_decay": WEIGHT_DECAY, **CLIPPING}
    SLOTS = ("m",)

    def apply(self, params, grads):
        c, f = self.config, self.scalar
        self.ops.optimizer_step("lion_update", (params, grads, self.slots["m"]),
                                (f(c["learning_rate"]), f(c["beta_1"]), f(c["beta_2"])))


class Adadelta(Optimizer):
    ELEMENTWISE = True
    PARAMS = {"learning_rate": _rate(0.001), "rho": _beta(0.95), "epsilon": EPSILON, "weight_decay": WEIGHT_DECAY,
              **CLIPPING}
    SLOTS = ("accumulated_grad", "accumulated_delta_var")

    def apply(self, params, grads):
        c, f, s = self.config, self.scalar, self.slots
        self.ops.optimizer_step("adadelta_update", (params, grads, s["accumulated_grad"], s["accumulated_delta_var"]),
                                (f(c["learning_rate"]), f(c["rho"]), f(c["epsilon"])))


class Ftrl(Optimizer):
    ELEMENTWISE = True
    PARAMS = {"learning_rate": _rate(0.001),
              "learning_rate_power": Param("float", -0.5, max=0.0),
              "initial_accumulator_value": Param("float", 0.1, min=0.0),
              "l1_regularization_strength": Param("float", 0.0, min=0.0),
              "l2_regularization_strength": Param("float", 0.0, min=0.0),
              "l2_shrinkage_regularization_strength": Param("float", 0.0, min=0.0),
              "beta": Param("float", 0.0, min=0.0),
              "weight_decay": WEIGHT_DECAY, **CLIPPING}
    SLOTS = ("accumulator", "linear")

    def slot_start(self, name):
        return self.config["initial_accumulator_value"] if name == "accumulator" else 0.0

    def apply(self, params, grads):
        c, f, s = self.config, self.scalar, self.slots
        lr = c["learning_rate"]
        l2 = c["l2_regularization_strength"] + c["beta"] / (2.0 * lr)  # Keras folds beta into the L2 term
        self.ops.optimizer_step("ftrl_update", (params, grads, s["accumulator"], s["linear"]),
                                (f(lr), f(c["learning_rate_power"]), f(c["l1_regularization_strength"]), f(l2),
                                 f(c["l2_shrinkage_regularization_strength"])))


class Adafactor(Optimizer):
    """Keras' Adafactor: second moments factored into row and column averages for weights of rank 2 and
    more (kept in the first entries of each weight's place in the slots ``row_stats`` and ``col_stats``),
    a full one for the others; the step scaled by the weights' RMS and clipped by the update's RMS.
    ``relative_step`` is taken as Keras takes it (its rate is min(learning_rate, 1/sqrt(step)) either way)."""

    PARAMS = {"learning_rate": _rate(0.001), "beta_2_decay": Param("float", -0.8, max=0.0),
              "epsilon_1": Param("float", 1e-30, min=0.0), "epsilon_2": Param("float", 1e-3, min=0.0),
              "clip_threshold": Param("float", 1.0, min=0.0, exclusive_min=True),
              "relative_step": Param("bool", True), "weight_decay": WEIGHT_DECAY, **CLIPPING}
    SLOTS = ("velocity", "row_stats", "col_stats")

    def apply(self, params, grads):
        c, f, t, s = self.config, self.scalar, self.iterations, self.slots
        rho = min(c["learning_rate"], 1 / math.sqrt(t))
        beta_2 = 1 - t ** c["beta_2_decay"]
        scalars = (f(rho), f(beta_2), f(c["epsilon_1"]), f(c["epsilon_2"]), f(c["clip_threshold"]))
        for start, shape in self.weights:
            end = start + math.prod(shape)
            lead, rows, cols = (math.prod(shape[:-2]), shape[-2], shape[-1]) if len(shape) >= 2 else (1, 0, 0)
            self.ops.adafactor_update(params[start:end], grads[start:end], s["velocity"][start:end],
                                      s["row_stats"][start:end], s["col_stats"][start:end], lead, rows, cols,
                                      *scalars)
