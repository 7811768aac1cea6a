import os
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")


@pytest.fixture
def write_config(tmp_path):
    """Write YAML text (dedented) to a file and return its path."""

    def write(text: str, name: str = "config.yaml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)

    return write


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


SMALL_MLP = """
name: small
seed: 3
data: {dataset: synthetic_classification, samples: 120, features: 6, classes: 3, validation_split: 0.2, test_split: 0.2}
model:
  input_shape: [6]
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: Dropout, rate: 0.1}
    - {type: Dense, units: 3, activation: softmax}
compile:
  optimizer: adam
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
train: {epochs: 2, batch_size: 16}
"""


@pytest.fixture
def small_config(write_config):
    return write_config(SMALL_MLP)


@pytest.fixture(autouse=True, scope="session")
def small_blocks_under_the_simulator():
    """The CUDA simulator runs each GPU thread as a Python thread: blocks of 32 threads instead of 256 make
    its tests several times faster and still cross block boundaries."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        from kerascli.ops.cuda import launch

        launch.CUDA_THREADS = 32
    yield


def pytest_collection_modifyitems(config, items):
    """Under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1, slow: each GPU thread is a Python thread) the cuda
    parity cases run in float32 only (what a GPU trains in), on contiguous inputs (a device copy is
    contiguous anyway), and the convolution cases (im2col + GEMM + activation on a GPU, each kernel also
    tested alone) with relu and one gradient density. On a real GPU every case runs."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        return
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_cuda = getattr(params.get("other"), "name", None) == "cuda" or params.get("backend") == "cuda"
        slow = params.get("dtype") is np.float64 or params.get("noncontig") is True
        if "convolution" in getattr(item, "originalname", ""):
            slow = slow or params.get("act", 1) != 1 or params.get("density", 0.1) != 0.1  # 1: relu
        (drop if on_cuda and slow else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True, scope="session")
def record_cuda_signatures():
    """Under the simulator with KERASCLI_CUDA_SIGNATURES set: note every kernel launch's argument types in
    that file, for tests/test_cuda_ptx.py to compile as a GPU would."""
    path = os.environ.get("KERASCLI_CUDA_SIGNATURES")
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" or not path:
        yield
        return
    from cuda_signatures import record

    write = record(path)
    yield
    write()
