"""Datasets by name: downloads against an HTTP server on 127.0.0.1 serving small files with hashes pinned
here (success, checksum mismatch, broken transfer, server down, offline with a warm cache), the cache, and
keras.datasets' splits."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import io
import json
import os
import socket
import struct
import threading

import numpy as np
import pytest
from click.testing import CliRunner

from kerascli.cli import cli
from kerascli.data import datasets, download
from kerascli.data.download import RemoteFile, fetch
from kerascli.errors import DataError


class Server:
    """Serves ``files`` (name -> bytes) on 127.0.0.1; ``broken`` names are cut off halfway through."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.broken: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the standard library's name
                name = self.path.lstrip("/")
                server.requests.append(name)
                if name not in server.files:
                    self.send_error(404, "Not Found")
                    return
                body = server.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if name in server.broken else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch, tmp_path):
    s = Server()
    monkeypatch.setenv("KERASCLI_DATA_URL", s.url)
    monkeypatch.setenv("KERASCLI_CACHE_DIR", str(tmp_path / "cache"))
    yield s
    s.stop()


def remote(name: str, body: bytes, folder: str = "") -> RemoteFile:
    return RemoteFile(name, hashlib.sha256(body).hexdigest(), len(body), folder)


def cache_listing(tmp_path) -> list[str]:
    root = tmp_path / "cache"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_download_is_verified_cached_and_never_fetched_again(server, tmp_path):
    body = os.urandom(3 * download.CHUNK_BYTES // 2)
    file = remote("data.bin", body, "set")
    server.files["data.bin"] = body
    path = fetch(file)
    assert path == str(tmp_path / "cache" / "datasets" / "set" / "data.bin")
    assert open(path, "rb").read() == body and file.cached()
    assert fetch(file) == path
    assert server.requests == ["data.bin"]  # the second time from the cache
    assert cache_listing(tmp_path) == ["datasets/set/data.bin"]  # no temporary file left


def test_a_checksum_mismatch_caches_nothing(server, tmp_path):
    server.files["data.bin"] = b"what the server has"
    file = remote("data.bin", b"what was pinned, of another size")
    with pytest.raises(DataError, match=r"data.bin: the download is not the pinned file .*nothing was cached"):
        fetch(file)
    assert cache_listing(tmp_path) == []


def test_a_broken_transfer_caches_nothing(server, tmp_path):
    body = b"x" * 10_000
    server.files["data.bin"] = body
    server.broken.add("data.bin")
    with pytest.raises(DataError, match="broke off .*nothing was cached"):
        fetch(remote("data.bin", body))
    assert cache_listing(tmp_path) == []


def test_a_missing_file_and_a_server_down_say_how_to_work_offline(server, tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"HTTP 404 .*put it at .*data.bin, or set KERASCLI_DATA_URL"):
        fetch(remote("data.bin", b"abc"))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("KERASCLI_DATA_URL", f"http://127.0.0.1:{closed}")
    with pytest.raises(DataError) as info:
        fetch(remote("data.bin", b"abc"))
    message = str(info.value)
    assert "cannot download" in message and "refused" in message.lower() and "\n" not in message
    assert f"put it at {tmp_path / 'cache' / 'datasets' / 'data.bin'}" in message
    assert cache_listing(tmp_path) == []


def test_offline_with_a_warm_cache(server, tmp_path):
    body = b"cached before"
    server.files["data.bin"] = body
    file = remote("data.bin", body)
    fetch(file)
    server.stop()
    assert open(fetch(file), "rb").read() == body


def test_a_corrupted_cache_entry_is_fetched_again(server, tmp_path):
    body = b"the real contents"
    server.files["data.bin"] = body
    file = remote("data.bin", body)
    path = fetch(file)
    with open(path, "wb") as f:
        f.write(b"planted")
    assert open(fetch(file), "rb").read() == body
    assert server.requests == ["data.bin", "data.bin"]


# ---------------------------------------------------------------- the datasets, on small stand-ins


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def idx_gz(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def serve_as(server, monkeypatch, dataset, bodies: list[bytes]):
    """Serve ``bodies`` in place of ``dataset``'s files, their hashes pinned in its stead."""
    files = tuple(dataclasses.replace(f, sha256=hashlib.sha256(body).hexdigest(), size=len(body))
                  for f, body in zip(dataset.FILES, bodies))
    for f, body in zip(files, bodies):
        server.files[f.name] = body
    monkeypatch.setattr(dataset, "FILES", files)


def test_mnist_gives_its_own_test_split(server, monkeypatch, rng):
    x, y = rng.integers(0, 256, (30, 28, 28)).astype(np.uint8), rng.integers(0, 10, 30).astype(np.uint8)
    serve_as(server, monkeypatch, datasets.Mnist, [npz_bytes(x_train=x[:20], y_train=y[:20], x_test=x[20:],
                                                             y_test=y[20:])])
    parts = datasets.Mnist.load({})
    np.testing.assert_array_equal(parts["train"][0], x[:20])
    np.testing.assert_array_equal(parts["test"][1], y[20:])


def test_fashion_mnist_reads_its_four_idx_files(server, monkeypatch, rng):
    images, labels = rng.integers(0, 256, (12, 28, 28)), rng.integers(0, 10, 12)
    serve_as(server, monkeypatch, datasets.FashionMnist,
             [idx_gz(images[:8]), idx_gz(labels[:8]), idx_gz(images[8:]), idx_gz(labels[8:])])
    parts = datasets.FashionMnist.load({})
    np.testing.assert_array_equal(parts["train"][0], images[:8])
    np.testing.assert_array_equal(parts["test"][1], labels[8:])
    assert all(f.folder == "fashion-mnist" for f in datasets.FashionMnist.FILES)  # MNIST's raw files' names


@pytest.mark.parametrize("dataset, n", [(datasets.BostonHousing, 506), (datasets.CaliforniaHousing, 50)])
def test_housing_sets_split_as_keras_does(server, monkeypatch, rng, dataset, n):
    x, y = rng.normal(size=(n, 8)), rng.normal(size=n)
    serve_as(server, monkeypatch, dataset, [npz_bytes(x=x, y=y)])
    parts = dataset.load({"version": "large"})
    order = np.arange(n)
    np.random.RandomState(113).shuffle(order)  # keras.datasets' split: legacy RandomState(113), 80/20
    cut = int(n * 0.8)
    np.testing.assert_array_equal(parts["train"][0], x[order[:cut]])
    np.testing.assert_array_equal(parts["test"][1], y[order[cut:]])
    if dataset is datasets.BostonHousing:
        assert (len(parts["train"][0]), len(parts["test"][0])) == (404, 102)


def test_train_a_named_dataset_through_the_cli(server, monkeypatch, tmp_path, rng):
    """The whole path: config -> download from the server -> cached -> trained, test split from the file."""
    centers = rng.normal(0, 60, (3, 28 * 28))
    y = rng.integers(0, 3, 120)
    x = np.clip(128 + centers[y] + rng.normal(0, 20, (120, 28 * 28)), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    serve_as(server, monkeypatch, datasets.Mnist, [npz_bytes(x_train=x[:90], y_train=y[:90].astype(np.uint8),
                                                             x_test=x[90:], y_test=y[90:].astype(np.uint8))])
    config = tmp_path / "mnist.yaml"
    config.write_text("""
name: mnist-small
data: {dataset: mnist, validation_split: 0.1}
model:
  input_shape: [28, 28]
  layers:
    - {type: Flatten}
    - {type: Rescaling, scale: 0.00392156862745098}
    - {type: Dense, units: 3, activation: softmax}
compile: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}
train: {epochs: 15, batch_size: 16, threads: 1}
""")
    train_then_evaluate(config, tmp_path / "runs" / "mnist-small", server, ["mnist.npz"])


def train_then_evaluate(config, run, server, fetched: list[str]):
    """Train ``config`` into ``run`` through the CLI (test accuracy > 0.9), evaluate it, the files ``fetched``
    downloaded once: evaluate read the cache."""
    runner = CliRunner()
    result = runner.invoke(cli, ["train", str(config), "--runs-dir", str(run.parent), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["evaluation"]["test"]["accuracy"] > 0.9
    result = runner.invoke(cli, ["evaluate", str(run), "--json"])
    assert result.exit_code == 0, result.output
    assert server.requests == fetched


def test_datasets_list_and_download(server, monkeypatch, tmp_path):
    body = npz_bytes(x=np.zeros((5, 8)), y=np.zeros(5))
    serve_as(server, monkeypatch, datasets.CaliforniaHousing, [body])
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["datasets", "list", "--json"]).stdout)
    rows = {row["name"]: row for row in listed["datasets"]}
    assert set(rows) >= {"mnist", "fashion_mnist", "boston_housing", "california_housing"}
    assert rows["california_housing"]["cached"] == "no" and listed["url"] == server.url
    result = runner.invoke(cli, ["datasets", "download", "california_housing"])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "cache" / "datasets" / "california_housing.npz") in result.output
    listed = json.loads(runner.invoke(cli, ["datasets", "list", "--json"]).stdout)
    assert {row["name"]: row["cached"] for row in listed["datasets"]}["california_housing"] == "yes"
    result = runner.invoke(cli, ["datasets", "download", "nope"])
    assert result.exit_code == 2 and "no downloadable dataset 'nope' (valid: mnist" in result.output


@pytest.mark.parametrize("name", ["mnist_mlp.yaml", "mnist_cnn_augmented.yaml"])
def test_the_mnist_examples_train_on_a_served_stand_in(server, monkeypatch, tmp_path, rng, name):
    """configs/mnist_*.yaml, one epoch, on 300 + 100 separable 28x28 images served as mnist.npz."""
    from conftest import CONFIGS

    y = rng.integers(0, 10, 400)
    x = rng.integers(0, 40, (400, 28, 28))
    for i, label in enumerate(y):  # a bright block whose place says the class
        x[i, 2 * label:2 * label + 6, 4:24] += 200
    x = x.astype(np.uint8)
    serve_as(server, monkeypatch, datasets.Mnist, [npz_bytes(x_train=x[:300], y_train=y[:300].astype(np.uint8),
                                                             x_test=x[300:], y_test=y[300:].astype(np.uint8))])
    result = CliRunner().invoke(cli, ["train", os.path.join(CONFIGS, name), "--set", "train.epochs=3", "--set",
                                      "train.batch_size=32", "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert result.exit_code == 0, result.output
    (run,) = os.listdir(tmp_path / "runs")
    summary = json.loads((tmp_path / "runs" / run / "summary.json").read_text())
    assert summary["evaluation"]["test"]["accuracy"] > 0.5  # chance is 0.1
