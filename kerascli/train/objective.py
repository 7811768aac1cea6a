"""What training minimises and reports: each output's loss, weighted and summed, and each output's metrics.

With one output the logged names are Keras' plain ones (``loss``, ``accuracy``).
With several, as in Keras: ``loss`` is the weighted sum, ``<output>_loss`` each
output's own, and metrics are ``<output>_<metric>``.
"""

from __future__ import annotations

from kerascli.config.compile import loss_type
from kerascli.errors import ConfigError
from kerascli.metrics import make_metric, metric_name
from kerascli.ops.contract import ACTIVATION_TABLE, LINEAR
from kerascli.registry import LOSSES
from kerascli.reports import REPORT


def check_logits(model, output: str, loss) -> None:
    """A loss given ``from_logits: true`` needs an output without an activation of its own (Keras would
    apply softmax or sigmoid twice)."""
    last = next(n.layer for n in model.nodes if n.layer.name == output)
    act = getattr(last, "activation", LINEAR)
    if act != LINEAR:
        name = next(a.name for a in ACTIVATION_TABLE if a.code == act)
        where = f"output {output!r}" if len(model.outputs) > 1 else "the model's output"
        raise ConfigError(f"{loss.name} has from_logits: true, but {where} (layer {last.name!r}) ends in {name}; "
                          f"give that layer activation: linear, or set from_logits: false", key="compile.loss")


class Objective:
    def __init__(self, model, losses: dict[str, str], weights: dict[str, float], metrics: dict[str, list[str]]):
        self.outputs = list(model.outputs)
        self.multi = len(self.outputs) > 1
        self.losses = {o: LOSSES.get(loss_type(losses[o]))(losses[o] if isinstance(losses[o], dict) else None)
                       for o in self.outputs}
        self.weights = {o: float(weights.get(o, 1.0)) for o in self.outputs}
        for o, loss in self.losses.items():
            if loss.from_logits:
                check_logits(model, o, loss)
        # where an output ends in the activation its loss pairs with (or gives logits, with from_logits), the
        # loss takes pre-activation values
        self.fused = {o: loss.fuses is not None and (loss.from_logits or model.fuse_output_activation(loss.fuses, o))
                      for o, loss in self.losses.items()}
        self.metrics = {}
        for o in self.outputs:
            self.metrics[o] = []
            for spec in metrics.get(o, []):
                if metric_name(spec) == REPORT:  # written at the end of training (kerascli/reports.py)
                    if not self.losses[o].classification:
                        raise ConfigError(f"classification_report needs a classification loss; "
                                          f"{self.losses[o].name} is not one", key="compile.metrics")
                    continue
                metric = make_metric(spec, self.losses[o].name, model.output_shapes[o][0])
                metric.name = f"{o}_{metric.name}" if self.multi else metric.name
                self.metrics[o].append(metric)
        # metrics whose epoch value is a function of summed counts, not a mean over samples
        self.results = {m.name: m.result for ms in self.metrics.values() for m in ms if m.counts}
        self.class_table = None  # train.class_weight: the weight of each class id (an array of the Ops)
        self._weights = None  # the weights of the batch being trained on
        self.names = ["loss"] + ([f"{o}_loss" for o in self.outputs] if self.multi else []) + [
            m.name for o in self.outputs for m in self.metrics[o]]
        if model.has_regularization:  # its part of ``loss``, logged on its own (kerascli/train/loop.py)
            self.names.append("regularization_loss")

    def targets(self, y, units: dict[str, int], dtype):
        """Dataset labels as each output's loss takes them (a dict by output name when there are several)."""
        if not self.multi:
            (o,) = self.outputs
            return self.losses[o].targets(y, units[o], dtype)
        return {o: self.losses[o].targets(y[o], units[o], dtype) for o in self.outputs}

    def sample_weights(self, ops, t, weights, training: bool):
        """Each sample's loss weight for this batch (None for all ones): the dataset's sample weights, times
        the class weights in training (as Keras' fit: evaluation takes only the sample weights)."""
        if training and self.class_table is not None:
            by_class = ops.class_weights(t, self.class_table)
            return by_class if weights is None else ops.scale_rows(by_class, weights)
        return weights

    def forward(self, ops, out, t, totals, training: bool = False, weights=None) -> tuple[object, object]:
        """Add the batch's losses and metrics to ``totals``; returns (weighted loss summed over the batch:
        a float, or a value a GPU keeps until ``totals`` are read; predictions for backward). Sample and, in
        training, class weights weigh each sample's loss (as Keras: the sum over the batch size); metrics
        are unweighted."""
        w = self.sample_weights(ops, t if not self.multi else None, weights, training)
        self._weights = w if training else None
        if not self.multi:
            (o,) = self.outputs
            rows, pred = self.losses[o].forward(ops, out, t, self.fused[o])
            if w is not None:
                rows = ops.scale_rows(rows, w)
            total = ops.total(rows)
            totals.add("loss", total, len(rows))
            for metric in self.metrics[o]:
                totals.add(metric.name, metric.update(ops, self._seen(o, out, pred), t)[0], len(rows))
            return total, pred
        total, preds = 0.0, {}
        for i, o in enumerate(self.outputs):
            rows, preds[o] = self.losses[o].forward(ops, out[o], t[o], self.fused[o])
            if w is not None:
                rows = ops.scale_rows(rows, w)
            part = ops.total(rows)
            totals.add(f"{o}_loss", part, len(rows))
            # the weighted sum, output by output (samples counted once)
            totals.add("loss", part, len(rows) if i == 0 else 0, weight=self.weights[o])
            total = total + self.weights[o] * part if isinstance(part, float) and total is not None else None
            for metric in self.metrics[o]:
                totals.add(metric.name, metric.update(ops, self._seen(o, out[o], preds[o]), t[o])[0], len(rows))
        return total, preds

    def _seen(self, output: str, out, pred):
        """What metrics compare with the targets: the model's outputs, as in Keras (logits where the loss
        takes logits; probabilities where the loss fused the output's own activation)."""
        return out if self.losses[output].from_logits else pred

    def backward(self, ops, out, pred, t, scale: float):
        """The gradient of ``scale`` times the weighted loss with respect to each output."""
        if not self.multi:
            (o,) = self.outputs
            grad = self.losses[o].backward(ops, out, pred, t, scale, self.fused[o])
            return grad if self._weights is None else ops.scale_rows(grad, self._weights)
        grads = {o: self.losses[o].backward(ops, out[o], pred[o], t[o], scale * self.weights[o], self.fused[o])
                 for o in self.outputs}
        return grads if self._weights is None else {o: ops.scale_rows(g, self._weights) for o, g in grads.items()}

    def classification(self, output: str) -> bool:
        return self.losses[output].classification
