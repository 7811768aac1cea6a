"""train.threads / --threads set both Numba's and BLAS's thread counts."""

import numba
import yaml
from click.testing import CliRunner
from threadpoolctl import threadpool_info

from kerascli.cli import cli
from kerascli.train.threads import available_cores, set_threads


def blas_threads():
    return {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


def test_set_threads_sets_numba_and_blas():
    try:
        assert set_threads(1) == 1
        assert numba.get_num_threads() == 1
        assert blas_threads() == {1}
    finally:
        n = set_threads(0)
    assert n == available_cores()
    assert numba.get_num_threads() == min(n, numba.config.NUMBA_NUM_THREADS)


def test_threads_option_is_recorded(tmp_path, small_config):
    result = CliRunner().invoke(cli, ["train", small_config, "--runs-dir", str(tmp_path), "-q", "--threads", "1"])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / "small" / "config.yaml").read_text())
    assert config["train"]["threads"] == 1
    set_threads(0)
