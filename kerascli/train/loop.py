"""fit / evaluate / predict over a Model, a Loss, metrics and an Optimizer.

The loop emits events to callbacks (progress, metrics file, checkpoints) and
prints nothing itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np

from kerascli.data.pipeline import Split
from kerascli.errors import KerascliError


class TrainingDiverged(KerascliError):
    pass


class Callback:
    """Training events. A callback with a ``state_key`` has its state saved in checkpoints."""

    state_key: str | None = None

    def get_state(self):
        return None

    def set_state(self, state) -> None: ...

    def on_train_begin(self, trainer: "Trainer") -> None: ...
    def on_epoch_begin(self, epoch: int, steps: int) -> None: ...
    def on_batch_end(self, step: int, logs: dict) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_train_end(self, logs: dict) -> None: ...


def batch_length(x) -> int:
    """The number of samples in a batch: an array, or a dict of arrays by input name."""
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


class Totals:
    """Sample-weighted sums of loss and metrics over an epoch or an evaluation.

    A value may be a number or one still on a GPU (kerascli.ops.cuda.algorithms.DeviceSum): those are added
    up on the device and copied to the host only when the sums are read (``means``), not once per batch.
    """

    def __init__(self, names: list[str], results: dict | None = None):
        self.sums = {name: 0.0 for name in names}
        self.count = 0
        self._index = {name: i for i, name in enumerate(names)}
        self._device = None  # (accumulator, reader) once a device value arrived
        # metrics that are not means over samples (precision, AUC): vectors of counts summed over batches, and
        # the function of those sums that gives their value
        self.results = dict(results or {})
        self.vectors: dict[str, np.ndarray] = {}

    def add(self, name: str, total, count: int, weight: float = 1.0) -> None:
        """Add ``weight * total`` to ``name``; samples are counted where ``name`` is "loss" and ``count``."""
        if name in self.results:
            self.vectors[name] = self.vectors.get(name, 0.0) + np.asarray(total, np.float64)
        elif isinstance(total, (int, float, np.number)):
            self.sums[name] += weight * float(total)
        else:
            if self._device is None:
                self._device = (total.accumulator(len(self.sums)), total.read)
            (total.scaled(weight) if weight != 1.0 else total).add_to(self._device[0], self._index[name])
        if name == "loss":
            self.count += count

    def flush(self) -> None:
        if self._device is not None:
            acc, read = self._device
            for name, value in zip(self.sums, read(acc)):
                self.sums[name] += value

    def means(self, prefix: str = "") -> dict[str, float]:
        self.flush()
        return {prefix + k: (self.results[k](self.vectors[k]) if k in self.vectors else 0.0) if k in self.results
                else v / max(self.count, 1) for k, v in self.sums.items()}

    def logs(self) -> "LazyLogs":
        """The means as a mapping that reads them only when looked at (a progress bar redraws at most a few
        times a second; a GPU's sums are copied to the host only then)."""
        return LazyLogs(self)

    def to_dict(self) -> dict:
        self.flush()
        return {"sums": dict(self.sums), "count": self.count,
                "vectors": {k: v.tolist() for k, v in self.vectors.items()}}

    @classmethod
    def from_dict(cls, data: dict, results: dict | None = None) -> "Totals":
        totals = cls(list(data["sums"]), results)
        totals.sums.update(data["sums"])
        totals.count = data["count"]
        totals.vectors = {k: np.asarray(v, np.float64) for k, v in data.get("vectors", {}).items()}
        return totals


class LazyLogs(Mapping):
    def __init__(self, totals: Totals):
        self._totals, self._means = totals, None

    def _read(self) -> dict:
        if self._means is None:
            self._means = self._totals.means()
        return self._means

    def __getitem__(self, key):
        return self._read()[key]

    def __iter__(self):
        return iter(self._read())

    def __len__(self):
        return len(self._totals.sums)


class Trainer:
    def __init__(self, model, objective, optimizer):
        self.model = model
        self.objective = objective  # the outputs' losses, their weights and metrics
        first = objective.outputs[0]
        self.loss, self.fused = objective.losses[first], objective.fused[first]  # the (first) output's
        self.optimizer = optimizer
        self.regularized = model.has_regularization  # regularizers add to the loss (kerascli/regularizers.py)
        self.stop_training = False
        # position: a checkpoint taken anywhere restores exactly this
        self.epoch = 0  # epochs completed
        self.step_in_epoch = 0  # batches of the next epoch already trained
        self.global_step = 0
        self.totals: Totals | None = None  # running sums of the epoch in progress
        self.callbacks: list[Callback] = []
        self.threads = 0  # thread count in use, recorded so a deterministic resume can insist on it
        # Called after each backward pass, before the optimizer step, with the flat gradient buffer and the
        # non-trainable state buffer (BatchNormalization statistics): the seam where data-parallel training
        # averages gradients and synchronises statistics across processes. A hook changes them in place.
        self.gradient_hooks: list = []
        # data-parallel training over MPI (kerascli.train.distributed.DataParallel): the step of one rank
        self.parallel = None

    def snapshot(self) -> dict:
        """The training position and every stateful callback's state, as JSON-able data."""
        state = {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "threads": self.threads,
            "totals": self.totals.to_dict() if self.totals is not None and self.step_in_epoch else None,
            "callbacks": {},
        }
        for cb in self.callbacks:
            if cb.state_key:
                state["callbacks"][cb.state_key] = cb.get_state()
        return state

    def restore(self, state: dict, callbacks: list[Callback]) -> None:
        self.epoch = state["epoch"]
        self.step_in_epoch = state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.totals = Totals.from_dict(state["totals"], self.objective.results) if state.get("totals") else None
        for cb in callbacks:
            if cb.state_key and cb.state_key in state.get("callbacks", {}):
                cb.set_state(state["callbacks"][cb.state_key])

    @property
    def ops(self):
        return self.model.ops

    def train_step(self, x, t, totals: Totals, w=None):
        """One optimizer step on a batch (arrays, or dicts by input and output name; ``w`` its sample
        weights, or None); returns its mean loss, or None where the loss stays on a GPU until ``totals`` are
        read."""
        if self.parallel is not None:
            return self.parallel.step(self, x, t, totals, w)
        n = batch_length(x)
        out = self.model.forward(x, training=True)
        total, pred = self.objective.forward(self.ops, out, t, totals, training=True, weights=w)
        self.model.backward(self.objective.backward(self.ops, out, pred, t, 1.0 / n))
        penalty = 0.0
        if self.regularized:  # the weights' penalties (on the weights this batch ran with) and the outputs'
            penalty = self.model.weight_penalty() + self.model.activity_penalty
            self.model.add_penalty_gradients()
            self._add_penalty(totals, penalty, n)
        for hook in self.gradient_hooks:
            hook(self.model.grad_buffer, self.model.state_buffer)
        self.optimizer.step(self.model.param_buffer, self.model.grad_buffer)
        self.model.apply_constraints()
        return total / n + penalty if isinstance(total, float) else None

    @staticmethod
    def _add_penalty(totals: Totals, penalty: float, n: int) -> None:
        """Regularization is part of the loss, as in Keras (``loss`` includes it), and has its own column."""
        totals.add("regularization_loss", penalty * n, 0)
        totals.add("loss", penalty * n, 0)

    def evaluate(self, split: Split, batch_size: int, prefix: str = "") -> dict[str, float]:
        if getattr(split, "augmented", False):  # evaluation reads the training images untransformed
            split = split.for_evaluation()
        totals = Totals(self.objective.names, self.objective.results)
        weight_penalty = self.model.weight_penalty() if self.regularized else 0.0
        for x, t, w in self.ops.batches(split, self.model.inference_batch(batch_size)):
            self.objective.forward(self.ops, self.model.forward(x, training=False), t, totals, weights=w)
            if self.regularized:
                self._add_penalty(totals, weight_penalty + self.model.activity_penalty, batch_length(x))
        if self.parallel is not None:  # this rank's part of the split: the sums over all ranks
            self.parallel.reduce(totals)
        return totals.means(prefix)

    def predict(self, x, batch_size: int):
        """Predictions for ``x`` (an array, or a dict by input name): an array, or a dict by output name."""
        step = self.model.inference_batch(batch_size)
        n = batch_length(x)
        parts = []
        for i in range(0, n, step):
            up = self.ops.to_device
            batch = {k: up(v[i:i + step]) for k, v in x.items()} if isinstance(x, dict) else up(x[i:i + step])
            out = self.model.predict_batch(batch)
            # host copies: a layer may return a buffer it reuses on the next batch
            down = self.ops.to_host
            parts.append({k: down(v) for k, v in out.items()} if isinstance(out, dict) else down(out))
        if len(self.model.outputs) == 1:
            return np.concatenate(parts) if parts else np.zeros((0,) + self.model.output_shape, self.model.dtype)
        return {o: np.concatenate([p[o] for p in parts]) if parts else
                np.zeros((0,) + self.model.output_shapes[o], self.model.dtype) for o in self.model.outputs}

    def stream(self, train: Split, batch_size: int, seed: int, shuffle: bool, steps: int):
        """With steps_per_epoch (Keras' rule): the next ``steps`` batches of a stream of passes over the
        data, each pass in its own seeded order, a new pass where the last one ran out, so an epoch may end
        inside a pass or take batches from two. Where the stream stands follows from the global step."""
        per_pass = train.steps(batch_size)
        position, segments = self.global_step, []
        while steps > 0:
            data_pass, first = divmod(position, per_pass)
            count = min(steps, per_pass - first)
            segments.append((data_pass, first, count))
            position, steps = position + count, steps - count
        for data_pass, first, count in segments:
            order = train.order(seed, data_pass + 1, shuffle)
            yield from self.ops.batches(train, batch_size, train.segment(order, first, count, batch_size))

    def train_epoch(self, train: Split, batch_size: int, order: np.ndarray, epoch: int,
                    callbacks: list[Callback] = (), start_step: int = 0, batches=None) -> dict[str, float]:
        """Train on ``train`` in ``order`` from batch ``start_step`` on (or on ``batches`` where given);
        returns the epoch's means.

        Resuming mid-epoch (``start_step`` > 0) continues the running sums in ``self.totals``.
        """
        if not start_step or self.totals is None:
            self.totals = Totals(self.objective.names, self.objective.results)
        batches_left = batches if batches is not None else \
            self.ops.batches(train, batch_size, train.after(order, start_step, batch_size))
        for step, (x, t, w) in enumerate(batches_left, start=start_step + 1):
            value = self.train_step(x, t, self.totals, w)
            if value is not None and not math.isfinite(value):
                raise TrainingDiverged(
                    f"loss became {value} at epoch {epoch}, step {step} (global step {self.global_step + 1}); "
                    "try a lower learning rate (earlier checkpoints are intact)"
                )
            self.step_in_epoch = step
            self.global_step += 1
            if callbacks:
                logs = self.totals.logs()  # once per batch, shared: callbacks read it, never change it
                for cb in callbacks:
                    cb.on_batch_end(step, logs)
        logs = self.totals.means()
        if not math.isfinite(logs["loss"]):  # on a GPU the loss is looked at here, once per epoch
            raise TrainingDiverged(
                f"loss became {logs['loss']} during epoch {epoch} (by global step {self.global_step}); "
                "try a lower learning rate (earlier checkpoints are intact)"
            )
        return logs

    def fit(self, splits: dict[str, Split], epochs: int, batch_size: int, shuffle: bool, seed: int,
            callbacks: list[Callback], validation_freq: int = 1, steps_per_epoch: int | None = None,
            validation_steps: int | None = None) -> list[dict]:
        """Train from the current position (0, or where a checkpoint left off) to ``epochs``, validating
        after every ``validation_freq``-th epoch (on the first ``validation_steps`` batches where given); an
        epoch is ``steps_per_epoch`` batches where given (see ``stream``), else one pass over the data."""
        train, val = splits["train"], splits.get("val")
        if val is not None and validation_steps:
            val = val.head(validation_steps, batch_size)
        if self.parallel is not None:  # each rank trains and validates on its part of every batch
            train = self.parallel.world.shard(train, training=True)
            val = None if val is None else self.parallel.world.shard(val, training=False)
        steps = steps_per_epoch or train.steps(batch_size)
        history: list[dict] = []
        self.callbacks = list(callbacks)
        for cb in callbacks:
            cb.on_train_begin(self)
        for epoch in range(self.epoch + 1, epochs + 1):
            for cb in callbacks:
                cb.on_epoch_begin(epoch, steps)
            started = time.perf_counter()
            order = train.order(seed, epoch, shuffle)
            streamed = self.stream(train, batch_size, seed, shuffle, steps - self.step_in_epoch) \
                if steps_per_epoch else None
            logs = self.train_epoch(train, batch_size, order, epoch, callbacks, start_step=self.step_in_epoch,
                                    batches=streamed)
            train.end_epoch()
            if val is not None and epoch % validation_freq == 0:
                logs.update(self.evaluate(val, batch_size, prefix="val_"))
            logs["lr"] = self.optimizer.learning_rate
            logs["seconds"] = time.perf_counter() - started
            self.epoch, self.step_in_epoch, self.totals = epoch, 0, None
            history.append({"epoch": epoch, **logs})
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end(history[-1] if history else {})
        return history
