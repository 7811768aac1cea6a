"""train.threads / --threads set both Numba's and BLAS's thread counts."""

import numba
import yaml
from click.testing import CliRunner
from threadpoolctl import threadpool_info

from kerascli.cli import cli
from kerascli.ops import workers
from kerascli.train.threads import available_cores, set_threads


def blas_threads():
    return {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


def test_set_threads_sizes_the_pool_and_keeps_blas_and_numba_single_threaded():
    try:
        assert set_threads(2) == 2
        assert workers.count() == 2
        assert numba.get_num_threads() == 1
        assert blas_threads() == {1}
        assert len(workers.parts(100, workers.SPLIT_MIN_WORK)) == 2
        assert len(workers.parts(100, 10)) == 1  # small work stays on the calling thread
        assert set_threads(1) == 1 and workers.count() == 1
    finally:
        n = set_threads(0)
    assert n == available_cores() == workers.count()


def test_parallel_parts_cover_the_range_in_order():
    set_threads(3)
    try:
        got = workers.run(lambda i, lo, hi: (i, lo, hi), 10, workers.SPLIT_MIN_WORK)
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
