"""Resume == uninterrupted, bit for bit: after SIGKILL (also mid checkpoint write), SIGTERM, or a damaged checkpoint."""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from kerascli.cli import cli

CONFIG = """
name: rel
seed: 5
data: {dataset: synthetic_classification, samples: 240, features: 8, classes: 3, validation_split: 0.2}
model:
  input_shape: [8]
  layers:
    - {type: Dense, units: 16, activation: relu}
    - {type: Dropout, rate: 0.3}
    - {type: BatchNormalization}
    - {type: Dense, units: 3, activation: softmax}
compile: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}
train: {epochs: 4, batch_size: 16, deterministic: true, threads: 1}  # no note of other processes when tests run side by side
checkpoint: {every_steps: 1, keep: 3}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "rel.yaml"
    path.write_text(CONFIG)
    return str(path)


@pytest.fixture(scope="module")
def uninterrupted(config, tmp_path_factory):
    runs = tmp_path_factory.mktemp("full")
    result = CliRunner().invoke(cli, ["train", config, "--runs-dir", str(runs), "-q"])
    assert result.exit_code == 0, result.output
    return final_state(runs / "rel")


def final_state(run):
    """Weights, optimizer state and RNG states of the finished run (everything but timings)."""
    with np.load(run / "checkpoints" / "last.npz") as z:
        return {k: z[k].copy() for k in z.files if not k.startswith(("_state", "_checksum"))}


def assert_identical(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def metrics_rows(run):
    rows = (run / "metrics.csv").read_text().splitlines()
    return [",".join(r.split(",")[:-1]) for r in rows]  # all but the seconds column


def start(config, runs):
    return subprocess.Popen(
        [sys.executable, "-m", "kerascli", "train", config, "--runs-dir", str(runs), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for(predicate, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.001)
    raise AssertionError("timed out")


def step_files(run):
    folder = run / "checkpoints"
    return [f for f in os.listdir(folder) if f.startswith("step-")] if folder.exists() else []


def resume(config, runs):
    result = CliRunner().invoke(cli, ["train", config, "--runs-dir", str(runs), "-q", "--resume"])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("kill_after_steps", [1, 7, 31, random.Random(20261127).randint(2, 47)])
def test_sigkill_then_resume_is_bit_identical(config, uninterrupted, tmp_path, kill_after_steps):
    run = tmp_path / "rel"
    proc = start(config, tmp_path)
    seen = wait_for(lambda: any(int(f[5:14]) >= kill_after_steps for f in step_files(run)), proc)
    assert seen, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resume(config, tmp_path)
    assert_identical(final_state(run), uninterrupted)


def test_sigkill_during_a_checkpoint_write(config, uninterrupted, tmp_path):
    run = tmp_path / "rel"
    folder = run / "checkpoints"
    proc = start(config, tmp_path)

    def writing():
        return folder.exists() and len(step_files(run)) >= 3 and any(f.endswith(".tmp") for f in os.listdir(folder))

    assert wait_for(writing, proc), "never saw a checkpoint being written"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resume(config, tmp_path)
    assert not [f for f in os.listdir(folder) if f.endswith(".tmp")]  # the half-written file was cleared
    assert_identical(final_state(run), uninterrupted)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGUSR1, 138)])
def test_signal_checkpoints_and_exits(config, uninterrupted, tmp_path, sig, code):
    run = tmp_path / "rel"
    proc = start(config, tmp_path)
    assert wait_for(lambda: len(step_files(run)) >= 2, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"stopped by {sig.name}" in err and f"resume with: kerascli resume {run}\n" in err
    assert "Traceback" not in err and err.count("\n") == 1
    hint = err.rsplit("resume with: kerascli ", 1)[1].split()
    result = CliRunner().invoke(cli, hint + ["-q"])  # the printed command, as printed
    assert result.exit_code == 0, result.output
    assert_identical(final_state(run), uninterrupted)


def test_same_config_and_seed_give_bit_identical_weights(config, uninterrupted, tmp_path):
    proc = start(config, tmp_path)  # another process, same machine and thread count
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert_identical(final_state(tmp_path / "rel"), uninterrupted)


def weight_byte_offset(path, key):
    """The file offset of a byte in the middle of the stored array ``key`` (uncompressed .npz member)."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = z.getinfo(key + ".npy")
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", f.read(4))
    start = info.header_offset + 30 + name_length + extra_length
    return start + info.file_size - info.file_size // 4  # inside the data, past the .npy header


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_newest_checkpoint_falls_back(config, uninterrupted, tmp_path, damage):
    run = tmp_path / "rel"
    proc = start(config, tmp_path)
    assert wait_for(lambda: len(step_files(run)) >= 3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    newest = run / "checkpoints" / max(step_files(run))
    data = bytearray(newest.read_bytes())
    if damage == "truncate":
        newest.write_bytes(bytes(data[: len(data) // 2]))
    else:  # one bit of a weight's value: the zip is intact, the content is not
        data[weight_byte_offset(newest, "dense/kernel")] ^= 0x01
        newest.write_bytes(bytes(data))
    result = resume(config, tmp_path)
    assert "skipping a damaged checkpoint" in result.output and newest.name in result.output
    assert_identical(final_state(run), uninterrupted)


def test_resume_across_epochs_and_metrics_history(config, uninterrupted, tmp_path):
    result = CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path), "-q", "--set", "train.epochs=2"])
    assert result.exit_code == 0, result.output
    resume(config, tmp_path)
    assert_identical(final_state(tmp_path / "rel"), uninterrupted)
    full = tmp_path / "full"
    CliRunner().invoke(cli, ["train", config, "--runs-dir", str(full), "-q"])
    assert metrics_rows(tmp_path / "rel") == metrics_rows(full / "rel")


def test_resume_auto_starts_fresh_and_plain_resume_needs_a_run(config, tmp_path):
    result = CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path), "-q", "--resume"])
    assert result.exit_code == 2 and "nothing to resume" in result.output
    result = CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path), "-q", "--resume", "auto",
                                      "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path)) == ["rel"]
    result = CliRunner().invoke(cli, ["resume", str(tmp_path / "rel"), "-q"])
    assert result.exit_code == 0, result.output
    # a job killed before its first checkpoint: the requeued one starts over in the same directory
    for name in os.listdir(tmp_path / "rel" / "checkpoints"):
        os.unlink(tmp_path / "rel" / "checkpoints" / name)
    result = CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path), "-q", "--resume", "auto",
                                      "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path)) == ["rel"]


def test_resume_refuses_a_different_config(config, tmp_path):
    CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path), "-q", "--set", "train.epochs=1"])
    result = CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path), "-q", "--resume",
                                      "--set", "model.layers[0].units=8"])
    assert result.exit_code == 2 and "differs from the run being resumed at model.layers.0.units" in result.output


def test_deterministic_resume_insists_on_the_thread_count(config, tmp_path):
    CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path), "-q", "--set", "train.epochs=1",
                             "--threads", "2"])
    result = CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path), "-q", "--resume",
                                      "--threads", "1"])
    assert result.exit_code == 2 and "resume with --threads 2" in result.output
    from kerascli.train.threads import set_threads

    set_threads(0)


def test_nan_loss_stops_naming_the_step(tmp_path, write_config):
    path = write_config(CONFIG.replace("optimizer: adam", "optimizer: {type: sgd, learning_rate: 1.0e+30}")
                        .replace("checkpoint: {every_steps: 1, keep: 3}", ""))
    result = CliRunner().invoke(cli, ["train", path, "--runs-dir", str(tmp_path), "-q"])
    assert result.exit_code == 1
    assert "loss became nan at epoch" in result.output and "step" in result.output
    assert "Traceback" not in result.output


def test_step_checkpoints_keep_the_newest(config, tmp_path):
    CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path), "-q", "--set", "train.epochs=1"])
    steps = sorted(step_files(tmp_path / "rel"))
    assert len(steps) == 3 and steps[-1] == "step-000000012.npz"


DIVERGING = """
name: nan
seed: 1
data: {dataset: synthetic_regression, samples: 1000, features: 10, validation_split: 0.1}
model:
  input_shape: [10]
  layers:
    - {type: Dense, units: 1}
compile: {optimizer: {type: sgd, learning_rate: 0.9}, loss: mse}
train: {epochs: 10, batch_size: 32}
"""


def test_nan_rollback_lowers_the_learning_rate_and_finishes(tmp_path, write_config):
    # lr 0.9 is above 2 / (largest curvature of this least-squares problem), so the error grows by a
    # fixed factor per step and overflows after several epochs; 0.45 is below it and converges. Which
    # epoch overflows first can move by one with rounding (BLAS build, thread count): read it, not assume it.
    path = write_config(DIVERGING)
    result = CliRunner().invoke(cli, ["train", path, "--runs-dir", str(tmp_path / "a"), "-q"])
    assert result.exit_code == 1, result.output
    diverged = int(re.search(r"loss became (?:inf|nan) at epoch (\d+)", result.output).group(1))
    assert diverged >= 2
    result = CliRunner().invoke(cli, ["train", path, "--runs-dir", str(tmp_path / "b"), "-q",
                                      "--set", "train.on_nan=rollback"])
    assert result.exit_code == 0, result.output
    assert f"rolled back to the end of epoch {diverged - 1} with learning rate 0.45" in result.output
    rows = (tmp_path / "b" / "nan" / "metrics.csv").read_text().splitlines()
    lr = [float(r.split(",")[-2]) for r in rows[1:]]
    assert lr == [0.9] * (diverged - 1) + [0.45] * (10 - diverged + 1)


def test_storage_problems_are_reported_before_or_during_training(tmp_path, small_config, monkeypatch):
    from collections import namedtuple

    from kerascli import commands
    from kerascli.runs import atomic

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(cli, ["train", small_config, "--runs-dir", str(blocker / "runs"), "-q"])
    assert result.exit_code == 1 and "cannot create runs directory" in result.output

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(commands.shutil, "disk_usage", lambda path: usage(10, 10, 1000))
    result = CliRunner().invoke(cli, ["train", small_config, "--runs-dir", str(tmp_path / "full"), "-q"])
    assert result.exit_code == 1 and "MiB free under" in result.output
    assert not (tmp_path / "full").exists() or not os.listdir(tmp_path / "full")
    monkeypatch.undo()

    real_write, calls = atomic.atomic_write, []

    def failing(path, write):
        calls.append(path)
        if path.endswith(".npz") and len(calls) > 6:
            raise OSError(28, "No space left on device")
        return real_write(path, write)

    monkeypatch.setattr(atomic, "atomic_write", failing)
    monkeypatch.setattr("kerascli.runs.checkpoint.atomic_write", failing)
    result = CliRunner().invoke(cli, ["train", small_config, "--runs-dir", str(tmp_path / "disk"), "-q",
                                      "--set", "checkpoint.every_steps=1"])
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.output and "checkpoints already written are intact" in result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------ which run is resumed
def test_interrupting_a_second_run_names_its_own_directory(config, uninterrupted, tmp_path):
    """runs/rel is finished; the next start runs in runs/rel-2; the hint after SIGTERM resumes rel-2,
    and leaves the finished run alone."""
    assert CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path), "-q"]).exit_code == 0
    finished = (tmp_path / "rel" / "checkpoints" / "last.npz").read_bytes()
    proc = start(config, tmp_path)
    assert wait_for(lambda: len(step_files(tmp_path / "rel-2")) >= 2, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and f"resume with: kerascli resume {tmp_path / 'rel-2'}\n" in err, err
    result = CliRunner().invoke(cli, ["resume", str(tmp_path / "rel-2"), "-q"])
    assert result.exit_code == 0, result.output
    assert_identical(final_state(tmp_path / "rel-2"), uninterrupted)
    assert (tmp_path / "rel" / "checkpoints" / "last.npz").read_bytes() == finished


@pytest.mark.parametrize("how", ["rename", "copy"])
def test_a_renamed_or_copied_run_resumes_where_it_lies(config, uninterrupted, tmp_path, how):
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["train", config, "--runs-dir", str(runs), "-q", "--set", "train.epochs=2"])
    assert result.exit_code == 0, result.output
    moved = tmp_path / "elsewhere" / "renamed run"
    moved.parent.mkdir()
    (os.rename if how == "rename" else shutil.copytree)(runs / "rel", moved)
    result = CliRunner().invoke(cli, ["resume", str(moved), "-q", "--set", "train.epochs=4"])
    assert result.exit_code == 0, result.output
    assert_identical(final_state(moved), uninterrupted)


def test_resume_of_a_finished_run_says_so_and_changes_nothing(config, tmp_path):
    assert CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path), "-q",
                                    "--set", "train.epochs=1"]).exit_code == 0
    run = tmp_path / "rel"
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    result = CliRunner().invoke(cli, ["resume", str(run)])
    assert result.exit_code == 0, result.output
    assert f"{run} is already complete (1/1 epochs); nothing to do" in result.output
    assert f"kerascli resume {run} --set train.epochs=2" in result.output
    assert before == {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    result = CliRunner().invoke(cli, ["resume", str(run), "-q", "--set", "train.epochs=2"])
    assert result.exit_code == 0, result.output
    assert len((run / "metrics.csv").read_text().splitlines()) == 3
    result = CliRunner().invoke(cli, ["resume", str(run), "-q", "--set", "train.batch_size=8"])
    assert result.exit_code == 2 and "differs from the run being resumed at train.batch_size" in result.output


def test_resume_option_before_the_config_path(config, tmp_path):
    result = CliRunner().invoke(cli, ["train", "--resume", config, "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and "nothing to resume: no run directory at" in result.output, result.output
    result = CliRunner().invoke(cli, ["train", "--resume", "auto", config, "--runs-dir", str(tmp_path), "-q",
                                      "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------ one live process per run directory
def test_a_run_directory_belongs_to_one_live_process(config, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "kerascli", "train", config, "--runs-dir", str(tmp_path), "-q",
                             "--resume", "auto", "--set", "train.epochs=100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "rel"
    try:
        assert wait_for(lambda: len(step_files(run)) >= 2, proc)
        for args in (["train", config, "--runs-dir", str(tmp_path), "--resume", "auto",
                      "--set", "train.epochs=100000"], ["resume", str(run)]):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 2, result.output
            assert f"error: run directory {run} is in use by process {proc.pid} on {socket.gethostname()}" \
                in result.output and result.output.count("\n") == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the lock of the killed process is stale: taken over
    result = CliRunner().invoke(cli, ["resume", str(run), "-q", "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output


def test_the_same_requeue_line_started_twice_trains_once(config, tmp_path):
    line = [sys.executable, "-m", "kerascli", "train", config, "--runs-dir", str(tmp_path), "-q", "--resume", "auto",
            "--set", "train.epochs=100000"]
    procs = [subprocess.Popen(line, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.01)
        refused = [p for p in procs if p.poll() is not None]
        assert len(refused) == 1, "both or neither of two processes trained into one run directory"
        err = refused[0].communicate()[1]
        assert refused[0].returncode == 2 and "is in use by process" in err, err
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert os.listdir(tmp_path) == ["rel"]


# ------------------------------------------------------------------ the data a run was trained on
def test_changed_data_is_refused_by_evaluate_and_resume(tmp_path, write_config):
    from kerascli.data.datasets import SyntheticClassification

    x, y = SyntheticClassification.load({"samples": 120, "features": 8, "classes": 3, "spread": 1.0, "data_seed": 1})
    data = tmp_path / "data.npz"
    np.savez(data, x=x, y=y)
    path = write_config(CONFIG.replace("dataset: synthetic_classification, samples: 240, features: 8, classes: 3",
                                       f"dataset: npz, path: {data}, test_split: 0.2"))
    result = CliRunner().invoke(cli, ["train", path, "--runs-dir", str(tmp_path), "-q", "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "rel"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data_files"][str(data)]["bytes"] == data.stat().st_size
    assert CliRunner().invoke(cli, ["evaluate", str(run)]).exit_code == 0
    x[0, 0] += 1.0  # one value changes
    np.savez(data, x=x, y=y)
    result = CliRunner().invoke(cli, ["evaluate", str(run)])
    assert result.exit_code == 2 and f"{data} changed since the run trained on it" in result.output
    assert "use --force to evaluate anyway" in result.output and result.output.count("\n") == 1
    result = CliRunner().invoke(cli, ["evaluate", str(run), "--force"])
    assert result.exit_code == 0 and "warning:" in result.output and "going on (--force)" in result.output
    result = CliRunner().invoke(cli, ["resume", str(run), "--set", "train.epochs=2"])
    assert result.exit_code == 2 and "resuming would train on other data" in result.output
