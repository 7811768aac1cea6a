"""Keras 3 is the specification: every argument of a built-in optimizer, schedule, loss, metric and callback
has Keras' name and default (read from Keras' own signatures where Keras is installed, as in CI); so has
every initializer, regularizer and constraint."""

import inspect
import os

import pytest

from kerascli.config.params import REQUIRED
from kerascli.registry import (
    CALLBACKS,
    CONSTRAINTS,
    INITIALIZERS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    REGULARIZERS,
    SCHEDULES,
    load_builtins,
)

load_builtins()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def keras_module(path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    module = keras
    for part in path.split("."):
        module = getattr(module, part)
    return module


ROWS = ([("optimizers", name, OPTIMIZERS.get(name)) for name in OPTIMIZERS.builtin_names()]
        + [("optimizers.schedules", name, SCHEDULES.get(name)) for name in SCHEDULES.builtin_names()]
        + [("losses", name, LOSSES.get(name)) for name in LOSSES.builtin_names()]
        + [("metrics", name, METRICS.get(name)) for name in METRICS.builtin_names() if METRICS.get(name).PARAMS]
        + [("callbacks", name, CALLBACKS.get(name)) for name in CALLBACKS.builtin_names()]
        + [("initializers", name, INITIALIZERS.get(name)) for name in INITIALIZERS.builtin_names()]
        + [("regularizers", name, REGULARIZERS.get(name)) for name in REGULARIZERS.builtin_names()]
        + [("constraints", name, CONSTRAINTS.get(name)) for name in CONSTRAINTS.builtin_names()])


@pytest.mark.parametrize("module,name,cls", ROWS, ids=[f"{m}.{n}" for m, n, _ in ROWS])
def test_arguments_and_defaults_are_keras(module, name, cls):
    theirs = inspect.signature(getattr(keras_module(module), cls.__name__).__init__).parameters
    for arg, param in cls.PARAMS.items():
        assert arg in theirs, f"{cls.__name__} has no argument {arg!r} in Keras"
        keras_default = theirs[arg].default
        if param.default is REQUIRED:
            assert keras_default is inspect.Parameter.empty, f"{arg}: Keras has a default, {keras_default!r}"
        else:
            assert param.default == keras_default, f"{cls.__name__}.{arg}: {param.default!r} != Keras' {keras_default!r}"
