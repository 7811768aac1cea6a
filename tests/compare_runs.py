"""Comparing what two runs left on disk."""

import numpy as np


def assert_same_last_checkpoint(run_a, run_b, skip=("_config", "_checksum", "_state", "_rng")):
    """The two runs' checkpoints/last.npz hold the same arrays, bit for bit (weights, optimizer slots and
    position), apart from keys starting with ``skip`` (the config names the run, and so on)."""
    with np.load(run_a / "checkpoints" / "last.npz") as a, np.load(run_b / "checkpoints" / "last.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in (k for k in a.files if not k.startswith(skip)):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
