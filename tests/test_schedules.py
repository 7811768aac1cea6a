"""Learning-rate schedules: Keras 3's formulas (Keras itself as the oracle where installed, hand-computed
values everywhere), their configs, and an optimizer following one through training and a resume."""

import json
import math
import os

import numpy as np
import pytest
from compare_runs import assert_same_last_checkpoint

from kerascli.cli import cli
from kerascli.ops import get_ops
from kerascli.optimizers import SGD
from kerascli.registry import SCHEDULES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # from Keras, not from us

STEPS = [0, 1, 3, 9, 10, 11, 49, 50, 99, 100, 101, 250, 1000]
ROWS = {  # schedule -> configs (Keras argument names and defaults)
    "ExponentialDecay": [dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5),
                         dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5, staircase=True)],
    "InverseTimeDecay": [dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5),
                         dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=2.0, staircase=True)],
    "PiecewiseConstantDecay": [dict(boundaries=[10, 100], values=[1.0, 0.5, 0.1])],
    "PolynomialDecay": [dict(initial_learning_rate=0.1, decay_steps=100),
                        dict(initial_learning_rate=0.1, decay_steps=30, end_learning_rate=0.01, power=2.0,
                             cycle=True)],
    "CosineDecay": [dict(initial_learning_rate=0.1, decay_steps=100),
                    dict(initial_learning_rate=0.1, decay_steps=100, alpha=0.1),
                    dict(initial_learning_rate=0.0, decay_steps=90, warmup_target=0.2, warmup_steps=10)],
    "CosineDecayRestarts": [dict(initial_learning_rate=0.1, first_decay_steps=10),
                            dict(initial_learning_rate=0.1, first_decay_steps=20, t_mul=1.0, m_mul=0.5,
                                 alpha=0.05)],
}


def test_every_schedule_has_a_row():
    assert sorted(ROWS) == sorted(SCHEDULES.builtin_names())


def make(name, args):
    cls = SCHEDULES.get(name)
    config = {k: p.default for k, p in cls.PARAMS.items() if not p.required}
    config.update(args)
    return cls(config)


@pytest.mark.parametrize("name,args", [(n, a) for n, rows in ROWS.items() for a in rows])
def test_schedules_match_keras(name, args):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    ours, theirs = make(name, args), getattr(keras.optimizers.schedules, name)(**args)
    for step in STEPS:
        expected = float(keras.ops.convert_to_numpy(theirs(step)))
        # Keras computes in float32: near zero its rounding of cos shows (values here are up to 1)
        assert ours(step) == pytest.approx(expected, rel=2e-6, abs=1e-8), (name, step)


def test_schedules_golden_values():
    assert make("ExponentialDecay", ROWS["ExponentialDecay"][0])(10) == pytest.approx(0.05)
    assert make("ExponentialDecay", ROWS["ExponentialDecay"][1])(19) == pytest.approx(0.05)
    assert make("InverseTimeDecay", ROWS["InverseTimeDecay"][0])(20) == pytest.approx(0.05)
    piecewise = make("PiecewiseConstantDecay", ROWS["PiecewiseConstantDecay"][0])
    assert [piecewise(s) for s in (0, 10, 11, 100, 101)] == [1.0, 1.0, 0.5, 0.5, 0.1]
    assert make("PolynomialDecay", ROWS["PolynomialDecay"][0])(50) == pytest.approx(0.05 + 0.0001 / 2)
    assert make("PolynomialDecay", ROWS["PolynomialDecay"][0])(500) == pytest.approx(0.0001)
    assert make("CosineDecay", ROWS["CosineDecay"][0])(50) == pytest.approx(0.05)
    warm = make("CosineDecay", ROWS["CosineDecay"][2])
    assert [warm(s) for s in (0, 5, 10)] == pytest.approx([0.0, 0.1, 0.2])
    assert warm(10 + 45) == pytest.approx(0.1) and warm(10_000) == pytest.approx(0.0)
    restarts = make("CosineDecayRestarts", ROWS["CosineDecayRestarts"][0])
    assert restarts(10) == pytest.approx(0.1)  # the first restart: back to the top, then a period twice as long
    assert restarts(20) == pytest.approx(0.05) and restarts(29.999) < 1e-6


def test_sgd_follows_its_schedule_step_by_step(rng):
    """Each update uses the schedule at the number of updates before it (Keras: iterations)."""
    schedule = {"type": "ExponentialDecay", "initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.5,
                "staircase": False}
    ops = get_ops("cpu")
    opt = SGD({"learning_rate": schedule, "momentum": 0.0, "nesterov": False}, 4, np.float64, ops)
    params, grads = rng.normal(size=4), rng.normal(size=4)
    expected = params.copy()
    for step in range(4):
        assert opt.learning_rate == pytest.approx(0.1 * 0.5 ** step)
        opt.step(params, grads)
        expected -= 0.1 * 0.5 ** step * grads
        np.testing.assert_allclose(params, expected, rtol=1e-12)
    opt.learning_rate_scale = 0.5  # what a NaN rollback does: the whole schedule at half height
    assert opt.learning_rate == pytest.approx(0.5 * 0.1 * 0.5 ** 4)


def invoke(*args):
    from click.testing import CliRunner

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


CONFIG = """
name: {name}
seed: 5
data: {{dataset: synthetic_classification, samples: 80, features: 5, classes: 3, validation_split: 0.25}}
model:
  input_shape: [5]
  layers:
    - {{type: Dense, units: 6, activation: relu}}
    - {{type: Dense, units: 3, activation: softmax}}
compile:
  optimizer: {{type: sgd, momentum: 0.9, learning_rate: {schedule}}}
  loss: sparse_categorical_crossentropy
train: {{epochs: {epochs}, batch_size: 20}}
"""
COSINE = "{type: CosineDecay, initial_learning_rate: 0.2, decay_steps: 9}"


def test_training_logs_the_scheduled_rate_and_resumes_on_it(tmp_path, write_config):
    runs = tmp_path / "runs"
    assert invoke("train", write_config(CONFIG.format(name="whole", schedule=COSINE, epochs=4), "a.yaml"),
                  "--runs-dir", runs, "--quiet").exit_code == 0
    lines = (runs / "whole" / "metrics.csv").read_text().split()
    head = lines[0].split(",")
    rates = [float(row.split(",")[head.index("lr")]) for row in lines[1:]]
    # 60 training samples in batches of 20: 3 updates per epoch; the rate shown is the next update's
    expected = [0.2 * 0.5 * (1 + math.cos(math.pi * min(3 * e, 9) / 9)) for e in (1, 2, 3, 4)]
    assert rates == pytest.approx(expected)
    resolved = json.loads(json.dumps(__import__("yaml").safe_load((runs / "whole" / "config.yaml").read_text())))
    assert resolved["compile"]["optimizer"]["learning_rate"]["type"] == "CosineDecay"
    # stopped after 2 epochs and resumed: the schedule carries on from the step it reached
    assert invoke("train", write_config(CONFIG.format(name="split", schedule=COSINE, epochs=2), "b.yaml"),
                  "--runs-dir", runs, "--quiet").exit_code == 0
    assert invoke("resume", runs / "split", "--set", "train.epochs=4", "--quiet").exit_code == 0
    assert_same_last_checkpoint(runs / "whole", runs / "split")


@pytest.mark.parametrize("schedule,message", [
    ("{type: CosineDecy, initial_learning_rate: 0.1, decay_steps: 5}", "did you mean 'CosineDecay'"),
    ("{type: CosineDecay, initial_learning_rate: 0.1, decay_step: 5}", "unknown key 'decay_step'"),
    ("{type: CosineDecay, initial_learning_rate: 0.1}", "missing required key 'decay_steps'"),
    ("{initial_learning_rate: 0.1}", "missing required key 'type'"),
    ("{type: PiecewiseConstantDecay, boundaries: [10], values: [0.1]}", "values: needs one more entry"),
    ("{type: ExponentialDecay, initial_learning_rate: -1, decay_steps: 5, decay_rate: 0.5}", "must be > 0.0"),
])
def test_bad_schedules_name_the_key(tmp_path, write_config, schedule, message):
    result = invoke("train", write_config(CONFIG.format(name="bad", schedule=schedule, epochs=1)),
                    "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert message in result.output and "compile.optimizer.learning_rate" in result.output, result.output
    assert result.output.count("\n") == 1


def test_keras_2_decay_points_at_inverse_time_decay(tmp_path, write_config):
    config = write_config(CONFIG.format(name="old", schedule=0.1, epochs=1).replace("momentum: 0.9",
                                                                                  "momentum: 0.9, decay: 0.001"))
    result = invoke("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2 and "InverseTimeDecay" in result.output and "compile.optimizer.decay" in result.output
