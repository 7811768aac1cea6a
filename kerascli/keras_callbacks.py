"""Keras' EarlyStopping and ReduceLROnPlateau for the ``callbacks:`` section, with Keras 3's arguments,
defaults and rules. They are written on the same public hooks as a plugin's callback (kerascli.api.Callback)
and keep their counters in checkpoints, so a resumed run stops or lowers the rate where it would have."""

from __future__ import annotations

from kerascli.api import Callback
from kerascli.callbacks import resolve_mode
from kerascli.config.params import Param

MODE = Param("str", "auto", choices=("auto", "min", "max"), doc="auto: max for accuracies, min otherwise")


class _Monitor(Callback):
    """Keras' MonitorCallback: an improvement is beating the best by more than min_delta."""

    def on_train_begin(self, logs=None):
        self.mode = resolve_mode(self.config["monitor"], self.config["mode"])
        self.best = None
        self.wait = 0

    def improved(self, value: float, reference) -> bool:
        if reference is None:
            return True
        delta = abs(self.config["min_delta"])
        return value + delta < reference if self.mode == "min" else value - delta > reference

    def current(self, logs):
        return (logs or {}).get(self.config["monitor"])


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (counted from ``start_from_epoch``;
    with ``baseline``, improvements must also beat it). The best epoch's weights are always in
    checkpoints/best.npz, which the run's results, evaluate and predict use; ``restore_best_weights``
    insists that best.npz is chosen by this callback's monitor (the config check enforces it)."""

    PARAMS = {
        "monitor": Param("str", "val_loss"),
        "min_delta": Param("float", 0.0),
        "patience": Param("int", 0, min=0),
        "mode": MODE,
        "baseline": Param("float", None, nullable=True),
        "start_from_epoch": Param("int", 0, min=0),
        "restore_best_weights": Param("bool", False),
    }

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.stopped_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        value, c = self.current(logs), self.config
        keras_epoch = epoch - 1  # Keras counts epochs from 0; kerascli's hooks from 1
        if value is None or keras_epoch < c["start_from_epoch"]:
            return
        self.wait += 1
        if self.improved(value, self.best):
            self.best = value
            if c["baseline"] is None or self.improved(value, c["baseline"]):
                self.wait = 0
            return
        if self.wait >= c["patience"] and keras_epoch > 0:
            self.stopped_epoch = epoch
            self.stop_training = True

    def get_state(self):
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def set_state(self, state):
        self.best, self.wait, self.stopped_epoch = state["best"], state["wait"], state["stopped_epoch"]


class LearningRateScheduler(Callback):
    """At the start of each epoch, set the learning rate to ``schedule`` (a learning-rate schedule, as in
    compile.optimizer.learning_rate) taken at the epoch's index, counted from 0 as Keras does:
    ``{type: PiecewiseConstantDecay, boundaries: [9, 19], values: [0.1, 0.01, 0.001]}`` gives 0.1 for
    epochs 1-10. Needs a constant learning_rate in the optimizer, as ReduceLROnPlateau."""

    PARAMS = {"schedule": Param("schedule")}

    def on_train_begin(self, logs=None):
        from kerascli.registry import SCHEDULES

        config = self.config["schedule"]
        self.schedule = SCHEDULES.get(config["type"])({k: v for k, v in config.items() if k != "type"})

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.set_learning_rate(self.schedule(epoch - 1))


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` (not below ``min_lr``) when ``monitor`` has not improved
    for ``patience`` epochs, then wait ``cooldown`` epochs before counting again. Needs a constant
    learning_rate (a schedule already decides it, as in Keras)."""

    PARAMS = {
        "monitor": Param("str", "val_loss"),
        "factor": Param("float", 0.1, min=0.0, exclusive_min=True, max=0.999999, doc="< 1"),
        "patience": Param("int", 10, min=0),
        "mode": MODE,
        "min_delta": Param("float", 1e-4),
        "cooldown": Param("int", 0, min=0),
        "min_lr": Param("float", 0.0, min=0.0),
    }

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        value, c = self.current(logs), self.config
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.improved(value, self.best):
            self.best, self.wait = value, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= c["patience"]:
                optimizer = self.model.optimizer
                old = optimizer.learning_rate
                if old > c["min_lr"]:
                    optimizer.set_learning_rate(max(old * c["factor"], c["min_lr"]))
                    self.cooldown_counter, self.wait = c["cooldown"], 0

    def get_state(self):
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def set_state(self, state):
        self.best, self.wait, self.cooldown_counter = state["best"], state["wait"], state["cooldown_counter"]
