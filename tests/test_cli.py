"""The command line: each subcommand, the run directory, and every bad-input case."""

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import SMALL_MLP

from kerascli.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def trained(tmp_path, small_config):
    runs = tmp_path / "runs"
    result = invoke("train", small_config, "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    return runs / "small"


def read_metrics(run):
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_help_answers_without_numba_or_numpy():
    code = (
        "import sys\n"
        "from kerascli.cli import main\n"
        "sys.argv = ['kerascli', '--help']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "heavy = [m for m in ('numba', 'numpy', 'rich') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "train" in out.stdout and "predict" in out.stdout


def test_python_dash_m_and_version():
    out = subprocess.run([sys.executable, "-m", "kerascli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "kerascli" in out.stdout


def test_run_directory_contents(trained):
    pictures = ["confusion_matrix.png", "curves.png"] if importlib.util.find_spec("matplotlib") else []
    assert sorted(os.listdir(trained)) == sorted([".lock", "checkpoints", "config.yaml", "metrics.csv",
                                                  "model_summary.txt", "report.html", "summary.json", *pictures])
    assert (trained / ".lock").read_text() == ""  # released
    assert sorted(os.listdir(trained / "checkpoints")) == ["best.npz", "last.npz"]
    rows = read_metrics(trained)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 2
    assert summary["params"]["total"] == 6 * 8 + 8 + 8 * 3 + 3
    assert set(summary["evaluation"]) == {"checkpoint", "train", "val", "test"}
    assert summary["train_samples_per_second"] > 0
    for key in ("kerascli", "numpy", "numba"):
        assert summary["versions"][key]
    assert "Total params: 83" in (trained / "model_summary.txt").read_text()
    config = yaml.safe_load((trained / "config.yaml").read_text())
    assert config["compile"]["optimizer"]["beta_1"] == 0.9
    assert config["model"]["layers"][1]["name"] == "dropout"


def test_resolved_config_reruns_identically(trained, tmp_path):
    result = invoke("train", trained / "config.yaml", "--runs-dir", tmp_path / "again", "--quiet")
    assert result.exit_code == 0, result.output
    first, second = read_metrics(trained), read_metrics(tmp_path / "again" / "small")
    for a, b in zip(first, second):
        a.pop("seconds"), b.pop("seconds")
        assert a == b


def test_same_config_and_seed_give_identical_metrics(tmp_path, small_config):
    for _ in range(2):
        assert invoke("train", small_config, "--runs-dir", tmp_path, "-q").exit_code == 0
    a, b = read_metrics(tmp_path / "small"), read_metrics(tmp_path / "small-2")
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in a] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in b
    ]


def test_run_names(tmp_path, small_config):
    runs = tmp_path / "runs"
    invoke("train", small_config, "--runs-dir", runs, "-q")
    invoke("train", small_config, "--runs-dir", runs, "-q")
    invoke("train", small_config, "--runs-dir", runs, "-q", "--name", "custom")
    assert sorted(os.listdir(runs)) == ["custom", "small", "small-2"]
    result = invoke("train", small_config, "--runs-dir", runs, "--name", "../../x")
    assert result.exit_code == 2 and "--name '../../x'" in result.output


def test_plain_progress_and_quiet(tmp_path, small_config):
    result = invoke("train", small_config, "--runs-dir", tmp_path)
    lines = [line for line in result.output.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2 loss=") and "val_accuracy=" in lines[0]
    quiet = invoke("train", small_config, "--runs-dir", tmp_path, "--quiet")
    assert not [line for line in quiet.output.splitlines() if line.startswith("epoch ")]
    assert "test: loss=" in quiet.output
    assert "\x1b" not in result.output  # off a terminal (a cluster log): no control codes


def test_rich_progress_on_a_terminal(tmp_path, small_config):
    import io

    from rich.console import Console

    from kerascli import commands

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    commands.train(small_config, [], None, str(tmp_path), False, console)
    out = buf.getvalue()
    assert "epoch 2/2 loss=" in out and "accuracy" in out and "split" in out


def test_evaluate_reproduces_summary(trained):
    summary = json.loads((trained / "summary.json").read_text())
    result = invoke("evaluate", trained, "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["accuracy"] == pytest.approx(summary["evaluation"]["test"]["accuracy"], abs=1e-12)
    assert got["loss"] == pytest.approx(summary["evaluation"]["test"]["loss"], rel=1e-6)
    val = json.loads(invoke("evaluate", trained / "checkpoints" / "best.npz", "--split", "val", "--json").stdout)
    assert val["accuracy"] == pytest.approx(summary["evaluation"]["val"]["accuracy"])
    text = invoke("evaluate", trained, "--checkpoint", "last")
    assert text.exit_code == 0 and "test: loss=" in text.output


def test_predict_outputs(trained, tmp_path):
    from kerascli.data.datasets import SyntheticClassification

    x, y = SyntheticClassification.load({"samples": 120, "features": 6, "classes": 3, "spread": 1.0, "data_seed": 0})
    np.save(tmp_path / "x.npy", x)
    result = invoke("predict", trained, tmp_path / "x.npy", "-o", tmp_path / "p.npy")
    assert result.exit_code == 0, result.output
    probs = np.load(tmp_path / "p.npy")
    assert probs.shape == (120, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    invoke("predict", trained, tmp_path / "x.npy", "-o", tmp_path / "c.npy", "--classes")
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), probs.argmax(axis=1))
    invoke("predict", trained, tmp_path / "x.npy", "-o", tmp_path / "p.csv")
    rows = list(csv.reader(open(tmp_path / "p.csv")))
    assert rows[0] == ["class", "prob_0", "prob_1", "prob_2"] and len(rows) == 121
    # a CSV input with the label column present: the training label column is dropped
    with open(tmp_path / "in.csv", "w") as f:
        f.write(",".join([f"f{i}" for i in range(6)] + ["label"]) + "\n")
        for row, label in zip(x, y):
            f.write(",".join(repr(float(v)) for v in row) + f",{label}\n")
    invoke("predict", trained, tmp_path / "in.csv", "-o", tmp_path / "c2.npy", "--classes")
    np.testing.assert_array_equal(np.load(tmp_path / "c2.npy"), probs.argmax(axis=1))


def test_predict_bad_inputs(trained, tmp_path):
    np.save(tmp_path / "wide.npy", np.zeros((3, 7)))
    result = invoke("predict", trained, tmp_path / "wide.npy", "-o", tmp_path / "p.npy")
    assert result.exit_code == 2 and "samples have shape (7,)" in result.output
    np.save(tmp_path / "nan.npy", np.array([[0.0] * 6, [np.nan] * 6]))
    result = invoke("predict", trained, tmp_path / "nan.npy", "-o", tmp_path / "p.npy")
    assert result.exit_code == 2 and "NaN or Inf (first in row 1)" in result.output
    np.save(tmp_path / "str.npy", np.array([["a"] * 6]))
    result = invoke("predict", trained, tmp_path / "str.npy", "-o", tmp_path / "p.npy")
    assert result.exit_code == 2 and "must be numeric" in result.output
    result = invoke("predict", trained, tmp_path / "none.npy", "-o", tmp_path / "p.npy")
    assert result.exit_code == 2 and "input file not found" in result.output
    result = invoke("predict", trained, tmp_path / "wide.npy", "-o", tmp_path / "p.txt")
    assert result.exit_code == 2 and "must end in .npy, .csv or .npz" in result.output
    assert not (tmp_path / "p.npy").exists()


def test_summary_and_validate(small_config):
    result = invoke("summary", small_config)
    assert result.exit_code == 0 and "dense_1 (Dense)" in result.output and "Total params: 83" in result.output
    result = invoke("validate", small_config, "--set", "train.epochs=3")
    assert result.exit_code == 0 and "OK" in result.output and "83 params" in result.output


def _corrupt_weights(tmp_path):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(b"PK\x03\x04 broken")
    return SMALL_MLP.replace("compile:", f"  weights: {path}\ncompile:")


def _wrong_weights(tmp_path):
    path = tmp_path / "wrong.npz"
    np.savez(path, **{"dense/kernel": np.zeros((2, 2))})
    return SMALL_MLP.replace("compile:", f"  weights: {path}\ncompile:")


# name -> (config text, or a function of tmp_path giving it, or None for a missing file; expected message)
BAD_CASES = {
    "missing file": (None, "config file not found"),
    "yaml error": (SMALL_MLP + "  - [unclosed\n", "YAML syntax error"),
    "unknown key": (SMALL_MLP.replace("epochs:", "epocs:"), "unknown key 'epocs'; did you mean 'epochs'?"),
    "wrong type": (SMALL_MLP.replace("units: 8", "units: [8]"), "expected an integer"),
    "range": (SMALL_MLP.replace("batch_size: 16", "batch_size: 0"), "must be >= 1"),
    "unknown layer": (SMALL_MLP.replace("type: Dropout", "type: Droput"), "did you mean 'Dropout'?"),
    "unknown optimizer": (SMALL_MLP.replace("optimizer: adam", "optimizer: adamw2"), "unknown optimizer"),
    "unknown loss": (SMALL_MLP.replace("loss: sparse_categorical_crossentropy", "loss: hingee"),
                     "unknown loss 'hingee'; did you mean 'hinge'?"),
    "shapes": (SMALL_MLP.replace("- {type: Dropout, rate: 0.1}", "- {type: Conv2D, filters: 2, kernel_size: 3}"),
               "expects input of shape (height, width, channels), got (8,)"),
    "label/output mismatch": (SMALL_MLP.replace("units: 3, activation: softmax", "units: 2, activation: softmax"),
                              "labels range over 0..2 but the model's output has 2 units"),
    "missing data file": (lambda tmp_path: SMALL_MLP.replace(
        "dataset: synthetic_classification, samples: 120, features: 6, classes: 3",
        f"dataset: npz, path: {tmp_path}/nope.npz"), "data file not found"),
    "corrupt weights": (_corrupt_weights, "not a readable .npz"),
    "weights mismatch": (_wrong_weights, "'dense/kernel' for layer 'dense' has shape (2, 2), the model expects (6, 8)"),
    "metric of another shape": (SMALL_MLP.replace("metrics: [accuracy]", "metrics: [accuracy, mae]"),
                                "metric 'mean_absolute_error' compares predictions with targets of the same shape"),
    "output not a vector": (SMALL_MLP.replace("input_shape: [6]", "input_shape: [2, 3]"),
                            "losses need one vector per sample"),
    # 2**96 weights: a weight count in int64 wraps around to 0 and would pass the limit
    "weight count overflow": (SMALL_MLP.replace("input_shape: [6]", "input_shape: [16777216, 16777216, 16777216]")
                              .replace("{type: Dense, units: 8, activation: relu}",
                                       "{type: Conv2D, filters: 16777216, kernel_size: 16777216}"),
                              "the model has 79,228,162,514,264,337,593,"),
    # a tall kernel: few weights and a small output, but 4.8 GB of patches for each image
    "convolution patches": (SMALL_MLP.replace("input_shape: [6]", "input_shape: [100000, 3000, 4]")
                            .replace("{type: Dense, units: 8, activation: relu}",
                                     "{type: Conv2D, filters: 1, kernel_size: [100000, 1]}")
                            .replace("{type: Dropout, rate: 0.1}", "{type: Flatten}"),
                            "GiB for its patches (all threads)"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_exits_2_with_one_message_and_no_run_dir(case, tmp_path, write_config):
    text, needle = BAD_CASES[case]
    if callable(text):
        text = text(tmp_path)
    path = str(tmp_path / "missing.yaml") if text is None else write_config(text)
    runs = tmp_path / "runs"
    for command in ("train", "validate"):
        args = [command, path] + (["--runs-dir", runs] if command == "train" else [])
        result = invoke(*args)
        assert result.exit_code == 2, (case, result.output)
        assert needle in result.output, (case, result.output)
        assert "Traceback" not in result.output
        assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert not runs.exists() or not os.listdir(runs)


@pytest.mark.parametrize("args", [["--debug", "train", "{missing}"], ["train", "{missing}", "--debug"],
                                  ["validate", "--debug", "{missing}"]])
def test_debug_adds_the_traceback_and_keeps_the_exit_code(tmp_path, args):
    argv = [a.format(missing=tmp_path / "none.yaml") for a in args]
    out = subprocess.run([sys.executable, "-m", "kerascli", *argv], capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback (most recent call last)" in out.stderr
    assert out.stderr.rstrip().splitlines()[-1].startswith("error: config file not found")
    plain = subprocess.run([sys.executable, "-m", "kerascli", *[a for a in argv if a != "--debug"]],
                           capture_output=True, text=True)
    assert plain.returncode == 2 and plain.stderr.count("\n") == 1 and "Traceback" not in plain.stderr


def test_evaluate_errors(tmp_path):
    result = invoke("evaluate", tmp_path / "nothing")
    assert result.exit_code == 2 and "no run directory or checkpoint" in result.output
    result = invoke("evaluate", tmp_path)
    assert result.exit_code == 2 and "not a run directory" in result.output


# ------------------------------------------------------------------ first-hour paper cuts
@pytest.mark.parametrize("file_name,run_name", [("2024-exp.yaml", "2024-exp"), ("my config.yaml", "my_config")])
def test_any_config_file_name_trains(tmp_path, file_name, run_name):
    path = tmp_path / file_name
    path.write_text(SMALL_MLP.replace("name: small\n", ""))
    result = invoke("train", path, "--runs-dir", tmp_path / "runs", "-q", "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    assert os.listdir(tmp_path / "runs") == [run_name]
    assert invoke("train", path, "--runs-dir", tmp_path / "runs", "-q", "--name", "2nd-try",
                  "--set", "train.epochs=1").exit_code == 0


def test_threads_mistake_names_the_threads_option(small_config, tmp_path):
    result = invoke("train", small_config, "--runs-dir", tmp_path, "--threads", "100000")
    assert result.exit_code == 2 and result.output.startswith("error: --threads 100000: train.threads: must be <= 1024")


def test_a_split_that_rounds_to_nothing_is_an_error(small_config, tmp_path):
    result = invoke("validate", small_config, "--set", "data.validation_split=0.001")
    assert result.exit_code == 2
    assert "data.validation_split: 0.001 of 120 samples rounds to 0 samples; use at least 0.0042" in result.output


def test_one_hot_targets_of_the_wrong_width(tmp_path, write_config):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 6)), y=np.eye(4)[[0, 1, 2, 3]])
    text = SMALL_MLP.replace("dataset: synthetic_classification, samples: 120, features: 6, classes: 3",
                             f"dataset: npz, path: {tmp_path / 'd.npz'}").replace(
        "validation_split: 0.2, test_split: 0.2", "").replace("sparse_categorical_crossentropy",
                                                              "categorical_crossentropy")
    result = invoke("validate", write_config(text))
    assert result.exit_code == 2
    assert "one-hot targets have 4 columns but the model's output has 3 units; set the last layer's units to 4" \
        in result.output


def test_files_follow_the_umask(small_config, tmp_path):
    old = os.umask(0o022)
    try:
        assert invoke("train", small_config, "--runs-dir", tmp_path / "runs", "-q").exit_code == 0
        run = tmp_path / "runs" / "small"
        modes = {p.name: p.stat().st_mode & 0o777 for p in [run, *run.rglob("*")]}
        np.save(tmp_path / "x.npy", np.zeros((2, 6)))
        assert invoke("predict", run, tmp_path / "x.npy", "-o", tmp_path / "p.csv").exit_code == 0
    finally:
        os.umask(old)
    assert {m for name, m in modes.items() if (run / name).is_dir() or name in ("small", "checkpoints")} == {0o755}
    assert {m for name, m in modes.items() if name not in ("small", "checkpoints")} == {0o644}, modes
    assert (tmp_path / "p.csv").stat().st_mode & 0o777 == 0o644


def test_predict_of_a_sigmoid_model_names_the_probability_of_class_1(tmp_path, write_config):
    x = np.random.default_rng(0).normal(size=(40, 6))
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(float))
    text = SMALL_MLP.replace("dataset: synthetic_classification, samples: 120, features: 6, classes: 3",
                             f"dataset: npz, path: {tmp_path / 'd.npz'}").replace(
        "units: 3, activation: softmax", "units: 1, activation: sigmoid").replace(
        "sparse_categorical_crossentropy", "binary_crossentropy")
    assert invoke("train", write_config(text), "--runs-dir", tmp_path / "runs", "-q").exit_code == 0
    np.save(tmp_path / "x.npy", x)
    assert invoke("predict", tmp_path / "runs" / "small", tmp_path / "x.npy", "-o", tmp_path / "p.csv").exit_code == 0
    rows = list(csv.reader(open(tmp_path / "p.csv")))
    assert rows[0] == ["class", "prob_1"]
    assert all((float(p) > 0.5) == (c == "1") for c, p in rows[1:])


def test_predict_refuses_to_overwrite_its_input(trained, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 6)))
    before = (tmp_path / "x.npy").read_bytes()
    result = invoke("predict", trained, tmp_path / "x.npy", "-o", tmp_path / "x.npy")
    assert result.exit_code == 2 and "is the input file; writing there would destroy it" in result.output
    assert (tmp_path / "x.npy").read_bytes() == before
    (tmp_path / "in.csv").write_text("a;b;c;d;e;f\n1;2;3;4;5;6\n")
    result = invoke("predict", trained, tmp_path / "in.csv", "-o", tmp_path / "p.npy")
    assert result.exit_code == 2 and "the file looks ';'-separated: set --delimiter ';'" in result.output
    result = invoke("predict", trained, tmp_path / "in.csv", "-o", tmp_path / "p.npy", "--delimiter", ";")
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------ the terminal display
def terminal_run(tmp_path, small_config, width, *overrides):
    import io

    from rich.console import Console

    from kerascli import commands

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=width, height=24)
    commands.train(small_config, list(overrides), None, str(tmp_path), False, console)
    return buf.getvalue()


@pytest.mark.parametrize("width", [120, 80, 40])
def test_terminal_display_prints_each_finished_epoch_once_with_its_number(tmp_path, small_config, width):
    out = terminal_run(tmp_path, small_config, width, "train.epochs=60")  # more epochs than rows
    lines = out.replace("\x1b[K", "").replace("\r", "\n").splitlines()
    finished = [line for line in lines if line.startswith("epoch ")]
    assert [int(line.split()[1].split("/")[0]) for line in finished] == list(range(1, 61))
    assert all(line.startswith(f"epoch {i}/60 loss=") for i, line in enumerate(finished, 1))
    # the live bar is one line rewritten in place, never wider than the terminal
    live = [part for part in out.split("\r") if part.startswith("Epoch ")]
    assert live and all(len(part.split("\x1b[K")[0]) < width for part in live)
    assert "test" in out and "accuracy" in out


def test_terminal_display_redraws_at_most_ten_times_a_second(monkeypatch):
    import io

    from rich.console import Console

    from kerascli.ui import progress

    clock = iter(i * 0.001 for i in range(10**6))  # one batch per millisecond
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    buf = io.StringIO()
    bar = progress.TerminalProgress(Console(file=buf, force_terminal=True, width=100), epochs=1)
    bar.on_epoch_begin(1, 2000)
    for step in range(1, 2001):
        bar.on_batch_end(step, {"loss": 1.0 / step})
    bar.on_epoch_end(1, {"loss": 0.5})
    redraws = buf.getvalue().count("\r") - 1  # less the clearing before the epoch line
    assert 10 <= redraws <= 2000 * 0.001 * 10 + 2  # about 2 s of batches at 10 Hz, and the first
    assert buf.getvalue().endswith("\r\x1b[Kepoch 1/1 loss=0.5000\n")
    drawn = [int(n) for n in re.findall(r"\] (\d+)/2000 ", buf.getvalue())]
    assert drawn == sorted(drawn) and drawn[-1] > 1800 and "ETA 0s" in buf.getvalue()


def test_first_run_says_kernels_are_compiling(tmp_path):
    import io
    import types

    from rich.console import Console

    from kerascli.ops import get_ops
    from kerascli.ui.progress import TerminalProgress

    def kernel(index):
        return types.SimpleNamespace(py_func=None, _cache=types.SimpleNamespace(
            _cache_file=types.SimpleNamespace(_index_path=str(index))))

    (tmp_path / "k.nbi").write_text("")
    ops = get_ops("cpu")

    def on_disk(**kernels):
        return type(ops).kernels_on_disk(types.SimpleNamespace(kernels={"family": types.SimpleNamespace(**kernels)}))

    assert on_disk(a=kernel(tmp_path / "k.nbi"), b=kernel(tmp_path / "none"))
    assert not on_disk(a=kernel(tmp_path / "none"))
    assert get_ops("reference").kernels_on_disk()
    buf = io.StringIO()
    bar = TerminalProgress(Console(file=buf, force_terminal=True, width=120), epochs=3, compiling=True)
    bar.on_epoch_begin(1, 10)
    assert buf.getvalue() == "\rEpoch 1/3 0/10 compiling kernels (first run only, cached afterwards)\x1b[K"
    for step in range(1, 11):
        bar.on_batch_end(step, {"loss": 1.0})
    assert buf.getvalue().endswith("10/10 compiling kernels (first run only) loss=1.0000\x1b[K")  # validation next
    bar.on_epoch_end(1, {"loss": 1.0})
    bar.on_epoch_begin(2, 10)
    bar.last_draw = 0  # due for a redraw
    bar.on_batch_end(1, {"loss": 1.0})
    assert "compiling" not in buf.getvalue().rsplit("epoch 1/3", 1)[1] and "ETA" in buf.getvalue()


def test_evaluate_on_an_outside_file(tmp_path, small_config):
    """--data FILE: the test split written to an .npz, a .csv and an .npy pair gives the split's results."""
    import json as _json

    from kerascli.commands import load_spec
    from kerascli.train.session import build_session, load_data

    runs = tmp_path / "runs"
    assert invoke("train", small_config, "--runs-dir", runs, "--quiet").exit_code == 0
    expected = _json.loads(invoke("evaluate", runs / "small", "--json").stdout)
    session = build_session(load_spec(small_config, []))
    test = load_data(session)["test"]
    np.savez(tmp_path / "outside.npz", features=test.x, labels=test.y)
    np.save(tmp_path / "x.npy", test.x)
    np.save(tmp_path / "y.npy", test.y)
    header = ",".join([f"f{i}" for i in range(test.x.shape[1])] + ["label"])
    rows = [",".join([repr(float(v)) for v in x] + [str(int(t))]) for x, t in zip(test.x, test.y)]
    (tmp_path / "outside.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    for args in (["--data", tmp_path / "outside.npz", "--key", "features", "--labels-key", "labels"],
                 ["--data", tmp_path / "outside.csv"],
                 ["--data", tmp_path / "x.npy", "--labels", tmp_path / "y.npy"]):
        result = invoke("evaluate", runs / "small", "--json", *args)
        assert result.exit_code == 0, result.output
        got = _json.loads(result.stdout)
        assert got["data"] == str(args[1])
        for name in ("loss", "accuracy"):
            assert got[name] == pytest.approx(expected[name], rel=1e-5)
    bad = invoke("evaluate", runs / "small", "--data", tmp_path / "x.npy")
    assert bad.exit_code == 2 and "--labels" in bad.output
    np.savez(tmp_path / "wrong.npz", x=np.zeros((3, 5)), y=np.zeros(3))
    bad = invoke("evaluate", runs / "small", "--data", tmp_path / "wrong.npz")
    assert bad.exit_code == 2 and "input_shape" in bad.output and bad.output.count("\n") == 1
