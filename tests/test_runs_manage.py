"""kerascli runs list / show / rm: each run's status (running by its held lock, completed, interrupted,
failed with its reason), numbers and summary, as a table or JSON; removal asks, and refuses a running run
or a folder that is not a run."""

from __future__ import annotations

import json
import os
import shutil

from click.testing import CliRunner
from conftest import SMALL_MLP

from kerascli.cli import cli
from kerascli.runs.lock import RunLock
from kerascli.runs.manage import STATUS_NAME, write_status


def train(runner, tmp_path, text, name):
    config = tmp_path / f"{name}.yaml"
    config.write_text(text.replace("name: small", f"name: {name}"))
    return runner.invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"])


def test_runs_are_listed_with_their_status_and_numbers(tmp_path):
    runner = CliRunner()
    assert train(runner, tmp_path, SMALL_MLP, "done").exit_code == 0
    diverging = SMALL_MLP.replace("optimizer: adam", "optimizer: {type: sgd, learning_rate: 1.0e+30}")
    assert train(runner, tmp_path, diverging, "broken").exit_code != 0
    runs = tmp_path / "runs"
    shutil.copytree(runs / "done", runs / "killed")
    os.remove(runs / "killed" / "summary.json")
    shutil.copytree(runs / "done", runs / "stopped")
    write_status(str(runs / "stopped"), "interrupted", "signal 15 (SIGTERM)")
    os.utime(runs / "stopped" / "summary.json", (1, 1))  # the marker is newer: a later resume was stopped
    shutil.copytree(runs / "done", runs / "live")
    (runs / "notes").mkdir()  # not a run: left out
    lock = RunLock(str(runs / "live")).acquire()
    try:
        result = runner.invoke(cli, ["runs", "list", "--runs-dir", str(runs), "--json"])
        assert result.exit_code == 0, result.output
        rows = {r["name"]: r for r in json.loads(result.stdout)}
        assert set(rows) == {"done", "broken", "killed", "stopped", "live"}
        assert {n: r["status"] for n, r in rows.items()} == {"done": "completed", "broken": "failed",
                                                             "killed": "interrupted", "stopped": "interrupted",
                                                             "live": "running"}
        assert "TrainingDiverged" in rows["broken"]["message"] and "SIGTERM" in rows["stopped"]["message"]
        assert rows["done"]["epochs"] == 2 and rows["done"]["monitor"] == "val_loss"
        summary = json.loads((runs / "done" / "summary.json").read_text())
        assert rows["done"]["best"] == summary["best_value"] and rows["done"]["wall_seconds"] > 0
        table = runner.invoke(cli, ["runs", "list", "--runs-dir", str(runs)])
        assert table.exit_code == 0 and "running" in table.output and "completed" in table.output
        result = runner.invoke(cli, ["runs", "rm", str(runs / "live"), "--yes"])
        assert result.exit_code == 2 and "training now" in result.output and (runs / "live").exists()
    finally:
        lock.release()
    assert json.loads(runner.invoke(cli, ["runs", "show", str(runs / "live"), "--json"]).stdout)["status"] == \
        "completed"


def test_show_and_remove(tmp_path):
    runner = CliRunner()
    assert train(runner, tmp_path, SMALL_MLP, "one").exit_code == 0
    run = tmp_path / "runs" / "one"
    result = runner.invoke(cli, ["runs", "show", str(run)])
    assert result.exit_code == 0 and "completed" in result.output and "config.yaml" in result.output
    assert "test: loss" in result.output
    info = json.loads(runner.invoke(cli, ["runs", "show", str(run), "--json"]).stdout)
    assert info["summary"]["name"] == "one" and info["config"].endswith("config.yaml")
    result = runner.invoke(cli, ["runs", "rm", str(run)], input="n\n")
    assert result.exit_code == 0 and "kept" in result.output and run.exists()
    result = runner.invoke(cli, ["runs", "rm", str(tmp_path)], input="y\n")
    assert result.exit_code == 2 and "not a run directory" in result.output and tmp_path.exists()
    result = runner.invoke(cli, ["runs", "rm", str(run)], input="y\n")
    assert result.exit_code == 0 and not run.exists()
    result = runner.invoke(cli, ["runs", "list", "--runs-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no runs directory" in result.output
    assert not (tmp_path / "runs" / STATUS_NAME).exists()


def test_compare_shows_what_differs_and_the_results(tmp_path):
    runner = CliRunner()
    assert train(runner, tmp_path, SMALL_MLP, "a").exit_code == 0
    assert train(runner, tmp_path, SMALL_MLP.replace("epochs: 2", "epochs: 3"), "b").exit_code == 0
    runs = tmp_path / "runs"
    result = runner.invoke(cli, ["runs", "compare", str(runs / "a"), str(runs / "b"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["runs"] == ["a", "b"] and out["status"] == ["completed", "completed"]
    assert out["config"] == {"name": ["a", "b"], "train.epochs": [2, 3]}
    for run, column in (("a", 0), ("b", 1)):
        evaluation = json.loads((runs / run / "summary.json").read_text())["evaluation"]
        assert out["results"]["test loss"][column] == evaluation["test"]["loss"]
    table = runner.invoke(cli, ["runs", "compare", str(runs / "a"), str(runs / "b")])
    assert table.exit_code == 0 and "train.epochs" in table.output and "test accuracy" in table.output
    one = runner.invoke(cli, ["runs", "compare", str(runs / "a")])
    assert one.exit_code == 2 and "two runs or more" in one.output
