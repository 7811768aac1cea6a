"""Every command, on every kind of empty, forged-header or malformed input, ends in exit 2 and one line
naming the problem, and writes nothing: the property behind each single bad-input test."""

import io
import os
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SMALL_MLP

from kerascli.cli import cli


def npy_bytes(array=None, header=None, data=b""):
    buf = io.BytesIO()
    if header is None:
        np.save(buf, array, allow_pickle=False)
        return buf.getvalue()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + data


def npz_bytes(members, compress=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as z:
        for name, data in members.items():
            z.writestr(name + ".npy", data)
    return buf.getvalue()


HUGE = {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}  # 8 TB declared
OBJECTS = {"descr": "|O", "fortran_order": False, "shape": (2,)}  # Python objects: what pickle would unpack
WRAPS = {"descr": "<f8", "fortran_order": False, "shape": (2**32, 2**32, 2)}  # wraps to 0 bytes in int64
GOOD_Y = npy_bytes(np.zeros(3))

# kind -> {extension: file content}; a kind missing an extension is not written with it
KINDS = {
    "empty": {ext: b"" for ext in (".npy", ".npz", ".csv", ".yaml")},
    "garbage": {ext: bytes(range(256)) * 3 for ext in (".npy", ".npz", ".csv", ".yaml")},
    "huge npy header": {".npy": npy_bytes(header=HUGE, data=b"\0" * 16)},
    "wrapping npy header": {".npy": npy_bytes(header=WRAPS, data=b"")},
    "huge npz header": {".npz": npz_bytes({"x": npy_bytes(header=HUGE, data=b"\0" * 16), "y": GOOD_Y,
                                            "dense/kernel": npy_bytes(header=HUGE, data=b"")})},
    "zip bomb claim": {".npz": npz_bytes({"x": npy_bytes(header=HUGE, data=b"\0" * 100_000), "y": GOOD_Y},
                                         zipfile.ZIP_DEFLATED)},
    "object array": {".npy": npy_bytes(header=OBJECTS, data=b"\0" * 16),
                     ".npz": npz_bytes({"x": npy_bytes(header=OBJECTS, data=b"\0" * 16), "y": GOOD_Y})},
    "truncated": {".npz": npz_bytes({"x": npy_bytes(np.zeros((3, 6))), "y": GOOD_Y})[:150],
                  ".npy": npy_bytes(np.zeros((3, 6)))[:100]},
    "no rows": {".npy": npy_bytes(np.zeros((0, 6))), ".npz": npz_bytes({"x": npy_bytes(np.zeros((0, 6))),
                                                                        "y": npy_bytes(np.zeros(0))}),
                ".csv": b"a,b,c,d,e,f,label\n"},
    "nan": {".npy": npy_bytes(np.full((3, 6), np.nan)), ".csv": b"a,b,c,d,e,f,label\n1,2,3,nan,5,6,0\n"},
    "semicolons": {".csv": b"a;b;c;d;e;f;label\n1;2;3;4;5;6;0\n"},
    "yaml list": {".yaml": b"- a\n- b\n"},
    "yaml bomb": {".yaml": ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))).encode()},
    "directory": {ext: None for ext in (".npy", ".npz", ".csv", ".yaml")},
}


def write(tmp_path, kind, ext):
    path = tmp_path / f"bad-{kind.replace(' ', '-')}{ext}"
    content = KINDS[kind][ext]
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    return str(path)


def config_with(tmp_path, text, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def uses(tmp_path, run, kind, ext, bad):
    """(description, argv) of every command that can be handed ``bad`` (a file of this extension)."""
    out = tmp_path / "out.npy"
    data = "dataset: synthetic_classification, samples: 120, features: 6, classes: 3"
    cases = []
    if ext == ".yaml":
        cases += [("train config", ["train", bad, "--runs-dir", tmp_path / "runs"]),
                  ("validate config", ["validate", bad]), ("summary config", ["summary", bad]),
                  ("resume run", ["resume", bad])]
    if ext == ".npz":
        npz_data = config_with(tmp_path, SMALL_MLP.replace(data, f"dataset: npz, path: {bad}"), "npz")
        cases += [("npz dataset", ["train", npz_data, "--runs-dir", tmp_path / "runs"]),
                  ("weights", ["validate", config_with(tmp_path, SMALL_MLP.replace(
                      "compile:", f"  weights: {bad}\ncompile:"), "weights")]),
                  ("evaluate checkpoint", ["evaluate", bad]),
                  ("predict checkpoint", ["predict", bad, run / "x.npy", "-o", out]),
                  ("predict input", ["predict", run, bad, "-o", out])]
    if ext == ".npy":
        cases += [("npy dataset", ["validate", config_with(tmp_path, SMALL_MLP.replace(
            data, f"dataset: npy, x: {bad}, y: {run / 'y.npy'}"), "npy")]),
                  ("predict input", ["predict", run, bad, "-o", out])]
    if ext == ".csv":
        csv_data = config_with(tmp_path, SMALL_MLP.replace(data, f"dataset: csv, path: {bad}"), "csv")
        cases += [("csv dataset", ["validate", csv_data]),
                  ("predict input", ["predict", run, bad, "-o", tmp_path / "out.csv"])]
    return cases


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    config = folder / "small.yaml"
    config.write_text(SMALL_MLP)
    result = CliRunner().invoke(cli, ["train", str(config), "--runs-dir", str(folder / "runs"), "-q"])
    assert result.exit_code == 0, result.output
    run = folder / "runs" / "small"
    np.save(run / "x.npy", np.zeros((3, 6)))
    np.save(run / "y.npy", np.zeros(3))
    return run


@pytest.mark.parametrize("kind,ext", [(k, e) for k, exts in KINDS.items() for e in exts])
def test_every_command_refuses_bad_files_in_one_line(tmp_path, run, kind, ext):
    bad = write(tmp_path, kind, ext)
    cases = uses(tmp_path, run, kind, ext, bad)
    assert cases
    for what, argv in cases:
        result = CliRunner().invoke(cli, [str(a) for a in argv])
        out = result.output
        assert result.exit_code == 2, (kind, ext, what, out)
        assert out.startswith("error: ") and out.count("\n") == 1 and "internal error" not in out, (kind, what, out)
        assert not (tmp_path / "out.npy").exists() and not (tmp_path / "out.csv").exists()
        assert not (tmp_path / "runs").exists() or not os.listdir(tmp_path / "runs")
