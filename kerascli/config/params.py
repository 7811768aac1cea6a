"""Declared parameters: each layer, optimizer and dataset lists its arguments as ``Param``s.

The schema validates a YAML mapping against these declarations, fills every
default, and reports errors with the file line and key path of the value.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, replace
from typing import Any

from kerascli.config.loader import LoadedConfig, format_key
from kerascli.errors import ConfigError
from kerascli.registry import Registry, UnknownName

REQUIRED = object()

# Large enough for any model this tool trains, small enough to refuse absurd sizes
# (units: 10**12) before anything is allocated.
MAX_DIM = 1 << 24


@dataclass(frozen=True)
class Param:
    """One argument. kind: int, float, bool, str, pair, shape, partial_shape (a dimension, or a list of
    dimensions and nulls), floats (a number or a list of numbers, kept as given), str_list, int_list, float_list, names (one or a list),
    path, schedule (a learning-rate schedule mapping: the config schema resolves it), typed (a name from
    the ``choices`` registry, or ``{type: name, argument: value, ...}`` checked against that entry's
    PARAMS: initializers, regularizers, constraints)."""

    kind: str
    default: Any = REQUIRED
    min: float | None = None
    max: float | None = None
    choices: tuple | Registry | None = None
    nullable: bool = False
    exclusive_min: bool = False
    exclusive_max: bool = False
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


class Configured:
    """Something a config names, alone or with arguments (``{type: name, argument: value}``): PARAMS declares
    the arguments, ``config`` holds every one (defaults filled). Initializers, regularizers, constraints."""

    PARAMS: dict[str, Param] = {}

    def __init__(self, **config):
        self.config = {name: config.get(name, param.default) for name, param in self.PARAMS.items()}

    def check_shape(self, shape: tuple) -> str | None:
        """Why this cannot apply to a weight of ``shape``, or None."""
        return None


def make_configured(registry: Registry, value: Any):
    """The object a resolved 'typed' value names (a name, or a mapping with 'type' and arguments); None
    for None."""
    if value is None:
        return None
    if isinstance(value, dict):
        return registry.get(value["type"])(**{k: v for k, v in value.items() if k != "type"})
    return registry.get(value)()


def regularizer_param() -> Param:
    from kerascli.registry import REGULARIZERS

    return Param("typed", None, nullable=True, choices=REGULARIZERS)


def constraint_param() -> Param:
    from kerascli.registry import CONSTRAINTS

    return Param("typed", None, nullable=True, choices=CONSTRAINTS)


RATE = Param("float", 0.0, min=0.0, max=1.0, exclusive_max=True, doc="a fraction dropped, 0 <= rate < 1")


def kernel_and_bias_params(kernel_initializer: str = "glorot_uniform") -> dict[str, Param]:
    """A layer's kernel and bias arguments, Keras' names and defaults: initializers, regularizers,
    constraints."""
    from kerascli.registry import INITIALIZERS

    return {
        "kernel_initializer": Param("typed", kernel_initializer, choices=INITIALIZERS),
        "bias_initializer": Param("typed", "zeros", choices=INITIALIZERS),
        "kernel_regularizer": regularizer_param(),
        "bias_regularizer": regularizer_param(),
        "kernel_constraint": constraint_param(),
        "bias_constraint": constraint_param(),
    }


def common_params() -> dict[str, Param]:
    """Arguments every layer takes, as Keras' base Layer does."""
    return {
        "trainable": Param("bool", True, doc="false: weights frozen (not updated, no gradient work for them)"),
        "activity_regularizer": replace(regularizer_param(),
                                        doc="a penalty on the layer's output, divided by the batch size"),
    }


class Checker:
    """Raises ConfigError with file/line/key for the value at a key path."""

    def __init__(self, loaded: LoadedConfig):
        self.loaded = loaded

    def error(self, path: tuple, message: str) -> ConfigError:
        return ConfigError(message, key=format_key(path) or None, where=self.loaded.where(path))

    def mapping(self, value: Any, path: tuple, what: str = "a mapping") -> dict:
        if not isinstance(value, dict):
            raise self.error(path, f"expected {what}, got {_describe(value)}")
        return value

    def unknown_keys(self, mapping: dict, allowed: list[str], path: tuple) -> None:
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.error(path + (key,), f"unknown key {key!r}{hint} (valid keys: {', '.join(allowed)})")

    def params(self, mapping: dict, params: dict[str, Param], path: tuple, fixed: tuple = ()) -> dict:
        """Validate ``mapping`` against ``params``; ``fixed`` keys are checked by the caller."""
        self.unknown_keys(mapping, list(fixed) + list(params), path)
        out = {}
        for name, param in params.items():
            if name not in mapping:
                if param.required:
                    raise self.error(path, f"missing required key {name!r}")
                out[name] = param.default
                continue
            out[name] = self.value(mapping[name], param, path + (name,))
        return out

    def value(self, value: Any, param: Param, path: tuple) -> Any:
        if value is None:
            if param.nullable:
                return None
            raise self.error(path, f"a value is required ({_expect(param)})")
        kind = param.kind
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(path, f"expected an integer, got {_describe(value)}")
            self._range(value, param, path)
            return value
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.error(path, f"expected a number, got {_describe(value)}")
            value = float(value)
            if not math.isfinite(value):
                raise self.error(path, f"expected a finite number, got {value}")
            self._range(value, param, path)
            return value
        if kind in ("freq", "update_freq"):  # Keras' save_freq: "epoch", or every so many batches (update_freq:
            # also "batch", every batch)
            words = ("epoch", "batch") if kind == "update_freq" else ("epoch",)
            if value in words or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                return value
            raise self.error(path, f"expected {' or '.join(repr(w) for w in words)} or a number of batches (1 or "
                                   f"more), got {_describe(value)}")
        if kind == "bool":
            if not isinstance(value, bool):
                raise self.error(path, f"expected true or false, got {_describe(value)}")
            return value
        if kind in ("str", "path"):
            if not isinstance(value, str):
                raise self.error(path, f"expected a string, got {_describe(value)}")
            if not value and param.default != "":  # an empty default is a value the resolved config holds
                raise self.error(path, "expected a non-empty string, got ''")
            return self._choice(value, param, path)
        if kind == "typed":
            return self._typed(value, param, path)
        if kind == "names":  # one name, or a list of names (the arrays of a multi-input model)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
                return list(value)
            raise self.error(path, f"expected a name or a list of names, got {_describe(value)}")
        if kind == "int_list":  # an integer, or a list of them (Keras' axis arguments), kept as given
            items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
            if not isinstance(items, list) or not items or any(isinstance(v, bool) or not isinstance(v, int)
                                                               for v in items):
                raise self.error(path, f"expected an integer or a list of integers, got {_describe(value)}")
            return value
        if kind == "floats":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return self.value(value, Param("float"), path)
            if not isinstance(value, list) or not value:
                raise self.error(path, f"expected a number or a list of numbers, got {_describe(value)}")
            return [self.value(item, Param("float"), path + (i,)) for i, item in enumerate(value)]
        if kind == "float_list":
            if not isinstance(value, list) or not value:
                raise self.error(path, f"expected a list of numbers, got {_describe(value)}")
            return [self.value(item, Param("float"), path + (i,)) for i, item in enumerate(value)]
        if kind == "str_list":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list):
                raise self.error(path, f"expected a list of names, got {_describe(value)}")
            out = []
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    raise self.error(path + (i,), f"expected a name, got {_describe(item)}")
                out.append(self._choice(item, param, path + (i,)))
            return out
        if kind == "pair":
            items = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
            if not isinstance(items, list) or len(items) != 2:
                raise self.error(path, f"expected an integer or a list of two integers, got {_describe(value)}")
            for item in items:
                if isinstance(item, bool) or not isinstance(item, int):
                    raise self.error(path, f"expected integers, got {_describe(item)}")
                self._range(item, param, path)
            return list(items)
        if kind == "margins2d":  # Keras' 2-D padding/cropping: n, [rows, cols], or [[top, bottom], [left, right]]
            if isinstance(value, int) and not isinstance(value, bool):
                value = [value, value]
            if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                   for v in value):
                value = [[value[0], value[0]], [value[1], value[1]]]
            ok = isinstance(value, list) and len(value) == 2 and all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                            for v in p) for p in value)
            if not ok:
                raise self.error(path, "expected n, [rows, columns] or [[top, bottom], [left, right]] (integers from 0), "
                                       f"got {_describe(value)}")
            return [list(p) for p in value]
        if kind == "partial_shape":  # Keras' output_shape of EinsumDense: None where the input decides
            items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
            if not isinstance(items, list) or not items:
                raise self.error(path, f"expected a dimension or a list of dimensions and nulls, got {_describe(value)}")
            for i, item in enumerate(items):
                if item is not None and (isinstance(item, bool) or not isinstance(item, int) or
                                         not 1 <= item <= MAX_DIM):
                    raise self.error(path + (i,), f"expected a positive integer dimension or null, got {_describe(item)}")
            return list(items)
        if kind == "shape":
            if not isinstance(value, list) or not value:
                raise self.error(path, f"expected a list of positive integers, got {_describe(value)}")
            for i, item in enumerate(value):
                ok = isinstance(item, int) and not isinstance(item, bool)
                if not ok or not (1 <= item <= MAX_DIM or (param.min == -1 and item == -1)):
                    raise self.error(path + (i,), f"expected a positive integer dimension, got {_describe(item)}")
            if param.min == -1 and value.count(-1) > 1:
                raise self.error(path, "at most one dimension may be -1")
            return list(value)
        raise AssertionError(f"unknown param kind {kind}")

    def _range(self, value: float, param: Param, path: tuple) -> None:
        lo, hi = param.min, param.max
        if param.kind in ("int", "pair") and hi is None:
            hi = MAX_DIM
        if lo is not None and (value < lo or (param.exclusive_min and value == lo)):
            op = ">" if param.exclusive_min else ">="
            raise self.error(path, f"must be {op} {lo}, got {value}")
        if hi is not None and (value > hi or (param.exclusive_max and value == hi)):
            op = "<" if param.exclusive_max else "<="
            raise self.error(path, f"must be {op} {hi}, got {value}")

    def _typed(self, value: Any, param: Param, path: tuple) -> Any:
        """A registered name as it is (its arguments' defaults implied), or a mapping resolved to the
        canonical name and every argument."""
        what = param.choices.kind
        what = ("an " if what[0] in "aeiou" else "a ") + what
        if isinstance(value, str) and value:
            return self._choice(value, param, path)
        if not isinstance(value, dict):
            raise self.error(path, f"expected the name of {what} or a mapping with 'type', got {_describe(value)}")
        if "type" not in value:
            raise self.error(path, f"missing required key 'type' ({what}: {', '.join(param.choices.names())})")
        if not isinstance(value["type"], str) or not value["type"]:
            raise self.error(path + ("type",), f"expected the name of {what}, got {_describe(value['type'])}")
        name = self._choice(value["type"], param, path + ("type",))
        entry = param.choices.get(name)
        resolved = {"type": name, **self.params(value, getattr(entry, "PARAMS", {}), path, fixed=("type",))}
        problem = entry.check(resolved) if hasattr(entry, "check") else None
        if problem:
            raise self.error(path, problem)
        return resolved

    def _choice(self, value: str, param: Param, path: tuple) -> str:
        choices = param.choices
        if choices is None:
            return value
        if isinstance(choices, Registry):
            try:
                return choices.canonical(value)
            except UnknownName as exc:
                raise self.error(path, str(exc)) from None
        if value not in choices:
            close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise self.error(path, f"invalid value {value!r}{hint} (valid: {', '.join(choices)})")
        return value


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _expect(param: Param) -> str:
    return {"int": "an integer", "float": "a number", "bool": "true or false"}.get(param.kind, f"a {param.kind}")
