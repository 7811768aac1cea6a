"""cifar10, cifar100, imdb and reuters: their pickled contents read without unpickling
(kerascli.data.pickled), against keras.datasets itself where Keras is installed, on small stand-ins written
in the files' own formats and served from 127.0.0.1."""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile

import numpy as np
import pytest
from click.testing import CliRunner
from test_download import npz_bytes, serve_as, server, train_then_evaluate  # noqa: F401 - server: a fixture

from kerascli.cli import cli
from kerascli.data.cifar import Cifar10, Cifar100, read_batch
from kerascli.data.pickled import read_pickle
from kerascli.data.sequences import Imdb, Reuters
from kerascli.errors import DataError
from kerascli.registry import DATASETS


def keras_module():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch")
    return pytest.importorskip("keras")


# ------------------------------------------------------------ pickle streams as Python 2 wrote CIFAR's


def _int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    return b"J" + struct.pack("<i", v)


def _str(s: bytes) -> bytes:  # a Python 2 str
    return (b"U" + bytes([len(s)]) if len(s) < 256 else b"T" + struct.pack("<i", len(s))) + s


def _uint8_array(a: np.ndarray, data: bytes | None = None) -> bytes:
    """A uint8 array as cPickle protocol 2 wrote numpy arrays (numpy.core, Python 2 str for the data)."""
    shape = b"".join(_int(d) for d in a.shape) + {1: b"\x85", 2: b"\x86", 3: b"\x87"}[a.ndim]
    return (b"cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85U\x01b\x87R("
            + b"K\x01" + shape + b"cnumpy\ndtype\nq\x03U\x02u1K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xff"
            + b"J\xff\xff\xff\xffK\x00tb\x89" + _str(a.tobytes() if data is None else data) + b"tb")


def py2_batch(data: np.ndarray, labels: list[int], label_key: bytes = b"labels") -> bytes:
    body = b"".join(_int(v) for v in labels)
    return (b"\x80\x02}q\x00(" + _str(b"data") + _uint8_array(data) + _str(label_key) + b"](" + body + b"e"
            + _str(b"batch_label") + _str(b"training batch 1 of 5") + _str(b"filenames") + b"](" + _str(b"a.png")
            + b"eu.")


def targz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


# ------------------------------------------------------------ the reader


def test_the_reader_builds_what_python_pickled(rng):
    """Protocols 2-4, as numpy and Python 3 write them: arrays of numbers in C and Fortran order and either
    byte order, object arrays of lists, nested containers, numbers of every width, text and bytes."""
    import pickle  # only to write the streams the reader is checked against; it never reads one

    ragged = np.empty(3, dtype=object)
    ragged[:] = [[1, 2, 300], [], [70000, -5]]
    arrays = np.empty(2, dtype=object)
    arrays[:] = [np.arange(3, dtype=np.int32), np.arange(5)]
    value = {"u8": rng.integers(0, 256, (4, 6)).astype(np.uint8), "f64": np.asfortranarray(rng.normal(size=(3, 5))),
             "big": np.arange(6, dtype=">i4"), "objects": ragged, "arrays": arrays, "text": "naïve", b"raw": b"\x00\xff",
             "numbers": (0, 255, 256, 65535, 65536, -1, 2**40, -(2**70), 1.5, None, True, False), "nested": [{1: [2]}]}
    for protocol in (2, 3, 4):
        got = read_pickle(pickle.dumps(value, protocol=protocol), "stream")
        assert set(got) == set(value)
        for key, want in value.items():
            if isinstance(want, np.ndarray) and want.dtype != object:
                assert got[key].dtype == want.dtype and got[key].flags.f_contiguous == want.flags.f_contiguous
                np.testing.assert_array_equal(got[key], want)
            elif isinstance(want, np.ndarray):
                assert got[key].dtype == object and [list(s) for s in got[key]] == [list(s) for s in want]
                assert [type(s) for s in got[key]] == [type(s) for s in want]
            else:
                assert got[key] == want


def test_the_reader_reads_python_2_cifar_batches(rng):
    data, labels = rng.integers(0, 256, (3, 3072)).astype(np.uint8), [0, 9, 4]
    got = read_pickle(py2_batch(data, labels), "batch")
    assert got[b"labels"] == labels and got[b"batch_label"] == b"training batch 1 of 5"
    np.testing.assert_array_equal(got[b"data"], data)


@pytest.mark.parametrize("stream, message", [
    (b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R.", "names os.system, which these files never need"),
    (b"\x80\x02cbuiltins\neval\n.", "names builtins.eval"),
    (b"\x80\x04\x8c\x02os\x8c\x06system\x93.", "names os.system"),
    (b"\x80\x02]q\x00(K\x01K\x02", "ends before its STOP"),
    (b"\x80\x02T\xff\x00\x00\x00abc.", "ends inside a value of 255 bytes"),
    (b"\x80\x02h\x05.", "memo entry 5, which was never stored"),
    (b"\x80\x02K\x01K\x02.", "more than one value"),
    (b"\x80\x02S'abc'\np0\n.", "opcode b'S' is outside"),
    (b"\x80\x02cnumpy\ndtype\nU\x02V8K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.",
     "only numbers and Python objects"),
])
def test_the_reader_refuses_what_is_not_a_dataset(stream, message):
    with pytest.raises(DataError, match="at byte") as caught:
        read_pickle(stream, "stream")
    assert message in str(caught.value)


def test_a_pickled_array_must_hold_its_declared_bytes(rng):
    stream = b"\x80\x02" + _uint8_array(rng.integers(0, 256, (2, 3072)).astype(np.uint8), data=bytes(6143)) + b"."
    with pytest.raises(DataError, match="does not hold 6,144 bytes"):
        read_pickle(stream, "batch")


# ------------------------------------------------------------ CIFAR


def cifar10_archive(rng, n: int = 4) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Five training batches of ``n`` and a test batch of ``n``; (archive, images NCHW-flat, labels)."""
    data = rng.integers(0, 256, (6 * n, 3072)).astype(np.uint8)
    labels = rng.integers(0, 10, 6 * n)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    members = {f"cifar-10-batches-py/{name}": py2_batch(data[i * n:(i + 1) * n], labels[i * n:(i + 1) * n].tolist())
               for i, name in enumerate(names)}
    members["cifar-10-batches-py/batches.meta"] = b"\x80\x02}."
    return targz(members), data, labels


def test_cifar10_gives_keras_arrays(server, monkeypatch, rng):  # noqa: F811 - the fixture
    archive, data, labels = cifar10_archive(rng)
    serve_as(server, monkeypatch, Cifar10, [archive])
    parts = Cifar10.load({})
    x, y = parts["train"]
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8 and parts["test"][0].shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(x, data[:20].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(y, labels[:20])
    np.testing.assert_array_equal(parts["test"][1], labels[20:])
    assert Cifar10.FILES[0].origin + Cifar10.FILES[0].name == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


def test_cifar_batches_agree_with_keras(tmp_path, rng):
    keras_module()
    from keras.src.datasets.cifar import load_batch

    data, labels = rng.integers(0, 256, (5, 3072)).astype(np.uint8), [3, 1, 4, 1, 5]
    (tmp_path / "batch").write_bytes(py2_batch(data, labels))
    want_x, want_y = load_batch(str(tmp_path / "batch"))
    got_x, got_y = read_batch(py2_batch(data, labels), "batch", "labels", 10)
    np.testing.assert_array_equal(got_x, want_x.transpose(0, 2, 3, 1))  # keras.datasets: channels last
    np.testing.assert_array_equal(got_y, want_y)


@pytest.mark.parametrize("mode", ["fine", "coarse"])
def test_cifar100_agrees_with_keras(server, monkeypatch, tmp_path, rng, mode):  # noqa: F811
    keras = keras_module()
    import keras.src.datasets.cifar100 as keras_cifar100

    members = {"cifar-100-python/train": _cifar100_batch(rng, 7), "cifar-100-python/test": _cifar100_batch(rng, 3)}
    archive = targz(members)
    serve_as(server, monkeypatch, Cifar100, [archive])
    parts = Cifar100.load({"label_mode": mode})
    with tarfile.open(fileobj=io.BytesIO(archive)) as t:
        t.extractall(tmp_path / "keras", filter="data")
    monkeypatch.setattr(keras_cifar100, "get_file", lambda *a, **k: str(tmp_path / "keras"))
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar100.load_data(label_mode=mode)
    np.testing.assert_array_equal(parts["train"][0], x_train)
    np.testing.assert_array_equal(parts["train"][1], y_train[:, 0])
    np.testing.assert_array_equal(parts["test"][0], x_test)
    np.testing.assert_array_equal(parts["test"][1], y_test[:, 0])


def _cifar100_batch(rng, n: int) -> bytes:
    data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
    fine, coarse = rng.integers(0, 100, n).tolist(), rng.integers(0, 20, n).tolist()
    return (b"\x80\x02}q\x00(" + _str(b"data") + _uint8_array(data) + _str(b"fine_labels") + b"]("
            + b"".join(_int(v) for v in fine) + b"e" + _str(b"coarse_labels") + b"](" + b"".join(_int(v) for v in coarse)
            + b"eu.")


def test_a_damaged_cifar_archive_is_named(server, monkeypatch, rng):  # noqa: F811
    archive, _, _ = cifar10_archive(rng)
    members = {"cifar-10-batches-py/data_batch_1": py2_batch(rng.integers(0, 256, (2, 3072)).astype(np.uint8),
                                                             [1, 12])}
    serve_as(server, monkeypatch, Cifar10, [targz(members)])
    with pytest.raises(DataError, match="has no cifar-10-batches-py/data_batch_2"):
        Cifar10.load({})
    members.update({f"cifar-10-batches-py/data_batch_{i}": members["cifar-10-batches-py/data_batch_1"]
                    for i in range(2, 6)})
    members["cifar-10-batches-py/test_batch"] = members["cifar-10-batches-py/data_batch_1"]
    serve_as(server, monkeypatch, Cifar10, [targz(members)])
    with pytest.raises(DataError, match="data_batch_1: 'labels' holds 12, outside the 10 classes"):
        Cifar10.load({})


# ------------------------------------------------------------ IMDB and Reuters


def ragged(rng, n: int, vocabulary: int, longest: int) -> np.ndarray:
    out = np.empty(n, dtype=object)
    for i in range(n):
        out[i] = rng.integers(1, vocabulary, rng.integers(1, longest)).tolist()
    return out


CASES = [
    {},
    {"num_words": 40, "skip_top": 4, "maxlen": 12},
    {"num_words": 40, "oov_char": None, "start_char": None, "index_from": 0},
    {"seed": 7, "sequence_length": 6, "padding": "post", "truncating": "post"},
    {"num_words": 30, "sequence_length": 9, "truncating": "post"},
]


def _params(dataset, given: dict) -> dict:
    return {**{k: p.default for k, p in dataset.PARAMS.items()}, **given}


@pytest.mark.parametrize("given", CASES)
def test_imdb_agrees_with_keras(server, monkeypatch, tmp_path, rng, given):  # noqa: F811
    keras = keras_module()
    import keras.src.datasets.imdb as keras_imdb

    body = npz_bytes(x_train=ragged(rng, 30, 60, 16), y_train=rng.integers(0, 2, 30),
                     x_test=ragged(rng, 20, 60, 16), y_test=rng.integers(0, 2, 20))
    serve_as(server, monkeypatch, Imdb, [body])
    parts = Imdb.load(_params(Imdb, given))
    (tmp_path / "imdb.npz").write_bytes(body)
    monkeypatch.setattr(keras_imdb, "get_file", lambda *a, **k: str(tmp_path / "imdb.npz"))
    keras_args = {k: v for k, v in given.items() if k in ("num_words", "skip_top", "maxlen", "seed", "start_char",
                                                            "oov_char", "index_from")}
    (x_train, y_train), (x_test, y_test) = keras.datasets.imdb.load_data(**keras_args)
    length = given.get("sequence_length") or max(len(s) for s in list(x_train) + list(x_test))
    for (got_x, got_y), want_x, want_y in ((parts["train"], x_train, y_train), (parts["test"], x_test, y_test)):
        want = keras.utils.pad_sequences(list(want_x), maxlen=length, padding=given.get("padding", "pre"),
                                         truncating=given.get("truncating", "pre"))
        np.testing.assert_array_equal(got_x, want)
        np.testing.assert_array_equal(got_y, want_y)


@pytest.mark.parametrize("given", CASES[:3] + [{"num_words": 50, "multi_hot": True, "test_split": 0.3}])
def test_reuters_agrees_with_keras(server, monkeypatch, tmp_path, rng, given):  # noqa: F811
    keras = keras_module()
    import keras.src.datasets.reuters as keras_reuters

    body = npz_bytes(x=ragged(rng, 40, 70, 20), y=rng.integers(0, 46, 40))
    serve_as(server, monkeypatch, Reuters, [body])
    parts = Reuters.load(_params(Reuters, given))
    (tmp_path / "reuters.npz").write_bytes(body)
    monkeypatch.setattr(keras_reuters, "get_file", lambda *a, **k: str(tmp_path / "reuters.npz"))
    keras_args = {k: v for k, v in given.items() if k not in ("multi_hot", "sequence_length")}
    (x_train, y_train), (x_test, y_test) = keras.datasets.reuters.load_data(**keras_args)
    for (got_x, got_y), want_x, want_y in ((parts["train"], x_train, y_train), (parts["test"], x_test, y_test)):
        if given.get("multi_hot"):  # the classic vectorize_sequences of the Reuters examples
            want = np.zeros((len(want_x), given["num_words"]))
            for i, s in enumerate(want_x):
                want[i, s] = 1
        else:
            want = keras.utils.pad_sequences(list(want_x), maxlen=got_x.shape[1])
        np.testing.assert_array_equal(got_x, want)
        np.testing.assert_array_equal(got_y, want_y)


def test_a_forged_sequence_file_is_refused_before_anything_runs(server, monkeypatch, tmp_path):  # noqa: F811
    """An object array whose pickle would call os.system: refused by name, nothing executed."""
    import zipfile

    command = f"touch {tmp_path / 'owned'}".encode()
    stream = b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(command)) + command + b"\x85R."
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("x_train", "x_test"):
            archive.writestr(f"{name}.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + stream)
        for name in ("y_train", "y_test"):
            archive.writestr(f"{name}.npy", npz_member(np.zeros(1, dtype=np.int64)))
    serve_as(server, monkeypatch, Imdb, [buffer.getvalue()])
    with pytest.raises(DataError, match="array 'x_train': the stream names os.system"):
        Imdb.load(_params(Imdb, {}))
    assert not (tmp_path / "owned").exists()


def npz_member(a: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, a)
    return out.getvalue()


def test_sequence_arguments_are_checked(server, monkeypatch, rng):  # noqa: F811
    body = npz_bytes(x_train=ragged(rng, 5, 9, 5), y_train=rng.integers(0, 2, 5), x_test=ragged(rng, 5, 9, 5),
                     y_test=rng.integers(0, 2, 5))
    serve_as(server, monkeypatch, Imdb, [body])
    with pytest.raises(DataError, match="multi_hot needs num_words"):
        Imdb.load(_params(Imdb, {"multi_hot": True}))
    with pytest.raises(DataError, match="no sequence is shorter than maxlen 1"):
        Imdb.load(_params(Imdb, {"maxlen": 1}))
    with pytest.raises(DataError, match="word index 2 does not fit a multi-hot row of num_words 2"):
        Imdb.load(_params(Imdb, {"multi_hot": True, "num_words": 2}))


def test_train_imdb_through_the_cli(server, monkeypatch, tmp_path, rng):  # noqa: F811
    """Served stand-in reviews whose class is a word: Embedding + pooling learns it; evaluate reads the cache."""
    def reviews(n):
        y = rng.integers(0, 2, n)
        x = np.empty(n, dtype=object)
        for i in range(n):
            x[i] = rng.integers(5, 30, rng.integers(3, 12)).tolist() + [1 + int(y[i])]  # word 1 or 2 tells
        return x, y

    (x_train, y_train), (x_test, y_test) = reviews(200), reviews(60)
    serve_as(server, monkeypatch, Imdb, [npz_bytes(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)])
    config = tmp_path / "imdb.yaml"
    config.write_text("""
name: imdb-small
data: {dataset: imdb, num_words: 40, sequence_length: 16}
model:
  input_shape: [16]
  layers:
    - {type: Embedding, input_dim: 40, output_dim: 8}
    - {type: GlobalAveragePooling1D}
    - {type: Dense, units: 1, activation: sigmoid}
compile: {optimizer: {type: adam, learning_rate: 0.05}, loss: binary_crossentropy, metrics: [accuracy]}
train: {epochs: 20, batch_size: 32, threads: 1}
""")
    train_then_evaluate(config, tmp_path / "runs" / "imdb-small", server, ["imdb.npz"])


def test_the_imdb_example_trains_on_a_served_stand_in(server, monkeypatch, tmp_path, rng):  # noqa: F811
    """configs/imdb_lstm.yaml, three epochs of a smaller LSTM, on 300 + 100 reviews whose last word says the
    class."""
    from conftest import CONFIGS

    def reviews(n):
        y = rng.integers(0, 2, n)
        x = np.empty(n, dtype=object)
        for i in range(n):
            x[i] = rng.integers(10, 500, rng.integers(5, 120)).tolist()
            x[i][-1] = 1 + int(y[i])  # (index_from 3: ids 4 and 5 in the sequences)
        return x, y

    (x_train, y_train), (x_test, y_test) = reviews(300), reviews(100)
    serve_as(server, monkeypatch, Imdb, [npz_bytes(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)])
    result = CliRunner().invoke(cli, ["train", os.path.join(CONFIGS, "imdb_lstm.yaml"), "--set", "train.epochs=3",
                                      "--set", "model.layers[1].units=16", "--runs-dir", str(tmp_path / "runs"),
                                      "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "runs" / "imdb-lstm" / "summary.json").read_text())
    assert summary["evaluation"]["test"]["accuracy"] > 0.8


def test_the_new_datasets_are_listed(server, monkeypatch):  # noqa: F811
    listed = json.loads(CliRunner().invoke(cli, ["datasets", "list", "--json"]).stdout)
    rows = {row["name"]: row for row in listed["datasets"]}
    assert {"cifar10", "cifar100", "imdb", "reuters"} <= set(rows) <= set(DATASETS.names())
    assert rows["cifar10"]["bytes"] == 170498071 and rows["imdb"]["urls"] == [server.url + "imdb.npz"]
    monkeypatch.delenv("KERASCLI_DATA_URL")
    assert Reuters.FILES[0].url == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/reuters.npz"
