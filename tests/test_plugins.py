"""Plugins: the worked examples train through the CLI; custom layers have the gradients central differences
give; a run with a plugin is evaluated and resumed in a fresh process; every bad plugin is one line, exit 2."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT, SMALL_MLP
from gradcheck import assert_grad_close, numeric_grad

from kerascli.cli import cli

EXAMPLES = os.path.join(ROOT, "examples", "plugins")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def run_fresh(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "kerascli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("config,overrides", [
    ("custom_layers.yaml", ["train.epochs=3"]),
    ("custom_training.yaml", ["train.epochs=3"]),
    ("streamed.yaml", ["train.epochs=3"]),
])
def test_examples_train_through_the_cli(tmp_path, config, overrides, monkeypatch):
    monkeypatch.chdir(ROOT)  # the examples name their plugins relative to the repository
    sets = [a for o in overrides for a in ("--set", o)]
    result = invoke("train", os.path.join(EXAMPLES, config), "--runs-dir", tmp_path, "-q", *sets)
    assert result.exit_code == 0, result.output
    (run,) = os.listdir(tmp_path)
    summary = json.loads((tmp_path / run / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert {os.path.basename(p["spec"]) for p in summary["plugins"]} <= {"layers.py", "spirals.py", "training.py"}
    assert summary["epochs"] == 3
    assert all(len(p["sha256"]) == 64 for p in summary["plugins"])


def test_the_custom_callback_stops_training(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = os.path.join(EXAMPLES, "custom_training.yaml")
    result = invoke("train", config, "--runs-dir", tmp_path, "-q", "--set", "callbacks[0].threshold=1000")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "huber" / "summary.json").read_text())["epochs"] == 1


def test_a_plugin_run_is_evaluated_and_resumed_in_a_fresh_process(tmp_path):
    config = os.path.join(EXAMPLES, "custom_layers.yaml")
    first = run_fresh("train", config, "--runs-dir", tmp_path, "-q", "--set", "train.epochs=2")
    assert first.returncode == 0, first.stderr
    run = tmp_path / "spirals"
    evaluated = run_fresh("evaluate", run, "--split", "val", "--json", cwd=tmp_path)  # another folder, too
    assert evaluated.returncode == 0, evaluated.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(summary["evaluation"]["val"]["accuracy"])
    resumed = run_fresh("resume", run, "-q", "--set", "train.epochs=3", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert len((run / "metrics.csv").read_text().splitlines()) == 4
    np.save(tmp_path / "x.npy", np.zeros((5, 2), np.float32))
    predicted = run_fresh("predict", run, tmp_path / "x.npy", "-o", tmp_path / "p.npy", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert np.load(tmp_path / "p.npy").shape == (5, 3)


def test_a_changed_or_missing_plugin_is_refused_when_the_run_is_used_again(tmp_path):
    plugin = tmp_path / "mylayers.py"
    plugin.write_text(open(os.path.join(EXAMPLES, "layers.py")).read())
    config = tmp_path / "c.yaml"
    config.write_text(open(os.path.join(EXAMPLES, "custom_layers.yaml")).read()
                      .replace("examples/plugins/layers.py", str(plugin))
                      .replace("examples/plugins/spirals.py", os.path.join(EXAMPLES, "spirals.py")))
    trained = run_fresh("train", config, "--runs-dir", tmp_path / "runs", "-q", "--set", "train.epochs=1")
    assert trained.returncode == 0, trained.stderr  # a process of its own: this one may know ScaledDense already
    run = tmp_path / "runs" / "spirals"
    plugin.write_text(plugin.read_text().replace("* self.config[\"scale\"]", "* self.config[\"scale\"] * 2"))
    for args in (["evaluate", run], ["resume", run, "--set", "train.epochs=2"]):
        result = run_fresh(*args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert f"plugin {plugin} changed since the run used it" in result.stderr and result.stderr.count("\n") == 1
    plugin.unlink()
    result = run_fresh("evaluate", run, cwd=tmp_path)
    assert result.returncode == 2 and f"plugin {plugin}: file not found" in result.stderr, result.stderr


# ------------------------------------------------------------------ gradients of custom layers
def plugin_session(tmp_path, layers_yaml, features=4, loss="mse", units=3):
    from kerascli.config.loader import parse_yaml_text
    from kerascli.config.schema import resolve_config
    from kerascli.train.session import build_session

    text = f"""
plugins: [{os.path.join(EXAMPLES, "layers.py")}]
data: {{dataset: synthetic_regression, samples: 10, features: {features}, outputs: {units}}}
model:
  input_shape: [{features}]
  layers:
{textwrap.indent(textwrap.dedent(layers_yaml).strip(), "    ")}
compile: {{optimizer: sgd, loss: {loss}}}
train: {{dtype: float64, threads: 1}}
"""
    return build_session(resolve_config(parse_yaml_text(text, "grad.yaml")))


@pytest.mark.parametrize("layer", ["{type: ScaledDense, units: 5, activation: tanh, scale: 1.5}",
                                   "{type: GatedDense, units: 5}"])
def test_custom_layers_have_the_gradients_of_central_differences(tmp_path, layer):
    s = plugin_session(tmp_path, f"- {layer}\n- {{type: ScaledDense, units: 3, activation: softmax}}\n- {layer}"
                                 "\n- {type: Dense, units: 3}")
    model, trainer = s.model, s.trainer
    rng = np.random.default_rng(1)
    model.param_buffer[...] = rng.normal(scale=0.5, size=model.param_buffer.shape)
    x, t = rng.normal(size=(4, 4)), rng.normal(size=(4, 3))

    def loss():
        out = model.forward(x, training=True)
        return float(trainer.loss.forward(model.ops, out, t, False)[0].sum())

    out = model.forward(x, training=True)
    _, pred = trainer.loss.forward(model.ops, out, t, False)
    model.backward(trainer.loss.backward(model.ops, out, pred, t, 1.0, False))
    analytic = model.grad_buffer.copy()
    assert_grad_close(analytic, numeric_grad(loss, model.param_buffer), layer)
    assert np.abs(analytic).max() > 1e-3


def test_a_custom_loss_matches_its_definition():
    sys.path.insert(0, EXAMPLES)
    try:
        from kerascli.plugins import load

        load(os.path.join(EXAMPLES, "training.py"))
        from kerascli.ops import get_ops
        from kerascli.registry import LOSSES

        loss = LOSSES.get("huber_loss")()
        rng = np.random.default_rng(0)
        out, t = rng.normal(size=(6, 2)) * 2, rng.normal(size=(6, 2))
        rows, _ = loss.forward(get_ops("cpu"), out, t, False)
        err = np.abs(out - t)
        np.testing.assert_allclose(rows, np.where(err < 1, 0.5 * err ** 2, err - 0.5).mean(axis=1))

        def value():
            return float(loss.forward(get_ops("cpu"), out, t, False)[0].sum() / 6)

        loss.forward(get_ops("cpu"), out, t, False)
        assert_grad_close(loss.backward(get_ops("cpu"), out, out, t, 1 / 6, False), numeric_grad(value, out), "huber")
    finally:
        sys.path.remove(EXAMPLES)


# ------------------------------------------------------------------ bad plugins
BAD_PLUGINS = {
    "missing file": (None, "file not found"),
    "syntax error": ("def broken(:\n", "failed to import: SyntaxError"),
    "raises on import": ("raise RuntimeError('no GPU here')\n", "failed to import: RuntimeError: no GPU here (line 1"),
    "clashes with a built-in": ("from kerascli.api import Layer, register_layer\n"
                                "@register_layer('Dense')\nclass Dense(Layer):\n    def call(self, x):\n        return x\n",
                                "layer type 'Dense' is already registered by built-in"),
    "no call": ("from kerascli.api import Layer, register_layer\n"
                "@register_layer()\nclass Empty(Layer):\n    pass\n", "Empty does not define call"),
    "not a layer": ("from kerascli.api import register_layer\n@register_layer()\nclass Thing:\n    pass\n",
                    "must be a subclass of kerascli.api.Layer"),
    "unknown module": ("module:no_such_module_anywhere", "no module named 'no_such_module_anywhere'"),
    "batch in, one row out": ("from kerascli.api import Layer, register_layer\n@register_layer('FirstRow')\n"
                              "class FirstRow(Layer):\n    def call(self, x):\n        return x[:1]\n",
                              "layer 'first_row' (FirstRow): call returned shape (1, 8), expected (16, 8)"),
}


@pytest.mark.parametrize("case", list(BAD_PLUGINS))
def test_bad_plugins_end_in_one_line_and_exit_2(tmp_path, case):
    source, needle = BAD_PLUGINS[case]
    if source is not None and source.startswith("module:"):
        item = source.split(":", 1)[1]
    else:
        item = str(tmp_path / f"{case.replace(' ', '_').replace(',', '')}.py")
        if source is not None:
            with open(item, "w") as f:
                f.write(source)
    text = "plugins: [" + item + "]\n" + SMALL_MLP.replace("- {type: Dropout, rate: 0.1}",
                                                           "- {type: FirstRow}" if "FirstRow" in (source or "")
                                                           else "- {type: Dropout, rate: 0.1}")
    config = tmp_path / "c.yaml"
    config.write_text(text)
    # an explicit thread count: no note about other kerascli processes (tests beside this one start some)
    result = run_fresh("train", config, "--runs-dir", tmp_path / "runs", "--threads", "1", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr


def test_two_plugins_registering_one_name_are_refused(tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.py").write_text("from kerascli.api import ops, register_loss\n"
                                             "@register_loss('twice')\ndef twice(t, p):\n"
                                             "    return ops.mean(ops.square(p - t), axis=-1)\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"plugins: [{tmp_path / 'a.py'}, {tmp_path / 'b.py'}]\n" + SMALL_MLP)
    result = run_fresh("validate", config, cwd=tmp_path)
    assert result.returncode == 2 and "loss 'twice' is already registered by plugin" in result.stderr, result.stderr


def test_installed_packages_register_through_entry_points(tmp_path):
    site = tmp_path / "site"
    (site / "myplug-1.0.dist-info").mkdir(parents=True)
    (site / "myplug-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 1.0\n")
    (site / "myplug-1.0.dist-info" / "entry_points.txt").write_text("[kerascli.plugins]\nmyplug = myplug\n")
    (site / "myplug.py").write_text("from kerascli.api import Layer, register_layer\n"
                                    "@register_layer('Twice')\nclass Twice(Layer):\n"
                                    "    def call(self, x):\n        return x * 2.0\n")
    config = tmp_path / "c.yaml"
    config.write_text(SMALL_MLP.replace("- {type: Dropout, rate: 0.1}", "- {type: Twice}"))
    result = run_fresh("train", config, "--runs-dir", tmp_path / "runs", "-q", cwd=tmp_path,
                       env={"PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "runs" / "small" / "summary.json").read_text())
    assert [p["spec"] for p in summary["plugins"]] == ["entry point myplug"]
