"""Optimizers: golden values by hand from Keras' update rules, and PyTorch as an oracle where installed."""

import numpy as np
import pytest
from backends import HOST_BACKENDS
from compare_runs import assert_same_last_checkpoint

from kerascli.ops import get_ops
from kerascli.registry import OPTIMIZERS, load_builtins

load_builtins()


def make(name, backend="cpu", size=2, dtype=np.float64, **config):
    cls = OPTIMIZERS.get(name)
    full = {k: p.default for k, p in cls.PARAMS.items()}
    full.update(config)
    return cls(full, size, dtype, get_ops(backend))


KERAS_ROWS = {  # optimizer -> configs checked against Keras 3 itself
    "sgd": [{"learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.01},
            {"learning_rate": 0.05, "use_ema": True, "ema_momentum": 0.8, "ema_overwrite_frequency": 4},
            {"learning_rate": 0.05, "clipnorm": 0.5}, {"learning_rate": 0.05, "clipvalue": 0.3}],
    "adam": [{"learning_rate": 0.01, "weight_decay": 0.05}, {"learning_rate": 0.01, "global_clipnorm": 0.7},
             {"learning_rate": 0.05, "amsgrad": True},
             {"learning_rate": 0.01, "gradient_accumulation_steps": 3, "weight_decay": 0.05, "clipnorm": 0.5},
             {"learning_rate": {"type": "ExponentialDecay", "initial_learning_rate": 0.01, "decay_steps": 1,
                                "decay_rate": 0.5, "staircase": False}, "gradient_accumulation_steps": 2}],
    "adamw": [{"learning_rate": 0.01}, {"learning_rate": 0.01, "weight_decay": 0.1, "beta_1": 0.8},
              {"learning_rate": 0.05, "amsgrad": True}],
    "rmsprop": [{"learning_rate": 0.01}, {"learning_rate": 0.01, "momentum": 0.9},
                {"learning_rate": 0.01, "centered": True, "rho": 0.8},
                {"learning_rate": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.01}],
    "adagrad": [{"learning_rate": 0.1}, {"learning_rate": 0.1, "initial_accumulator_value": 0.5,
                                         "gradient_accumulation_steps": 2}],
    "adamax": [{"learning_rate": 0.01}, {"learning_rate": 0.01, "beta_1": 0.5, "weight_decay": 0.02}],
    "nadam": [{"learning_rate": 0.01}, {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99}],
    "lion": [{"learning_rate": 0.01}, {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.9, "weight_decay": 0.1}],
    "adafactor": [{"learning_rate": 0.01}, {"learning_rate": 0.5, "beta_2_decay": -0.5, "epsilon_2": 0.01,
                                           "clip_threshold": 0.5, "weight_decay": 0.01}],
    "adadelta": [{"learning_rate": 1.0, "gradient_accumulation_steps": 2, "use_ema": True}, {"learning_rate": 0.5, "rho": 0.8, "epsilon": 1e-4, "weight_decay": 0.01}],
    "ftrl": [{"learning_rate": 0.1}, {"learning_rate": 0.1, "learning_rate_power": -0.3, "initial_accumulator_value": 0.3,
                                      "l1_regularization_strength": 0.05, "l2_regularization_strength": 0.1,
                                      "l2_shrinkage_regularization_strength": 0.02, "beta": 0.5},
             {"learning_rate": 0.2, "learning_rate_power": 0.0, "l1_regularization_strength": 0.2, "clipnorm": 1.0}],
}


def test_every_optimizer_is_tested():
    assert sorted(KERAS_ROWS) == sorted(OPTIMIZERS.builtin_names())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name,config", [(n, c) for n, rows in KERAS_ROWS.items() for c in rows])
@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_matches_keras(name, config, backend, rng):
    """Six steps on two weights (one flat buffer here, two variables there), float32, against Keras 3."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    shapes = [(3, 4), (5,)]
    values = [rng.normal(size=s).astype(np.float32) for s in shapes]
    grads = [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(6)]
    keras_config = dict(config)
    if isinstance(config.get("learning_rate"), dict):  # a schedule
        schedule = dict(config["learning_rate"])
        keras_config["learning_rate"] = getattr(keras.optimizers.schedules, schedule.pop("type"))(**schedule)
    theirs = getattr(keras.optimizers, OPTIMIZERS.get(name).__name__)(**keras_config)
    variables = [keras.Variable(v.copy()) for v in values]
    ours = make(name, backend, size=17, dtype=np.float32, **config)
    ours.set_weights_layout([0, 12, 17], shapes)  # clipnorm clips each of the two weights by its own norm
    flat = np.concatenate([v.ravel() for v in values])
    for step in grads:
        theirs.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in step], variables))
        ours.step(flat, np.concatenate([g.ravel() for g in step]))
    expected = np.concatenate([keras.ops.convert_to_numpy(v).ravel() for v in variables])
    np.testing.assert_allclose(flat, expected, rtol=2e-5, atol=2e-6)
    if config.get("use_ema"):  # the moving average, and the weights it leaves at the end of training
        average = np.concatenate([keras.ops.convert_to_numpy(v).ravel()
                                  for v in theirs._model_variables_moving_average])
        np.testing.assert_allclose(ours.slots["average"], average, rtol=2e-5, atol=2e-6)
        theirs.finalize_variable_values(variables)
        assert ours.finalize(flat)
        np.testing.assert_allclose(flat, np.concatenate([keras.ops.convert_to_numpy(v).ravel() for v in variables]),
                                   rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_sgd_golden_values(backend):
    g = np.array([0.5, -1.0])
    p = np.array([1.0, -2.0])
    opt = make("sgd", backend, learning_rate=0.1)
    opt.step(p, g)
    np.testing.assert_allclose(p, [0.95, -1.9])

    p = np.array([1.0, -2.0])
    opt = make("sgd", backend, learning_rate=0.1, momentum=0.9)
    opt.step(p, g)  # v = -0.05, p = 0.95
    opt.step(p, g)  # v = 0.9 * -0.05 - 0.05 = -0.095, p = 0.855
    np.testing.assert_allclose(p, [0.855, -1.71])

    p = np.array([1.0, -2.0])
    opt = make("sgd", backend, learning_rate=0.1, momentum=0.9, nesterov=True)
    opt.step(p, g)  # v = -0.05; p += 0.9 * v - 0.1 * g = -0.095
    np.testing.assert_allclose(p, [0.905, -1.81])


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_adam_golden_values(backend):
    # the first Adam step moves each weight by about lr against the sign of its gradient
    p = np.array([1.0, -2.0])
    opt = make("adam", backend, learning_rate=0.1)
    opt.step(p, np.array([0.5, -1.0]))
    np.testing.assert_allclose(p, [0.9, -1.9], atol=1e-6)
    assert opt.iterations == 1


def adam_by_hand(p, grads, lr, b1, b2, eps):
    """Keras' Adam written out from its documentation, independent of the kernels."""
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        p = p - lr_t * m / (np.sqrt(v) + eps)
    return p


@pytest.mark.parametrize("backend", HOST_BACKENDS)
def test_adam_matches_the_published_rule_over_several_steps(backend, rng):
    p0 = rng.normal(size=10)
    grads = [rng.normal(size=10) for _ in range(5)]
    p = p0.copy()
    opt = make("adam", backend, size=10, learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-7)
    for g in grads:
        opt.step(p, g)
    np.testing.assert_allclose(p, adam_by_hand(p0, grads, 0.01, 0.8, 0.99, 1e-7), rtol=1e-12)


def test_state_round_trip():
    opt = make("adam", size=3)
    p = np.zeros(3)
    opt.step(p, np.ones(3))
    other = make("adam", size=3)
    other.load_state(opt.state())
    assert other.iterations == 1
    np.testing.assert_array_equal(other.slots["m"], opt.slots["m"])


@pytest.mark.parametrize("name,config", [(n, c) for n, rows in KERAS_ROWS.items() for c in rows])
def test_updates_by_parts_make_up_the_whole_update(name, config, rng):
    """Where an optimizer says it updates by parts (data-parallel ranks each update their slice of the
    weights), three parts' steps give the whole step's weights and slots, over several steps; where it
    says it cannot (norms over whole weights, Adafactor's factored moments), it refuses to."""
    size, bounds = 23, [(0, 5), (5, 16), (16, 23)]  # parts that cut through the second weight

    def made():
        opt = make(name, size=size, **config)
        opt.set_weights_layout([0, 8, 23], [(8,), (3, 5)])
        return opt

    whole, ranks = made(), [made() for _ in bounds]  # each rank its own optimizer, stepping its part
    by_parts = type(whole).updates_by_parts(whole.config)
    assert by_parts == (name != "adafactor" and not config.get("clipnorm") and not config.get("global_clipnorm"))
    p_whole = rng.normal(size=size)
    p_parts = p_whole.copy()
    if not by_parts:
        with pytest.raises(ValueError, match="whole weights only"):
            ranks[0].step_part(p_parts[:5], rng.normal(size=5), 0, 5)
        return
    for _ in range(5):
        g = rng.normal(size=size)
        whole.step(p_whole, g.copy())
        for opt, (lo, hi) in zip(ranks, bounds):
            opt.step_part(p_parts[lo:hi], g[lo:hi].copy(), lo, hi)
    np.testing.assert_allclose(p_parts, p_whole, rtol=1e-12, atol=1e-14)
    for opt, (lo, hi) in zip(ranks, bounds):
        assert opt.iterations == whole.iterations and opt.accumulated == whole.accumulated
        for slot in whole.slots:
            np.testing.assert_allclose(opt.slots[slot][lo:hi], whole.slots[slot][lo:hi], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,config,torch_name,torch_config", [
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9}, "SGD", {"lr": 0.05, "momentum": 0.9}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}, "SGD",
     {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("adam", {"learning_rate": 0.01, "epsilon": 1e-12}, "Adam", {"lr": 0.01, "eps": 1e-12}),
    ("adadelta", {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-6}, "Adadelta", {"lr": 1.0, "rho": 0.9, "eps": 1e-6}),
])
def test_matches_pytorch(name, config, torch_name, torch_config, rng):
    torch = pytest.importorskip("torch")
    p0 = rng.normal(size=6)
    grads = [rng.normal(size=6) for _ in range(4)]
    p = p0.copy()
    opt = make(name, size=6, **config)
    tp = torch.tensor(p0.copy(), dtype=torch.float64, requires_grad=True)
    topt = getattr(torch.optim, torch_name)([tp], **torch_config)
    for g in grads:
        opt.step(p, g)
        tp.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-9, atol=1e-10)


CONFIG = """
name: {name}
seed: 2
data: {{dataset: synthetic_classification, samples: 60, features: 4, classes: 3}}
model:
  input_shape: [4]
  layers:
    - {{type: Dense, units: 5, activation: tanh}}
    - {{type: Dense, units: 3, activation: softmax}}
compile: {{optimizer: {optimizer}, loss: sparse_categorical_crossentropy}}
train: {{epochs: {epochs}, batch_size: 16}}
"""


@pytest.mark.parametrize("optimizer", [
    "{type: rmsprop, momentum: 0.9, centered: true}", "{type: adagrad}", "{type: adamax}", "{type: nadam}",
    "{type: lion, weight_decay: 0.01}", "{type: adamw}", "{type: adadelta, learning_rate: 1.0}", "{type: ftrl}",
    "{type: adam, gradient_accumulation_steps: 3}",  # 4 steps an epoch: a partial sum crosses the resume
    "{type: adafactor, learning_rate: 0.1}", "{type: adam, amsgrad: true}",
])
def test_training_resumes_every_optimizer_exactly(tmp_path, write_config, optimizer):
    """Slots (and Nadam's momentum product, which follows from the step) survive a checkpoint: one epoch
    plus a resume ends where two epochs in one go do."""
    from click.testing import CliRunner

    from kerascli.cli import cli

    def run(*args):
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    runs = tmp_path / "runs"
    run("train", write_config(CONFIG.format(name="whole", optimizer=optimizer, epochs=2), "a.yaml"),
        "--runs-dir", runs, "--quiet")
    run("train", write_config(CONFIG.format(name="split", optimizer=optimizer, epochs=1), "b.yaml"),
        "--runs-dir", runs, "--quiet")
    run("resume", runs / "split", "--set", "train.epochs=2", "--quiet")
    assert_same_last_checkpoint(runs / "whole", runs / "split")


def test_one_kind_of_clipping_at_a_time(tmp_path, write_config):
    from click.testing import CliRunner

    from kerascli.cli import cli

    config = write_config(CONFIG.format(name="clip", optimizer="{type: sgd, clipnorm: 1.0, clipvalue: 0.5}", epochs=1))
    result = CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "compile.optimizer.clipvalue" in result.output and "not clipnorm and clipvalue" in result.output


def test_use_ema_leaves_the_average_as_the_final_weights(tmp_path, write_config):
    """As Keras' fit: at the end of training the weights become their moving average (last.npz holds them);
    during training, and in best.npz, they are the trained ones."""
    from click.testing import CliRunner

    from kerascli.cli import cli

    config = write_config(CONFIG.format(name="ema", optimizer="{type: adam, use_ema: true, ema_momentum: 0.9}",
                                        epochs=2))
    result = CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "ema" / "checkpoints" / "last.npz") as last:
        for name in ("dense/kernel", "dense_1/bias"):
            np.testing.assert_array_equal(last[name], last[f"_optimizer/average/{name}"])
