"""data.prefetch: batches made ahead on a background thread are the same batches, errors surface in the
loop, and a loop that stops early stops the thread."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from click.testing import CliRunner

from kerascli.cli import cli
from kerascli.data.prefetch import made_by_workers, prefetched


def threads_named(name: str) -> int:
    return sum(t.name == name and t.is_alive() for t in threading.enumerate())


def test_the_same_items_in_order_and_errors_where_they_happen():
    assert list(prefetched(iter(range(50)), 3)) == list(range(50))
    assert list(prefetched(iter(range(5)), 0)) == list(range(5))

    def failing():
        yield 1
        yield 2
        raise ValueError("batch 3 is broken")

    got = []
    with pytest.raises(ValueError, match="batch 3 is broken"):
        for item in prefetched(failing(), 2):
            got.append(item)
    assert got == [1, 2]
    assert threads_named("kerascli-prefetch") == 0


def test_stopping_early_stops_the_thread_and_closes_the_source():
    closed = []

    def source():
        try:
            yield from range(1000)
        finally:
            closed.append(True)

    it = prefetched(source(), 4)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert closed == [True] and threads_named("kerascli-prefetch") == 0


def test_workers_hand_batches_over_in_order_and_stop_when_the_loop_does():
    import time

    def make(key):
        time.sleep(0.002 * (key % 3))  # finishing out of order
        if key == 7:
            raise ValueError("batch 7 is broken")
        return key * 10

    assert list(made_by_workers(make, range(7), 3, 5)) == [0, 10, 20, 30, 40, 50, 60]
    got = []
    with pytest.raises(ValueError, match="batch 7 is broken"):
        for item in made_by_workers(make, range(20), 3, 5):
            got.append(item)
    assert got == [0, 10, 20, 30, 40, 50, 60]
    it = made_by_workers(make, range(100), 4, 6)
    assert next(it) == 0
    it.close()
    assert threads_named("kerascli-worker_0") == 0


def test_a_run_is_the_same_with_and_without_prefetching(tmp_path, rng):
    x = rng.normal(size=(300, 6, 6, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int64)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    runner = CliRunner()
    weights = {}
    for name, prefetch in (("plain", "0"), ("ahead", "3"), ("workers", "2, workers: 3")):
        config = tmp_path / f"{name}.yaml"
        config.write_text(f"""
name: {name}
seed: 2
data: {{dataset: npy, x: {tmp_path / 'x.npy'}, y: {tmp_path / 'y.npy'}, validation_split: 0.2, prefetch: {prefetch},
        augmentation: {{rotation_range: 20, horizontal_flip: true}}}}
model:
  input_shape: [6, 6, 1]
  layers:
    - {{type: Flatten}}
    - {{type: Dense, units: 8, activation: relu}}
    - {{type: Dense, units: 2, activation: softmax}}
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy}}
train: {{epochs: 2, batch_size: 16, threads: 1}}
""")
        result = runner.invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"])
        assert result.exit_code == 0, result.output
        with np.load(tmp_path / "runs" / name / "checkpoints" / "last.npz") as z:
            weights[name] = {k: z[k] for k in z.files if not k.startswith("_")}
        weights[name]["evaluation"] = json.loads((tmp_path / "runs" / name / "summary.json").read_text())["evaluation"]
    plain = weights.pop("plain")
    for other in weights.values():
        assert other.pop("evaluation") == plain["evaluation"]
        for key, value in plain.items():
            if key != "evaluation":
                np.testing.assert_array_equal(other[key], value)
