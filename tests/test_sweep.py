"""kerascli sweep: the sweep file, the points of each method, the rules that stop bad trials, and whole
sweeps run, killed and rerun."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import CONFIGS

from kerascli.errors import ConfigError
from kerascli.sweep import (
    Dimension,
    Sweep,
    latin_hypercube,
    load_sweep,
    should_stop,
    sobol,
)

BASE = os.path.join(CONFIGS, "digits_mlp.yaml")


def sweep_file(tmp_path, text: str, name: str = "sweep.yaml") -> str:
    path = tmp_path / name
    path.write_text(f"config: {BASE}\n" + textwrap.dedent(text))
    return str(path)


def test_a_grid_is_every_combination_in_order(tmp_path):
    sweep = load_sweep(sweep_file(tmp_path, """
        parameters:
          model.layers[1].units: [32, 64]
          compile.optimizer.learning_rate: {values: [0.1, 0.01, 0.001]}
    """))
    assert sweep.name == "sweep" and sweep.method == "grid"
    assert [tuple(t.values()) for t in sweep.trials] == [(32, 0.1), (32, 0.01), (32, 0.001), (64, 0.1), (64, 0.01),
                                                         (64, 0.001)]
    assert sweep.overrides(4) == ["model.layers[1].units=64", "compile.optimizer.learning_rate=0.01"]


@pytest.mark.parametrize("method", ["random", "sobol", "latin_hypercube"])
def test_drawn_points_lie_in_their_ranges_and_repeat_with_the_seed(tmp_path, method):
    text = f"""
        method: {method}
        trials: 16
        seed: 3
        parameters:
          compile.optimizer.learning_rate: {{min: 1.0e-4, max: 1.0e-1, scale: log}}
          model.layers[1].units: {{min: 16, max: 128}}
          model.layers[2].rate: {{min: 0.0, max: 0.5}}
          compile.optimizer.type: [adam, sgd, rmsprop]
    """
    a, b = load_sweep(sweep_file(tmp_path, text)), load_sweep(sweep_file(tmp_path, text, "again.yaml"))
    assert a.trials == b.trials and len(a.trials) == 16
    for t in a.trials:
        assert 1e-4 <= t["compile.optimizer.learning_rate"] <= 1e-1
        assert isinstance(t["model.layers[1].units"], int) and 16 <= t["model.layers[1].units"] <= 128
        assert 0.0 <= t["model.layers[2].rate"] <= 0.5
        assert t["compile.optimizer.type"] in ("adam", "sgd", "rmsprop")
    assert len({t["compile.optimizer.type"] for t in a.trials}) == 3


def test_sobol_is_scipys_unscrambled_sequence():
    qmc = pytest.importorskip("scipy.stats.qmc")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that 100 is not a power of 2
        expected = qmc.Sobol(d=16, scramble=False).random(100)
    np.testing.assert_array_equal(sobol(100, 16), expected)


def test_sobol_first_points_by_hand():
    # dimension 1: van der Corput (0, 1/2, 3/4, 1/4, ...); dimension 2: (0, 1/2, 1/4, 3/4, ...)
    np.testing.assert_array_equal(sobol(4, 2), [[0, 0], [0.5, 0.5], [0.75, 0.25], [0.25, 0.75]])


def test_latin_hypercube_puts_one_point_in_each_stratum():
    points = latin_hypercube(10, 3, np.random.default_rng(0))
    for d in range(3):
        assert sorted(np.floor(points[:, d] * 10).astype(int)) == list(range(10))


@pytest.mark.parametrize("u, expected", [(0.0, 16), (0.999999, 128), (0.5, 72)])
def test_an_int_range_includes_both_ends(u, expected):
    assert Dimension("k", low=16, high=128, integer=True).at(u) == expected


def test_a_log_range_is_even_in_the_exponent():
    d = Dimension("k", low=1e-4, high=1e-2, log=True)
    assert math.isclose(d.at(0.5), 1e-3) and math.isclose(d.at(0.0), 1e-4)


@pytest.mark.parametrize("text, message", [
    ("parameters: {a.b: [1]}\nmethods: grid\n", "sweep.yaml:3: methods: unknown key 'methods'"),
    ("parameters:\n  lr: {min: 0.1, max: 1.0}\n", "a grid takes lists of values"),
    ("method: random\nparameters: {lr: [1, 2]}\n", "method random needs trials"),
    ("method: annealing\nparameters: {lr: [1]}\n", "unknown method 'annealing'"),
    ("method: random\ntrials: 2\nparameters:\n  lr: {min: 0.0, max: 1.0, scale: log}\n", "a log scale needs min > 0"),
    ("parameters:\n  lr: {min: 1.0}\n", "a range needs min and max"),
    ("parameters: {lr: [1]}\nearly_stopping: {rule: hyperband}\n", "early_stopping needs rule: median or "
                                                                      "successive_halving"),
])
def test_a_bad_sweep_file_is_one_clear_error(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_sweep(sweep_file(tmp_path, text))
    assert message in str(err.value)


def _sweep(rule, **kw):
    return Sweep("s.yaml", "s", "c.yaml", "grid", 0, "val_loss", "min", [], [], rule=rule, **kw)


def test_the_median_rule():
    sweep = _sweep("median", grace_epochs=2, min_trials=2)
    histories = {0: [1.0, 0.5, 0.4], 1: [1.0, 0.6, 0.5], 2: [1.2, 0.9]}
    assert should_stop(sweep, 2, histories, "min").startswith("median rule: best 0.9 by epoch 2 is worse than "
                                                              "the median 0.55 of 2 other trials")
    assert should_stop(sweep, 0, histories, "min") is None
    assert should_stop(sweep, 2, {0: [1.0, 0.5], 2: [1.2, 0.9]}, "min") is None  # too few others
    assert should_stop(sweep, 2, {0: [1.0], 1: [1.0], 2: [1.2]}, "min") is None  # within the grace epochs
    # the best so far counts, not the last epoch's: 0.3 at epoch 1 beats the median
    assert should_stop(sweep, 2, {0: [1.0, 0.5], 1: [1.0, 0.6], 2: [0.3, 0.9]}, "min") is None
    assert should_stop(sweep, 2, {0: [0.9, 0.95], 1: [0.9, 0.96], 2: [0.5, 0.6]}, "max") is not None


def test_successive_halving_keeps_the_best_third_at_each_rung():
    sweep = _sweep("successive_halving", grace_epochs=1, min_trials=3, reduction_factor=3)
    others = {k: [0.1 * k] for k in range(5)}  # 0.0 .. 0.4 at the first rung (epoch 1)
    assert should_stop(sweep, 5, {**others, 5: [0.05]}, "min") is None  # 2nd best of 6: among the best 2
    assert "not among the best 2 of 6" in should_stop(sweep, 5, {**others, 5: [0.25]}, "min")
    assert should_stop(sweep, 5, {**others, 5: [0.25, 0.2]}, "min") is None  # epoch 2 is no rung
    assert should_stop(sweep, 0, {0: [0.5, 0.4, 0.3], 1: [0.5, 0.4, 0.1], 2: [0.5, 0.4, 0.2]}, "min")  # rung 3


def kerascli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "kerascli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def leaderboard(folder) -> list[dict]:
    with open(os.path.join(folder, "sweep.csv")) as f:
        return list(csv.DictReader(f))


GRID = """
    name: grid6
    metric: val_accuracy
    set: {train.epochs: 8, train.batch_size: 16}
    parameters:
      model.layers[1].units: [16, 32, 48]
      compile.optimizer.learning_rate: [0.003, 0.001]
"""


def test_a_killed_sweep_reruns_only_what_did_not_finish(tmp_path):
    path, runs = sweep_file(tmp_path, GRID), tmp_path / "runs"
    folder = runs / "grid6"
    proc = kerascli("sweep", path, "--workers", "2", "--runs-dir", runs)
    deadline = time.monotonic() + 120
    while not (folder / "trial-000" / "summary.json").exists():  # the first trial finished
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.kill()  # SIGKILL: its trials are told (SIGTERM), write a checkpoint and end
    proc.wait()
    deadline = time.monotonic() + 60
    while any((folder / f"trial-{k:03d}" / ".lock").exists() and _locked(folder / f"trial-{k:03d}")
              for k in range(6)):
        assert time.monotonic() < deadline, "trials still running 60 s after the sweep was killed"
        time.sleep(0.1)
    finished = {k for k in range(6) if (folder / f"trial-{k:03d}" / "summary.json").exists()}
    assert 0 in finished and len(finished) < 6
    before = {k: os.path.getmtime(folder / f"trial-{k:03d}" / "summary.json") for k in finished}
    # trials stopped mid-way wrote a step checkpoint: the rerun resumes them from it
    cut = {k for k in range(6) if k not in finished and (folder / f"trial-{k:03d}" / "checkpoints").is_dir() and
           any(n.startswith("step-") for n in os.listdir(folder / f"trial-{k:03d}" / "checkpoints"))}
    rerun = kerascli("sweep", path, "--workers", "2", "--runs-dir", runs)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"{len(finished)} finished or stopped, {6 - len(finished)} to run" in out
    assert {k: os.path.getmtime(folder / f"trial-{k:03d}" / "summary.json") for k in finished} == before
    for k in cut:
        summary = json.loads((folder / f"trial-{k:03d}" / "summary.json").read_text())
        assert "step-" in summary["resumed_from"]
    rows = leaderboard(folder)
    assert sorted(int(r["trial"]) for r in rows) == list(range(6))
    assert {r["status"] for r in rows} == {"completed"}
    values = [float(r["val_accuracy"]) for r in rows]
    assert values == sorted(values, reverse=True)


def _locked(run) -> bool:
    from kerascli.runs.manage import lock_held

    return lock_held(str(run))


def test_the_median_rule_stops_a_hopeless_trial(tmp_path):
    """One worker: trials run one after the other, so the last (a learning rate that cannot learn in time)
    meets the median of three finished ones."""
    path = sweep_file(tmp_path, """
        name: pruned
        metric: val_accuracy
        set: {train.epochs: 60, train.batch_size: 16}
        parameters:
          compile.optimizer.learning_rate: [0.003, 0.002, 0.001, 1.0e-7]
        early_stopping: {rule: median, grace_epochs: 2, min_trials: 3}
    """)
    proc = kerascli("sweep", path, "--runs-dir", tmp_path / "runs")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "trial-003: stopped early (median rule" in out
    rows = {int(r["trial"]): r for r in leaderboard(tmp_path / "runs" / "pruned")}
    assert rows[3]["status"] == "stopped early" and int(rows[3]["epochs"]) < 60
    assert {rows[k]["status"] for k in range(3)} == {"completed"}
    status = subprocess.run([sys.executable, "-m", "kerascli", "sweep", "status", path, "--runs-dir",
                             tmp_path / "runs", "--json"], capture_output=True, text=True)
    assert json.loads(status.stdout)["counts"] == {"completed": 3, "stopped early": 1}
    # rerun: the stopped trial stays stopped
    again = kerascli("sweep", path, "--runs-dir", tmp_path / "runs")
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and "4 finished or stopped, 0 to run" in out


def test_one_trial_of_a_job_array(tmp_path):
    path = sweep_file(tmp_path, GRID.replace("train.epochs: 8", "train.epochs: 2"))
    proc = kerascli("sweep", path, "--trial", "4", "--runs-dir", tmp_path / "runs")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    folder = tmp_path / "runs" / "grid6"
    assert sorted(os.listdir(folder)) == [".sweep.csv.lock", "sweep.csv", "sweep.json", "trial-004"]
    rows = {int(r["trial"]): r["status"] for r in leaderboard(folder)}
    assert rows[4] == "completed" and {rows[k] for k in (0, 1, 2, 3, 5)} == {"pending"}
    config = (folder / "trial-004" / "config.yaml").read_text()
    assert "units: 48" in config and "learning_rate: 0.003" in config
    bad = kerascli("sweep", path, "--trial", "6", "--runs-dir", tmp_path / "runs")
    _, err = bad.communicate(timeout=60)
    assert bad.returncode == 2 and "--trial 6: the sweep has trials 0 to 5" in err


def test_a_trial_whose_config_is_wrong_is_named_before_anything_runs(tmp_path):
    path = sweep_file(tmp_path, "parameters:\n  model.layers[1].unitz: [8]\n")
    proc = kerascli("sweep", path, "--runs-dir", tmp_path / "runs")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "trial 0 (model.layers[1].unitz=8)" in err and "unknown key 'unitz'" in err
    assert not (tmp_path / "runs").exists()


def test_sigterm_to_a_sweep_stops_its_trials_with_checkpoints(tmp_path):
    path = sweep_file(tmp_path, GRID.replace("train.epochs: 8", "train.epochs: 400"))
    proc = kerascli("sweep", path, "--workers", "2", "--runs-dir", tmp_path / "runs")
    metrics = tmp_path / "runs" / "grid6" / "trial-000" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not metrics.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert "sweep stopped by SIGTERM: rerun the same command to go on" in out
    steps = os.listdir(tmp_path / "runs" / "grid6" / "trial-000" / "checkpoints")
    assert any(name.startswith("step-") for name in steps)


EXAMPLES = os.path.join(os.path.dirname(CONFIGS), "examples")


def test_the_slurm_examples_match_the_example_sweep():
    sweep = load_sweep(os.path.join(EXAMPLES, "sweeps", "digits.yaml"))
    array = open(os.path.join(EXAMPLES, "slurm", "sweep_array.sbatch")).read()
    assert f"#SBATCH --array=0-{len(sweep.trials) - 1}%" in array
    assert "examples/sweeps/digits.yaml --trial \"$SLURM_ARRAY_TASK_ID\"" in array
    for script in ("train.sbatch", "sweep_array.sbatch"):
        path = os.path.join(EXAMPLES, "slurm", script)
        assert subprocess.run(["bash", "-n", path]).returncode == 0
    train = open(os.path.join(EXAMPLES, "slurm", "train.sbatch")).read()
    config = train.split("kerascli train ")[1].split()[0]
    assert os.path.isfile(os.path.join(os.path.dirname(CONFIGS), config))
