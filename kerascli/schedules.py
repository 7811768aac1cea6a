"""Learning-rate schedules with Keras 3's names, arguments, defaults and formulas
(keras.optimizers.schedules). A schedule maps the optimizer's step (updates done before this one, from 0)
to a learning rate; ``learning_rate: {type: CosineDecay, initial_learning_rate: 0.1, decay_steps: 1000}``
in an optimizer's config uses one."""

from __future__ import annotations

import math

from kerascli.config.params import Param


class Schedule:
    PARAMS: dict[str, Param] = {}

    def __init__(self, config: dict):
        self.config = dict(config)

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    @classmethod
    def check(cls, config: dict) -> str | None:
        """What is wrong with a resolved config beyond single values (names the key), or None."""
        return None


# the arguments of ExponentialDecay and InverseTimeDecay
TIME_DECAY_PARAMS = {
    "initial_learning_rate": Param("float", min=0.0, exclusive_min=True),
    "decay_steps": Param("int", min=1),
    "decay_rate": Param("float", min=0.0),
    "staircase": Param("bool", False),
}


class ExponentialDecay(Schedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps), the exponent floored with staircase."""

    PARAMS = TIME_DECAY_PARAMS

    def __call__(self, step):
        c = self.config
        p = step / c["decay_steps"]
        return c["initial_learning_rate"] * c["decay_rate"] ** (math.floor(p) if c["staircase"] else p)


class InverseTimeDecay(Schedule):
    """initial_learning_rate / (1 + decay_rate * step / decay_steps), floored with staircase (Keras 2's
    ``decay`` argument is decay_steps: 1, decay_rate: decay)."""

    PARAMS = TIME_DECAY_PARAMS

    def __call__(self, step):
        c = self.config
        p = step / c["decay_steps"]
        return c["initial_learning_rate"] / (1 + c["decay_rate"] * (math.floor(p) if c["staircase"] else p))


class PiecewiseConstantDecay(Schedule):
    """values[0] up to and including boundaries[0], values[i] in (boundaries[i-1], boundaries[i]], then
    values[-1]."""

    PARAMS = {"boundaries": Param("float_list"), "values": Param("float_list")}

    @classmethod
    def check(cls, config):
        if len(config["values"]) != len(config["boundaries"]) + 1:
            return (f"values: needs one more entry than boundaries ({len(config['boundaries'])} boundaries, "
                    f"{len(config['values'])} values)")
        if any(b >= a for a, b in zip(config["boundaries"][1:], config["boundaries"])):
            return "boundaries: must increase"
        if any(v <= 0 for v in config["values"]):
            return "values: learning rates must be > 0"
        return None

    def __call__(self, step):
        for boundary, value in zip(self.config["boundaries"], self.config["values"]):
            if step <= boundary:
                return value
        return self.config["values"][-1]


class PolynomialDecay(Schedule):
    """(initial - end) * (1 - step / decay_steps) ** power + end, step held at decay_steps (with cycle,
    decay_steps grows to the next multiple of itself past step)."""

    PARAMS = {
        "initial_learning_rate": Param("float", min=0.0, exclusive_min=True),
        "decay_steps": Param("int", min=1),
        "end_learning_rate": Param("float", 0.0001, min=0.0),
        "power": Param("float", 1.0),
        "cycle": Param("bool", False),
    }

    def __call__(self, step):
        c = self.config
        steps = c["decay_steps"]
        if c["cycle"]:
            steps = steps * (1 if step == 0 else math.ceil(step / steps))
        else:
            step = min(step, steps)
        end = c["end_learning_rate"]
        return (c["initial_learning_rate"] - end) * (1 - step / steps) ** c["power"] + end


class CosineDecay(Schedule):
    """Optional linear warmup from initial_learning_rate to warmup_target over warmup_steps, then a
    half cosine from there (or from initial_learning_rate) over decay_steps down to alpha times it."""

    PARAMS = {
        "initial_learning_rate": Param("float", min=0.0),
        "decay_steps": Param("int", min=1),
        "alpha": Param("float", 0.0, min=0.0, max=1.0),
        "warmup_target": Param("float", None, min=0.0, exclusive_min=True, nullable=True),
        "warmup_steps": Param("int", 0, min=0),
    }

    @classmethod
    def check(cls, config):
        if config["warmup_target"] is None and config["initial_learning_rate"] <= 0:
            return "initial_learning_rate: must be > 0 without a warmup_target"
        return None

    def _decay(self, step, start):
        c = self.config
        cosine = 0.5 * (1 + math.cos(math.pi * step / c["decay_steps"]))
        return start * ((1 - c["alpha"]) * cosine + c["alpha"])

    def __call__(self, step):
        c = self.config
        if c["warmup_target"] is None:
            return self._decay(min(step, c["decay_steps"]), c["initial_learning_rate"])
        warmup = c["warmup_steps"]
        step = min(step, c["decay_steps"] + warmup)
        if step < warmup:
            return c["initial_learning_rate"] + (c["warmup_target"] - c["initial_learning_rate"]) * step / warmup
        return self._decay(step - warmup, c["warmup_target"])


class CosineDecayRestarts(Schedule):
    """Cosine decay restarted after first_decay_steps, each period t_mul times longer and its peak m_mul
    times the last (SGDR)."""

    PARAMS = {
        "initial_learning_rate": Param("float", min=0.0, exclusive_min=True),
        "first_decay_steps": Param("int", min=1),
        "t_mul": Param("float", 2.0, min=0.0, exclusive_min=True),
        "m_mul": Param("float", 1.0, min=0.0),
        "alpha": Param("float", 0.0, min=0.0, max=1.0),
    }

    def __call__(self, step):
        c = self.config
        fraction = step / c["first_decay_steps"]
        t_mul = c["t_mul"]
        if t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            restart = math.floor(math.log(1 - fraction * (1 - t_mul)) / math.log(t_mul))
            done = (1 - t_mul ** restart) / (1 - t_mul)
            fraction = (fraction - done) / t_mul ** restart
        cosine = 0.5 * c["m_mul"] ** restart * (1 + math.cos(math.pi * fraction))
        return c["initial_learning_rate"] * ((1 - c["alpha"]) * cosine + c["alpha"])
