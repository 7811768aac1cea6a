"""The autograd tape against float64 central differences: every primitive alone (with broadcasting), and
random compositions of them."""

import random

import numpy as np
import pytest
from gradcheck import assert_grad_close, numeric_grad

from kerascli.graph.tape import PRIMITIVE_NAMES, Tape, Var
from kerascli.graph.tape import PRIMITIVES as P


def check(fn, *arrays, seed=0):
    """Gradient of sum(fn(*vars) * r) for a random r, by the tape and by central differences."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    tape = Tape()
    inputs = [tape.watch(a) for a in arrays]
    out = fn(*inputs)
    r = np.random.default_rng(seed).normal(size=np.shape(out.value))
    tape.backward(out, r)
    for i, (a, v) in enumerate(zip(arrays, inputs)):
        def value():
            return float((np.asarray(fn(*arrays)) * r).sum())  # plain arrays: no tape at all

        assert_grad_close(v.grad, numeric_grad(value, a), f"input {i}")


rng = np.random.default_rng(7)
A, B = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
POS = rng.random((3, 4)) + 0.5

CASES = {
    "matmul": (lambda a, b: P.matmul(a, b), [A, rng.normal(size=(4, 2))]),
    "matmul batch": (lambda a, b: a @ b, [rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5))]),
    "matmul vector": (lambda a, b: P.matmul(a, b), [A, rng.normal(size=4)]),
    "gemm transposed": (lambda a, b: P.gemm(a, b, trans_a=True, trans_b=True), [A, rng.normal(size=(2, 3))]),
    "add broadcast": (lambda a, b: a + b, [A, rng.normal(size=(4,))]),
    "add column": (lambda a, b: P.add(a, b), [A, rng.normal(size=(3, 1))]),
    "subtract": (lambda a, b: a - b, [A, B]),
    "multiply": (lambda a, b: a * b, [A, rng.normal(size=(1, 4))]),
    "divide": (lambda a, b: a / b, [A, POS]),
    "negative": (lambda a: -a, [A]),
    "power": (lambda a: a ** 3, [A]),
    "square": (lambda a: P.square(a), [A]),
    "sqrt": (lambda a: P.sqrt(a), [POS]),
    "exp": (lambda a: P.exp(a), [A]),
    "log": (lambda a: P.log(a), [POS]),
    "abs": (lambda a: P.abs(a), [A]),
    "maximum": (lambda a, b: P.maximum(a, b), [A, B]),
    "minimum": (lambda a, b: P.minimum(a, b), [A, B]),
    "clip": (lambda a: P.clip(a, -0.5, 0.5), [A]),
    "where": (lambda a, b: P.where(A > 0, a, b), [A, B]),
    "relu": (lambda a: P.relu(a), [A]),
    "sigmoid": (lambda a: P.sigmoid(a), [A]),
    "tanh": (lambda a: P.tanh(a), [A]),
    "softmax": (lambda a: P.softmax(a), [A]),
    "linear": (lambda a: P.activation(a, "linear"), [A]),
    "sum all": (lambda a: P.sum(a), [A]),
    "sum axis": (lambda a: P.sum(a, axis=0), [A]),
    "mean keepdims": (lambda a: P.mean(a, axis=1, keepdims=True), [A]),
    "max axis": (lambda a: P.max(a, axis=1), [A]),
    "reshape": (lambda a: P.reshape(a, (2, 6)), [A]),
    "transpose": (lambda a: P.transpose(a), [A]),
    "expand_dims": (lambda a: P.expand_dims(a, 1), [A]),
    "concat": (lambda a, b: P.concat([a, b, a], axis=1), [A, B]),
    "take": (lambda a: P.take(a, 1, 3, axis=1), [A]),
    "getitem": (lambda a: a[::2, 1:], [A]),
}


def test_every_primitive_has_a_case():
    covered = {"matmul", "gemm", "add", "subtract", "multiply", "divide", "negative", "power", "square", "sqrt",
               "exp", "log", "abs", "maximum", "minimum", "clip", "where", "activation", "relu", "sigmoid", "tanh",
               "softmax", "sum", "mean", "max", "reshape", "transpose", "expand_dims", "concat", "take", "getitem"}
    assert covered == set(PRIMITIVE_NAMES)


@pytest.mark.parametrize("name", list(CASES))
def test_primitive_gradient(name):
    fn, arrays = CASES[name]
    check(fn, *arrays)


UNARY = [P.tanh, P.sigmoid, P.relu, P.exp, lambda x: P.square(x) * 0.5, P.negative,
         lambda x: P.log(P.square(x) + 1.0), lambda x: P.softmax(x), lambda x: P.sqrt(P.square(x) + 0.1)]
BINARY = [P.add, P.subtract, P.multiply, lambda a, b: a / (P.square(b) + 1.0), P.maximum, P.minimum,
          lambda a, b: P.concat([a, b], axis=1)[:, ::2]]


def random_expression(seed):
    r = random.Random(seed)
    steps = [(r.random() < 0.5, r.randrange(len(UNARY)), r.randrange(len(BINARY)), r.random()) for _ in range(7)]

    def fn(x, y, w):
        values = [x, y, P.matmul(x, w)]
        for unary, u, b, pick in steps:
            a = values[int(pick * len(values))]
            values.append(UNARY[u](a) if unary else BINARY[b](a, values[-1]))
        return P.sum(values[-1] * values[-2], axis=0) + P.mean(values[2])

    return fn


@pytest.mark.parametrize("seed", range(12))
def test_random_compositions(seed):
    check(random_expression(seed), A, B, rng.normal(size=(4, 4)) * 0.5, seed=seed)


def test_plain_arrays_pass_through_without_a_tape():
    out = P.add(P.matmul(A, np.eye(4)), 1.0)
    assert isinstance(out, np.ndarray) and np.allclose(out, A + 1)


def test_a_value_used_twice_sums_its_gradients():
    tape = Tape()
    x = tape.watch(np.array([2.0, -3.0]))
    y = x * x + x
    tape.backward(y, np.ones(2))
    np.testing.assert_allclose(x.grad, 2 * x.value + 1)
    assert isinstance(y, Var)
