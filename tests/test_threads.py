"""train.threads / --threads set both Numba's and BLAS's thread counts; threads: 0 shares the cores."""

import subprocess
import sys
import time

import numba
import pytest
import yaml
from click.testing import CliRunner
from threadpoolctl import threadpool_info

from kerascli.cli import cli
from kerascli.ops.cpu import workers
from kerascli.ops.tuning import SPLIT_MIN_WORK
from kerascli.train.threads import (
    _is_busy_kerascli,
    auto_threads,
    available_cores,
    other_busy_processes,
    oversubscription_note,
    set_threads,
)


def blas_threads():
    return {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


def test_set_threads_sizes_the_pool_and_keeps_blas_and_numba_single_threaded():
    try:
        assert set_threads(2) == 2
        assert workers.count() == 2
        assert numba.get_num_threads() == 1
        assert blas_threads() == {1}
        assert len(workers.parts(100, SPLIT_MIN_WORK)) == 2
        assert len(workers.parts(100, 10)) == 1  # small work stays on the calling thread
        assert set_threads(1) == 1 and workers.count() == 1
    finally:
        n = set_threads(0)
    assert n == available_cores() == workers.count()


def test_parallel_parts_cover_the_range_in_order():
    set_threads(3)
    try:
        got = workers.run(lambda i, lo, hi: (i, lo, hi), 10, SPLIT_MIN_WORK)
        assert [g[0] for g in got] == [0, 1, 2]
        assert got[0][1] == 0 and got[-1][2] == 10
        assert all(a[2] == b[1] for a, b in zip(got, got[1:]))
    finally:
        set_threads(0)


def test_threads_option_is_recorded(tmp_path, small_config):
    result = CliRunner().invoke(cli, ["train", small_config, "--runs-dir", str(tmp_path), "-q", "--threads", "1"])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / "small" / "config.yaml").read_text())
    assert config["train"]["threads"] == 1
    set_threads(0)


@pytest.mark.parametrize("argv,busy", [
    (["/venv/bin/kerascli", "train", "c.yaml"], True),
    (["python", "-m", "kerascli", "--debug", "resume", "runs/x"], True),
    (["/usr/bin/python3", "/venv/bin/kerascli", "predict", "runs/x", "in.npy", "-o", "p.npy"], True),
    (["/venv/bin/kerascli", "summary", "c.yaml"], False),
    (["vim", "kerascli/train/loop.py"], False),
    (["python", "-m", "pytest", "tests/test_cli.py", "-k", "train"], False),
])
def test_busy_kerascli_processes_are_recognised(argv, busy):
    assert _is_busy_kerascli(argv) is busy


def test_threads_zero_shares_the_cores_with_busy_kerascli_processes(monkeypatch):
    import os

    from kerascli.train import threads

    # only this test's processes are looked at (tests running beside it start kerascli processes of their own)
    mine = [os.getpid()]
    monkeypatch.setattr(threads, "_process_ids", lambda: list(mine))
    alone, note = auto_threads()
    assert (alone, note) == (available_cores(), None)
    # a process that looks like a training to anyone reading /proc
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "kerascli", "train", "x.yaml"])
    mine.append(other.pid)
    try:
        deadline = time.monotonic() + 10
        while other_busy_processes() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        n, note = auto_threads()
        assert n == max(1, available_cores() // 2)
        assert note.startswith("1 other kerascli process busy on this machine's") and f"using {n} thread" in note
        assert oversubscription_note(available_cores()) is not None or available_cores() == 1
        assert oversubscription_note(1) is None
    finally:
        other.kill()
        other.wait()
    assert auto_threads() == (available_cores(), None)
