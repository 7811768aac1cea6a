"""MNIST's IDX format: plain and gzip files the tests write, memory-mapped where plain, and each kind of bad
file refused with its name and what is wrong."""

import gzip
import os
import struct

import numpy as np
import pytest
from test_cli import invoke

from kerascli.data.idx import read_idx
from kerascli.errors import DataError


def idx_bytes(a: np.ndarray, code: int) -> bytes:
    big = a.astype(a.dtype.newbyteorder(">"))
    return bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + big.tobytes()


def write(path, a, code, compress=False):
    data = idx_bytes(a, code)
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as f:
        f.write(data)
    return str(path)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype,code", [(np.uint8, 0x08), (np.int8, 0x09), (np.int16, 0x0B), (np.int32, 0x0C),
                                        (np.float32, 0x0D), (np.float64, 0x0E)])
def test_idx_files_read_back_exactly(tmp_path, rng, dtype, code, compress):
    a = (rng.normal(size=(5, 4, 3)) * 50).astype(dtype)
    back = read_idx(write(tmp_path / "a.idx", a, code, compress))
    np.testing.assert_array_equal(back, a)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    if not compress and dtype is np.uint8:
        assert isinstance(back, np.memmap)  # mapped, not read


@pytest.mark.parametrize("compress", [False, True])
def test_bad_idx_files_are_named_with_what_is_wrong(tmp_path, compress):
    good = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 0x08)
    cases = {
        "truncated": (good[:-5], r"truncated: the header declares 2x3x4 values"),
        "long": (good + b"\0", "longer than its header says"),
        "magic": (b"PK\3\4" + good[4:], "not an IDX file"),
        "type": (bytes([0, 0, 0x07, 3]) + good[4:], "unknown IDX type code 0x07"),
        "header": (good[:9], "the header ends before its 3 sizes"),
        "huge": (bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**31, 2**31, 2**31), "more than this machine's memory"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.idx"
        with (gzip.open(path, "wb") if compress else open(path, "wb")) as f:
            f.write(data)
        with pytest.raises(DataError, match=message) as err:
            read_idx(str(path))
        assert str(path) in str(err.value)
    with pytest.raises(DataError, match="data file not found"):
        read_idx(str(tmp_path / "missing.idx"))
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:-12])
    with pytest.raises(DataError, match="damaged or truncated gzip stream|truncated"):
        read_idx(str(tmp_path / "cut.gz"))


def test_training_from_idx_files_with_their_own_test_split(tmp_path, rng, write_config):
    x = rng.integers(0, 256, (120, 6, 6), dtype=np.uint8)
    y = (x[:, :3].mean(axis=(1, 2)) > x[:, 3:].mean(axis=(1, 2))).astype(np.uint8)
    files = {"x": write(tmp_path / "train-images-idx3-ubyte", x[:100], 0x08),
             "y": write(tmp_path / "train-labels-idx1-ubyte.gz", y[:100], 0x08, compress=True),
             "x_test": write(tmp_path / "t10k-images-idx3-ubyte.gz", x[100:], 0x08, compress=True),
             "y_test": write(tmp_path / "t10k-labels-idx1-ubyte", y[100:], 0x08)}
    config = write_config(f"""
        data: {{dataset: idx, x: {files['x']}, y: {files['y']}, x_test: {files['x_test']}, y_test: {files['y_test']}}}
        model:
          input_shape: [6, 6]
          layers:
            - {{type: Flatten}}
            - {{type: Rescaling, scale: 0.00392}}
            - {{type: Dense, units: 2, activation: softmax}}
        compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
        train: {{epochs: 2, batch_size: 20}}
        """)
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0, result.output
    (run,) = os.listdir(tmp_path / "runs")
    import json

    summary = json.load(open(tmp_path / "runs" / run / "summary.json"))
    assert set(summary["evaluation"]) >= {"train", "test"}  # the t10k pair is the test split
    assert sorted(os.path.basename(f) for f in summary["data_files"]) == sorted(os.path.basename(f)
                                                                                for f in files.values())
    bad = write_config(f"""
        data: {{dataset: idx, x: {files['x']}, y: {files['y']}, x_test: {files['x_test']}}}
        model: {{input_shape: [6, 6], layers: [{{type: Flatten}}, {{type: Dense, units: 2, activation: softmax}}]}}
        compile: {{optimizer: adam, loss: sparse_categorical_crossentropy}}
        """, name="bad.yaml")
    result = invoke("train", bad, "--runs-dir", tmp_path / "runs2", "--quiet")
    assert result.exit_code == 2 and "y_test: x_test names the test split's images" in result.output
