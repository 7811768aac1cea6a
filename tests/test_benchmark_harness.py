"""The benchmark's kerascli side really trains on every call (a benchmark that skips work reports nonsense)."""

import importlib.util
import os

import numpy as np
from conftest import ROOT


def load_compare():
    spec = importlib.util.spec_from_file_location("compare", os.path.join(ROOT, "benchmarks", "compare.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_benchmark_epoch_trains_and_predict_covers_every_sample():
    compare = load_compare()
    fw = compare.Kerascli(threads=1)
    trainer = fw.mlp()
    x, y = compare.mlp_data(64)
    for _ in range(2):
        before = trainer.model.param_buffer.copy()
        fw.train_epoch(trainer, x, y, 32)
        assert not np.array_equal(before, trainer.model.param_buffer)
    assert fw.predict(trainer, x, 16).shape == (64, 10)
    cases = compare.throughput_cases(quick=True)
    assert {c[0] for c in cases} >= {"train MLP b32", "train MLP b128", "train MLP b512", "train CNN b128",
                                     "predict MLP b1024", "predict CNN b1024"}


def test_the_blas_only_floor_runs_every_product(monkeypatch):
    """Prediction as products alone: per thread, each convolution's product once per chunk of its images
    and each Dense product once, never skipped."""
    compare = load_compare()
    fw = compare.BlasOnly(threads=2)
    calls = []
    matmul = np.matmul
    monkeypatch.setattr(compare.np, "matmul", lambda a, b, out=None: calls.append(b.shape) or matmul(a, b, out=out))
    x, _ = compare.cnn_data(64)
    fw.predict(fw.cnn(), x, 64)  # two threads, 32 images each: 2 chunks of 16 per convolution
    assert sorted(calls) == sorted([(9, 32)] * 4 + [(288, 64)] * 4 + [(1600, 128)] * 2 + [(128, 10)] * 2)
    assert not fw.trains
