"""The ``compile`` section (optimizer with its schedule, each output's loss with its arguments, loss weights,
metrics with theirs) and ``train.class_weight``, which depends on it: resolved with every default filled."""

from __future__ import annotations

from typing import Any

from kerascli.config.params import Checker, Param
from kerascli.registry import LOSSES, METRICS, OPTIMIZERS, SCHEDULES

COMPILE_KEYS = ["optimizer", "loss", "loss_weights", "metrics"]


def _resolve_compile(check: Checker, raw: Any, outputs: list[str]) -> dict:
    """The optimizer, and each output's loss, loss weight and metrics. One output: ``loss`` a name,
    ``metrics`` a list, ``loss_weights`` null. Several: each may be one value for all outputs, a list in
    ``model.outputs`` order, or a mapping by output name; resolved as mappings by output name."""
    raw = check.mapping(raw, ("compile",))
    check.unknown_keys(raw, COMPILE_KEYS, ("compile",))
    if "loss" not in raw:
        raise check.error(("compile",), f"missing required key 'loss' (valid: {', '.join(LOSSES.names())})")
    opt = raw.get("optimizer", "adam")
    path = ("compile", "optimizer")
    if isinstance(opt, str):
        opt = {"type": opt}
    opt = check.mapping(opt, path, "an optimizer name or a mapping with 'type'")
    if "type" not in opt:
        raise check.error(path, f"missing required key 'type' (valid: {', '.join(OPTIMIZERS.names())})")
    opt_type = check.value(opt["type"], Param("str", choices=OPTIMIZERS), path + ("type",))
    if "decay" in opt and "decay" not in OPTIMIZERS.get(opt_type).PARAMS:
        raise check.error(path + ("decay",), "Keras 3 optimizers have no 'decay'; the same decay is "
                          "learning_rate: {type: InverseTimeDecay, initial_learning_rate: LR, decay_steps: 1, "
                          "decay_rate: DECAY}")
    resolved_opt = {"type": opt_type}
    schedule = opt.get("learning_rate") if isinstance(opt.get("learning_rate"), dict) else None
    plain = {k: v for k, v in opt.items() if not (k == "learning_rate" and schedule is not None)}
    resolved_opt.update(check.params(plain, OPTIMIZERS.get(opt_type).PARAMS, path, fixed=("type",)))
    if schedule is not None:
        resolved_opt["learning_rate"] = _resolve_schedule(check, schedule, path + ("learning_rate",))
    clipping = [k for k in ("clipnorm", "clipvalue", "global_clipnorm") if resolved_opt.get(k) is not None]
    if len(clipping) > 1:
        raise check.error(path + (clipping[1],), f"set one of clipnorm, clipvalue and global_clipnorm, not "
                          f"{' and '.join(clipping)} (as in Keras)")

    metrics_param = Param("str_list", [], choices=METRICS)
    weight_param = Param("float", 1.0, min=0.0)
    metrics_resolve = _resolve_metrics
    if len(outputs) == 1:
        if "loss_weights" in raw and raw["loss_weights"] is not None:
            raise check.error(("compile", "loss_weights"), "loss_weights weigh the losses of several outputs; "
                                                           "this model has one")
        loss = raw["loss"]
        if isinstance(loss, dict) and list(loss) == outputs:  # {output: loss} for the one output
            loss = loss[outputs[0]]
        metrics = raw.get("metrics", [])
        if isinstance(metrics, dict) and list(metrics) == outputs:
            metrics = metrics[outputs[0]]
        return {"optimizer": resolved_opt, "loss": _resolve_loss(check, loss, ("compile", "loss")),
                "loss_weights": None, "metrics": metrics_resolve(check, metrics, ("compile", "metrics"))}
    loss = raw["loss"]
    if isinstance(loss, dict) and "type" in loss and "type" not in outputs:
        loss = _resolve_loss(check, loss, ("compile", "loss"))  # one loss, with arguments, for every output
        per_output_loss = {o: loss for o in outputs}
    else:
        per_output_loss = _per_output(check, loss, outputs, LOSS_PARAM, "loss", scalar=(str, dict),
                                      resolve=_resolve_loss)
    return {"optimizer": resolved_opt,
            "loss": per_output_loss,
            "loss_weights": _per_output(check, raw.get("loss_weights"), outputs, weight_param, "loss_weights",
                                        scalar=(int, float)),
            "metrics": _per_output(check, raw.get("metrics", []), outputs, metrics_param, "metrics", scalar=list,
                                   resolve=metrics_resolve)}


def _resolve_schedule(check: Checker, raw: dict, path: tuple) -> dict:
    """``learning_rate: {type: <schedule>, ...}``: a Keras learning-rate schedule and its arguments."""
    if "type" not in raw:
        raise check.error(path, f"missing required key 'type' (a schedule: {', '.join(SCHEDULES.names())})")
    kind = check.value(raw["type"], Param("str", choices=SCHEDULES), path + ("type",))
    cls = SCHEDULES.get(kind)
    resolved = {"type": kind, **check.params(raw, cls.PARAMS, path, fixed=("type",))}
    problem = cls.check(resolved)
    if problem:
        key = problem.split(":")[0]
        raise check.error(path + ((key,) if key in cls.PARAMS else ()), problem)
    return resolved


LOSS_PARAM = Param("str", choices=LOSSES)
METRIC_PARAM = Param("str", choices=METRICS)


def _resolve_metrics(check: Checker, raw: Any, path: tuple) -> list:
    """A list of metrics: names, or ``{type: name, name: logged name, argument: value, ...}``. Resolved: the
    name where a metric has no arguments and no name of its own, else the mapping with every argument."""
    if isinstance(raw, (str, dict)):
        raw = [raw]
    if not isinstance(raw, list):
        raise check.error(path, f"expected a list of metrics, got {type(raw).__name__}")
    out, seen = [], {}
    for i, item in enumerate(raw):
        where = path + (i,)
        if isinstance(item, dict):
            if "type" not in item:
                raise check.error(where, f"missing required key 'type' (a metric: {', '.join(METRICS.names())})")
            kind = check.value(item["type"], METRIC_PARAM, where + ("type",))
            given = item
        else:
            kind, given = check.value(item, METRIC_PARAM, where), {}
        cls = METRICS.get(kind)
        params = {**getattr(cls, "PARAMS", {}), "name": Param("str", None, nullable=True,
                                                             doc="the name it is logged under")}
        resolved = {"type": kind, **check.params(given, params, where, fixed=("type",))}
        if resolved["name"] is None:
            del resolved["name"]
        problem = cls.check(resolved) if hasattr(cls, "check") else None
        if problem:
            key = problem.split(":")[0]
            raise check.error(where + ((key,) if key in params else ()), problem)
        if len(resolved) == 1:  # no arguments and no name of its own: the name alone
            resolved = kind
        logged = resolved if isinstance(resolved, str) else resolved.get("name") or resolved["type"]
        if logged in seen:
            raise check.error(where, f"two metrics would be logged as {logged!r} (items {seen[logged]} and {i}); "
                                     "give one a name: {type: ..., name: ...}")
        seen[logged] = i
        out.append(resolved)
    return out


def loss_type(loss) -> str:
    """The registered name of a resolved loss: a name, or a mapping with 'type' and its arguments."""
    return loss["type"] if isinstance(loss, dict) else loss


def _resolve_loss(check: Checker, raw: Any, path: tuple):
    """A loss name, or ``{type: name, argument: value, ...}`` (Keras' constructor arguments). Resolved: the
    name where the loss takes no arguments, else the mapping with every argument."""
    if isinstance(raw, dict):
        if "type" not in raw:
            raise check.error(path, f"missing required key 'type' (a loss: {', '.join(LOSSES.names())})")
        kind = check.value(raw["type"], LOSS_PARAM, path + ("type",))
        given = raw
    else:
        kind, given = check.value(raw, LOSS_PARAM, path), {}
    cls = LOSSES.get(kind)
    params = getattr(cls, "PARAMS", {})
    if not params:
        if len(given) > 1:
            extra = next(k for k in given if k != "type")
            raise check.error(path + (extra,), f"loss {kind!r} takes no arguments")
        return kind
    resolved = {"type": kind, **check.params(given, params, path, fixed=("type",))}
    problem = cls.check(resolved) if hasattr(cls, "check") else None
    if problem:
        key = problem.split(":")[0]
        raise check.error(path + ((key,) if key in params else ()), problem)
    return resolved


def _per_output(check: Checker, raw: Any, outputs: list[str], param: Param, key: str, scalar,
                resolve=None) -> dict:
    """One value for every output, a list in outputs order, or a mapping by output name -> a mapping.
    ``resolve(check, value, path)`` resolves one value (default: ``param`` checks it)."""
    path = ("compile", key)
    if raw is None:
        raw = param.default
    if resolve is None:
        def resolve(check, value, where):
            return check.value(value, param, where)
    if isinstance(raw, dict):
        unknown = [k for k in raw if k not in outputs]
        if unknown:
            raise check.error(path + (unknown[0],), f"{unknown[0]!r} is not an output of this model (outputs: "
                                                    f"{', '.join(outputs)})")
        missing = [o for o in outputs if o not in raw]
        if missing and param.required:
            raise check.error(path, f"no {key} for output {missing[0]!r}")
        return {o: resolve(check, raw.get(o, param.default), path + (o,)) for o in outputs}
    if isinstance(raw, list) and not (scalar is list and not (raw and all(isinstance(v, list) for v in raw))):
        if len(raw) != len(outputs):
            raise check.error(path, f"a list gives one {key} per output in order ({len(outputs)}: "
                                    f"{', '.join(outputs)}), got {len(raw)}")
        return {o: resolve(check, v, path + (i,)) for i, (o, v) in enumerate(zip(outputs, raw))}
    return {o: resolve(check, raw, path) for o in outputs}


def monitor_names(compile_: dict) -> set[str]:
    """What checkpoint.monitor may name: the losses and metrics a run logs, and their val_ twins."""
    from kerascli.metrics import metric_name

    names = {"loss"}
    metrics = compile_["metrics"]
    logged = [m for ms in (metrics.values() if isinstance(metrics, dict) else [metrics]) for m in ms
              if metric_name(m) != "classification_report"]  # (a report, no column)
    if isinstance(metrics, dict):
        names |= {f"{o}_loss" for o in metrics} | {f"{o}_{metric_name(m)}" for o, ms in metrics.items() for m in ms
                                                   if m in logged}
    else:
        names |= {metric_name(m) for m in logged}
    return names | {"val_" + n for n in names}




def _resolve_class_weight(check: Checker, raw: Any, compile_: dict, outputs: list[str]):
    """``train.class_weight``: null, ``balanced`` (n / (classes * count) over the training split, as
    scikit-learn computes it), or a weight for every class id ({0: 1.0, 1: 5.0}), as Keras' fit takes;
    resolved as the list of weights of classes 0, 1, ..."""
    path = ("train", "class_weight")
    if raw is None:
        return None
    if len(outputs) > 1:
        raise check.error(path, "class_weight weighs the classes of one output; this model has several (as in "
                                "Keras)")
    loss = LOSSES.get(loss_type(compile_["loss"]))
    if not getattr(loss, "classification", False):
        raise check.error(path, f"class_weight weighs classes, but the loss {loss_type(compile_['loss'])!r} is not a "
                                "classification loss")
    if raw == "balanced":
        return raw
    if isinstance(raw, list) and raw:  # the resolved form: the weights of classes 0, 1, ...
        raw = dict(enumerate(raw))
    if not isinstance(raw, dict) or not raw:
        raise check.error(path, f"expected 'balanced' or a mapping of class id to weight, got {raw!r}")
    weights = {}
    for key, value in raw.items():
        if isinstance(key, bool) or not isinstance(key, int) or key < 0:
            raise check.error(path + (key,), f"class ids are integers from 0, got {key!r}")
        weights[key] = check.value(value, Param("float", min=0.0), path + (key,))
    missing = [c for c in range(max(weights) + 1) if c not in weights]
    if missing:
        raise check.error(path, f"no weight for class {missing[0]} (give one for every class from 0, as Keras "
                                "requires)")
    return [weights[k] for k in range(len(weights))]  # a list: config.yaml and checkpoints keep it as is
