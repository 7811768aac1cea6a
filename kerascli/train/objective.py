"""What training minimises and reports: each output's loss, weighted and summed, and each output's metrics.

With one output the logged names are Keras' plain ones (``loss``, ``accuracy``).
With several, as in Keras: ``loss`` is the weighted sum, ``<output>_loss`` each
output's own, and metrics are ``<output>_<metric>``.
"""

from __future__ import annotations

from kerascli.metrics import make_metric
from kerascli.registry import LOSSES


class Objective:
    def __init__(self, model, losses: dict[str, str], weights: dict[str, float], metrics: dict[str, list[str]]):
        self.outputs = list(model.outputs)
        self.multi = len(self.outputs) > 1
        self.losses = {o: LOSSES.get(losses[o])() for o in self.outputs}
        self.weights = {o: float(weights.get(o, 1.0)) for o in self.outputs}
        # where an output ends in the activation its loss pairs with, the loss takes pre-activation values
        self.fused = {o: loss.fuses is not None and model.fuse_output_activation(loss.fuses, o)
                      for o, loss in self.losses.items()}
        self.metrics = {}
        for o in self.outputs:
            self.metrics[o] = []
            for name in metrics.get(o, []):
                metric = make_metric(name, self.losses[o].name, model.output_shapes[o][0])
                metric.name = f"{o}_{name}" if self.multi else name
                self.metrics[o].append(metric)
        self.names = ["loss"] + ([f"{o}_loss" for o in self.outputs] if self.multi else []) + [
            m.name for o in self.outputs for m in self.metrics[o]]

    def targets(self, y, units: dict[str, int], dtype):
        """Dataset labels as each output's loss takes them (a dict by output name when there are several)."""
        if not self.multi:
            (o,) = self.outputs
            return self.losses[o].targets(y, units[o], dtype)
        return {o: self.losses[o].targets(y[o], units[o], dtype) for o in self.outputs}

    def forward(self, ops, out, t, totals) -> tuple[object, object]:
        """Add the batch's losses and metrics to ``totals``; returns (weighted loss summed over the batch:
        a float, or a value a GPU keeps until ``totals`` are read; predictions for backward)."""
        if not self.multi:
            (o,) = self.outputs
            rows, pred = self.losses[o].forward(ops, out, t, self.fused[o])
            total = ops.total(rows)
            totals.add("loss", total, len(rows))
            for metric in self.metrics[o]:
                totals.add(metric.name, metric.update(ops, pred, t)[0], len(rows))
            return total, pred
        total, preds = 0.0, {}
        for i, o in enumerate(self.outputs):
            rows, preds[o] = self.losses[o].forward(ops, out[o], t[o], self.fused[o])
            part = ops.total(rows)
            totals.add(f"{o}_loss", part, len(rows))
            # the weighted sum, output by output (samples counted once)
            totals.add("loss", part, len(rows) if i == 0 else 0, weight=self.weights[o])
            total = total + self.weights[o] * part if isinstance(part, float) and total is not None else None
            for metric in self.metrics[o]:
                totals.add(metric.name, metric.update(ops, preds[o], t[o])[0], len(rows))
        return total, preds

    def backward(self, ops, out, pred, t, scale: float):
        """The gradient of ``scale`` times the weighted loss with respect to each output."""
        if not self.multi:
            (o,) = self.outputs
            return self.losses[o].backward(ops, out, pred, t, scale, self.fused[o])
        return {o: self.losses[o].backward(ops, out[o], pred[o], t[o], scale * self.weights[o], self.fused[o])
                for o in self.outputs}

    def classification(self, output: str) -> bool:
        return self.losses[output].classification
