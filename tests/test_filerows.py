"""Features read from their file batch by batch (kerascli.data.filerows): the row-reading kernel against its
numpy twin, training from an .npy exactly as from the same arrays in memory, and peak memory well under
the file's size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from kerascli.cli import cli
from kerascli.data.filerows import (
    FileSplit,
    open_npy,
    read_rows,
    read_rows_reference,
)
from kerascli.data.prefetch import PrefetchedSplit
from kerascli.errors import DataError


@pytest.mark.parametrize("dtype", [np.float32, ">f8", np.uint8])
def test_rows_read_by_the_kernel_are_the_numpy_twins(tmp_path, rng, dtype):
    a = (rng.uniform(0, 200, size=(57, 3, 5))).astype(dtype)
    np.save(tmp_path / "a.npy", a)
    f = open_npy(str(tmp_path / "a.npy"))
    for rows in (rng.integers(0, 57, 40), np.arange(10, 30), np.array([5, 6, 7, 1, 2, 56, 0])):
        got = np.empty((len(rows), 3, 5), a.dtype)
        want = np.empty_like(got)
        as_bytes = got.reshape(len(rows), -1).view(np.uint8)
        slots = np.argsort(rows, kind="stable")
        assert read_rows(f._fd, f.offset, f.row_bytes, rows[slots].astype(np.int64), slots, as_bytes) == len(rows)
        assert read_rows_reference(f.path, f.offset, f.row_bytes, rows[slots], slots, want) == len(rows)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, a[rows])
        converted = f.rows(rows, np.float32)
        assert converted.dtype == np.float32 and converted.dtype.isnative
        np.testing.assert_array_equal(converted, a[rows].astype(np.float32))
    np.testing.assert_array_equal(np.asarray(f), a)
    assert [start for start, _ in f.chunks()] == [0]
    with pytest.raises(IndexError):
        f.rows(np.array([57]))


def test_a_file_shorter_than_its_rows_is_an_error_naming_it(tmp_path):
    a = np.arange(40, dtype=np.float64).reshape(10, 4)
    np.save(tmp_path / "a.npy", a)
    f = open_npy(str(tmp_path / "a.npy"))
    with open(tmp_path / "a.npy", "r+b") as handle:  # cut after loading: the file changed under the run
        handle.truncate(f.offset + 5 * f.row_bytes)
    assert read_rows(f._fd, f.offset, f.row_bytes, np.array([1, 7], np.int64), np.array([0, 1]),
                     np.empty((2, 32), np.uint8)) == 1
    with pytest.raises(DataError, match="a.npy: could not read row 7"):
        f.rows(np.array([1, 7]))


CONFIG = """
name: {name}
seed: 5
data: {data}
model:
  input_shape: [{features}]
  layers:
    - {{type: Dense, units: 16, activation: relu}}
    - {{type: Dense, units: 3, activation: softmax}}
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
train: {{epochs: 2, batch_size: 32, threads: 1}}
"""


def test_training_from_a_file_by_rows_is_training_from_memory(tmp_path, rng):
    """Splits of an .npy are index arrays into the file; the run is bit for bit the one from the same arrays
    loaded whole (an .npz)."""
    from kerascli.commands import load_spec
    from kerascli.train.session import build_session, load_data

    x = rng.normal(size=(500, 12)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    runner = CliRunner()
    results = {}
    for name, data in (("rows", f"{{dataset: npy, x: {tmp_path / 'x.npy'}, y: {tmp_path / 'y.npy'}, "
                                 "validation_split: 0.2, normalize: standardize}"),
                       ("whole", f"{{dataset: npz, path: {tmp_path / 'xy.npz'}, validation_split: 0.2, "
                                  "normalize: standardize}")):
        config = tmp_path / f"{name}.yaml"
        config.write_text(CONFIG.format(name=name, data=data, features=12))
        result = runner.invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"])
        assert result.exit_code == 0, result.output
        run = tmp_path / "runs" / name
        with np.load(run / "checkpoints" / "last.npz") as z:
            weights = {k: z[k] for k in z.files if not k.startswith("_")}
        results[name] = (json.loads((run / "summary.json").read_text())["evaluation"], weights)
        if name == "rows":
            splits = load_data(build_session(load_spec(str(config), [])))
            # made ahead on a thread (prefetch's default for a file), standardised batch by batch, read by rows
            assert all(isinstance(s, PrefetchedSplit) and isinstance(s.split.split, FileSplit)
                       for s in splits.values())
    assert results["rows"][0] == results["whole"][0]
    for key, value in results["whole"][1].items():
        np.testing.assert_array_equal(results["rows"][1][key], value)


def test_nan_in_a_file_read_by_rows_is_named_with_its_row(tmp_path):
    x = np.zeros((300, 12), np.float32)
    x[217, 3] = np.nan
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.zeros(300, np.int64))
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(name="nan", features=12, data=f"{{dataset: npy, x: {tmp_path / 'x.npy'}, "
                                                                  f"y: {tmp_path / 'y.npy'}}}"))
    result = CliRunner().invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert result.exit_code != 0 and "NaN or Inf (first in sample 217)" in result.output


def peak_rss_of_training(config) -> int:
    """Peak resident memory (bytes) of `kerascli train config` in a fresh process (its own parent, so no
    other child of the test run is counted)."""
    script = textwrap.dedent(f"""
        import resource, subprocess, sys
        done = subprocess.run([sys.executable, "-m", "kerascli", "train", {str(config)!r}, "--runs-dir",
                               {str(config.parent / "runs")!r}, "-q"], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) * 1024


def test_peak_memory_stays_well_under_the_file_size(tmp_path):
    """Training on a 256 MiB .npy costs no more memory than on a 1 MiB one, give or take 48 MiB (loading it
    whole cost twice its size: the file, then its split copies). Rows of 1 KiB, as an image's: what grows
    with the file is only its per-sample index arrays and labels."""
    width = 256
    rows = (256 << 20) // (4 * width)
    big = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(rows, width))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 1 << 15):
        big[start:start + (1 << 15)] = rng.normal(size=(min(1 << 15, rows - start), width)).astype(np.float32)
    big.flush()
    del big
    np.save(tmp_path / "y.npy", rng.integers(0, 3, rows))
    small = (1 << 20) // (4 * width)
    np.save(tmp_path / "small.npy", np.load(tmp_path / "big.npy", mmap_mode="r")[:small])
    np.save(tmp_path / "ys.npy", np.load(tmp_path / "y.npy")[:small])
    peaks = {}
    for name, xs, ys in (("small", "small.npy", "ys.npy"), ("big", "big.npy", "y.npy")):
        folder = tmp_path / name
        folder.mkdir()
        config = folder / "c.yaml"
        config.write_text(CONFIG.format(name=name, features=width,
                                        data=f"{{dataset: npy, x: {tmp_path / xs}, y: {tmp_path / ys}}}")
                          .replace("epochs: 2, batch_size: 32", "epochs: 1, batch_size: 1024"))
        peaks[name] = peak_rss_of_training(config)
    assert os.path.getsize(tmp_path / "big.npy") > 256 << 20
    assert peaks["big"] - peaks["small"] < 48 << 20, peaks
