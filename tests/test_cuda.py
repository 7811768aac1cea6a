"""The cuda backend: each built-in layer on device arrays against the same layer on the cpu backend (whose
gradients test_layers checks by central differences), training end to end, checkpoints across backends,
and what happens where no GPU can be used.

The device tests run where a GPU is usable, and on the CPU under the CUDA simulator
(NUMBA_ENABLE_CUDASIM=1: .ci/run runs this file so); elsewhere they skip. The tests of a machine without a
GPU run everywhere.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from backends import cuda_usable
from compare_runs import assert_same_last_checkpoint
from test_layers import BATCH, ROWS, inputs_for, make_layer

from kerascli.cli import cli
from kerascli.ops.backend import NumbaCUDAOps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_cuda = pytest.mark.skipif(not cuda_usable(), reason="no usable GPU (or NUMBA_ENABLE_CUDASIM=1)")
SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def invoke(*args):
    from click.testing import CliRunner

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def on_device(layer):
    """Move a cpu-built layer's weights and gradients onto the cuda Ops."""
    from kerascli.ops import get_ops

    ops = get_ops("cuda")
    layer.ops = ops
    layer.params = {k: ops.to_device(v) for k, v in layer.params.items()}
    layer.grads = {k: ops.to_device(v) for k, v in layer.grads.items()}
    return layer


def host(value):
    if isinstance(value, list):
        return [host(v) for v in value]
    return value.copy_to_host() if hasattr(value, "copy_to_host") else np.asarray(value)


@needs_cuda
@pytest.mark.parametrize("type_name,params,shape", [
    pytest.param(t, p, s, id=f"{t}-{i}") for t, rows in ROWS.items() for i, (p, s) in enumerate(rows)
    if t != "Dropout" and t in NumbaCUDAOps.LAYERS and not make_layer(t, p, s, "reference")[0].host_only])
def test_layer_matches_cpu(type_name, params, shape, rng):
    """Forward (training and inference), input gradient and weight gradients, float64."""
    from kerascli.ops import get_ops

    cpu, _ = make_layer(type_name, params, shape, "cpu")
    gpu = on_device(make_layer(type_name, params, shape, "cpu")[0])
    x = inputs_for(shape, rng)
    r = rng.normal(size=(BATCH,) + cpu.output_shape)
    ops = get_ops("cuda")
    up = (lambda v: [ops.to_device(a) for a in v]) if isinstance(x, list) else ops.to_device
    np.testing.assert_allclose(host(gpu.forward(up(x), False)), cpu.forward(x, False), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(host(gpu.forward(up(x), True)), cpu.forward(x, True), rtol=1e-10, atol=1e-12)
    dx_cpu, dx_gpu = cpu.backward(r.copy()), host(gpu.backward(ops.to_device(r)))
    if dx_cpu is not None:
        for a, b in zip(dx_gpu if isinstance(dx_gpu, list) else [dx_gpu],
                        dx_cpu if isinstance(dx_cpu, list) else [dx_cpu]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for name, g in cpu.grads.items():
        np.testing.assert_allclose(host(gpu.grads[name]), g, rtol=1e-10, atol=1e-12, err_msg=name)
    for name in cpu.params:  # BatchNormalization's moving statistics
        np.testing.assert_allclose(host(gpu.params[name]), cpu.params[name], rtol=1e-10, atol=1e-12, err_msg=name)


@needs_cuda
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the simulator hashes in numpy
def test_dropout_on_device_drops_and_scales_consistently(rng):
    layer = on_device(make_layer("Dropout", {"rate": 0.5}, (64,), "cpu")[0])
    from kerascli.ops import get_ops

    ops = get_ops("cuda")
    layer.rng = np.random.default_rng(0)
    x = np.ones((4, 64))
    np.testing.assert_array_equal(host(layer.forward(ops.to_device(x), False)), x)
    y = host(layer.forward(ops.to_device(x), True))
    assert set(np.unique(y)) == {0.0, 2.0} and 0.3 < (y == 0).mean() < 0.7
    dy = rng.normal(size=x.shape)
    np.testing.assert_allclose(host(layer.backward(ops.to_device(dy))), np.where(y > 0, dy * 2, 0))
    layer.rng = np.random.default_rng(0)  # the same rng state gives the same mask
    np.testing.assert_array_equal(host(layer.forward(ops.to_device(x), True)), y)


@needs_cuda
# across the 64x64 tiles, and split along k (a weight gradient's shape: small output, long inner dimension;
# split here from 16 on, so that the simulator runs it quickly)
@pytest.mark.parametrize("shape", [(1, 1, 1), (17, 5, 3), (65, 17, 70), (9, 70, 5)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_numba_gemm_across_tiles(rng, shape, trans_a, trans_b, monkeypatch):
    from numba import cuda

    from kerascli.ops.cuda import gemm
    from kerascli.ops.cuda.gemm import numba_gemm

    monkeypatch.setattr(gemm, "CUDA_GEMM_SPLIT_MIN_K", 16)
    m, k, n = shape
    a = rng.normal(size=(k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(np.float32)
    expected = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)
    out = cuda.to_device(np.full((m, n), np.nan, np.float32))
    numba_gemm(cuda.to_device(a), cuda.to_device(b), out, trans_a, trans_b)
    np.testing.assert_allclose(out.copy_to_host(), expected, rtol=1e-4, atol=1e-4)
    numba_gemm(cuda.to_device(a), cuda.to_device(b), out, trans_a, trans_b, accumulate=True)
    np.testing.assert_allclose(out.copy_to_host(), 2 * expected, rtol=1e-4, atol=1e-4)


@needs_cuda
def test_sums_stay_on_the_device_until_read():
    from kerascli.ops import get_ops
    from kerascli.train.loop import Totals

    ops = get_ops("cuda")
    totals = Totals(["loss", "accuracy"])
    for batch in ([1.0, 2.0], [3.0, 4.0, 5.0]):
        totals.add("loss", ops.total(ops.to_device(np.array(batch))), len(batch))
    totals.add("accuracy", 4.0, 0)  # host numbers mix in
    logs = totals.logs()
    assert totals.sums["loss"] == 0.0  # nothing read yet
    assert logs["loss"] == pytest.approx(3.0) and logs["accuracy"] == pytest.approx(0.8)


MLP = """
name: {name}
seed: 3
data: {{dataset: synthetic_classification, samples: 96, features: 6, classes: 3, validation_split: 0.25,
       test_split: 0.25}}
model:
  input_shape: [6]
  layers:
    - {{type: Dense, units: 8, activation: relu}}
    - {{type: Dense, units: 3, activation: softmax}}
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
train: {{epochs: 2, batch_size: 16, backend: {backend}}}
"""


def metrics(run_dir):
    rows = open(os.path.join(run_dir, "metrics.csv")).read().split("\n")
    head = rows[0].split(",")
    return [dict(zip(head, map(float, row.split(",")))) for row in rows[1:] if row]


@needs_cuda
def test_training_on_the_device_matches_cpu_and_checkpoints_cross(tmp_path, write_config):
    runs = tmp_path / "runs"
    for backend in ("cpu", "cuda"):
        result = invoke("train", write_config(MLP.format(name=backend, backend=backend), f"{backend}.yaml"),
                        "--runs-dir", runs, "--quiet")
        assert result.exit_code == 0, result.output
    cpu, gpu = metrics(runs / "cpu"), metrics(runs / "cuda")
    for a, b in zip(cpu, gpu):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
    summary = json.loads((runs / "cuda" / "summary.json").read_text())
    assert summary["backend"]["name"] == "cuda"
    # a GPU run's checkpoint on the cpu, and the other way round, give the same evaluation
    results = {}
    for run, backend in (("cuda", "cpu"), ("cuda", "cuda"), ("cpu", "cuda")):
        out = invoke("evaluate", runs / run, "--backend", backend, "--json")
        assert out.exit_code == 0, out.output
        results[run, backend] = json.loads(out.stdout)
    assert results["cuda", "cpu"]["loss"] == pytest.approx(results["cuda", "cuda"]["loss"], rel=1e-5)
    cpu_summary = json.loads((runs / "cpu" / "summary.json").read_text())
    assert results["cpu", "cuda"]["loss"] == pytest.approx(cpu_summary["evaluation"]["test"]["loss"], rel=1e-4)
    # a run stopped after one epoch and resumed on the device ends with the very same weights (sums there are
    # formed in a fixed order)
    config = write_config(MLP.format(name="split", backend="cuda").replace("epochs: 2", "epochs: 1"), "split.yaml")
    assert invoke("train", config, "--runs-dir", runs, "--quiet").exit_code == 0
    out = invoke("resume", runs / "split", "--set", "train.epochs=2", "--quiet")
    assert out.exit_code == 0, out.output
    assert_same_last_checkpoint(runs / "cuda", runs / "split")


@needs_cuda
def test_a_dataset_given_batch_by_batch_trains_on_the_device(tmp_path, write_config):
    """Each batch goes up as the dataset gives it; the run matches the cpu backend's."""
    runs = tmp_path / "runs"
    for backend in ("cpu", "cuda"):
        config = write_config(f"""
            name: {backend}
            plugins: [{os.path.join(ROOT, "examples", "plugins", "spirals.py")}]
            data: {{dataset: spiral_batches, batches: 3, val_batches: 1, batch_size: 8}}
            model:
              input_shape: [2]
              layers:
                - {{type: Dense, units: 8, activation: tanh}}
                - {{type: Dense, units: 3, activation: softmax}}
            compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
            train: {{epochs: 2, batch_size: 8, backend: {backend}}}
        """, f"{backend}.yaml")
        result = invoke("train", config, "--runs-dir", runs, "--quiet")
        assert result.exit_code == 0, result.output
    for a, b in zip(metrics(runs / "cpu"), metrics(runs / "cuda")):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key


@needs_cuda
def test_features_read_from_their_file_train_on_the_device(tmp_path, write_config, rng):
    """An .npy's rows are read batch by batch on the host (prefetched, standardised) and go up as they come;
    the run matches the cpu backend's."""
    x = rng.normal(size=(64, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", (x[:, 0] > 0).astype(np.int64))
    runs = tmp_path / "runs"
    for backend in ("cpu", "cuda"):
        config = write_config(f"""
            name: {backend}
            data: {{dataset: npy, x: {tmp_path / "x.npy"}, y: {tmp_path / "y.npy"}, validation_split: 0.25,
                   normalize: minmax}}
            model:
              input_shape: [5]
              layers:
                - {{type: Dense, units: 6, activation: tanh}}
                - {{type: Dense, units: 2, activation: softmax}}
            compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
            train: {{epochs: 2, batch_size: 16, backend: {backend}}}
        """, f"{backend}.yaml")
        result = invoke("train", config, "--runs-dir", runs, "--quiet")
        assert result.exit_code == 0, result.output
    for a, b in zip(metrics(runs / "cpu"), metrics(runs / "cuda")):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key


@needs_cuda
def test_a_weight_with_an_axis_of_one_loads_on_the_device():
    """A (4, 1) kernel (Dense with one unit): numba-cuda's copy took a broadcast's size-1 axis for a
    broadcast and refused it."""
    from kerascli.ops import get_ops

    ops = get_ops("cuda")
    flat = ops.zeros((12,), np.float32)
    view = flat[4:8].reshape(4, 1)
    ops.assign(view, np.arange(4, dtype=np.float32).reshape(4, 1))
    ops.assign(flat[8:9].reshape(1), 7.0)  # a scalar broadcast into a (1,) bias
    np.testing.assert_array_equal(host(flat), [0, 0, 0, 0, 0, 1, 2, 3, 7, 0, 0, 0])


@needs_cuda
def test_a_loss_computed_on_the_host_trains_on_the_device(tmp_path, write_config):
    """The row-wise losses (here categorical focal cross-entropy) bring each batch's outputs to the host."""
    runs = tmp_path / "runs"
    for backend in ("cpu", "cuda"):
        config = write_config(f"""
            name: {backend}
            data: {{dataset: synthetic_classification, samples: 32, features: 4, classes: 3}}
            model: {{input_shape: [4], layers: [{{type: Dense, units: 3, activation: softmax}}]}}
            compile: {{optimizer: adam, loss: {{type: categorical_focal_crossentropy, gamma: 1.0}}}}
            train: {{epochs: 2, batch_size: 16, backend: {backend}}}
        """, f"{backend}.yaml")
        result = invoke("train", config, "--runs-dir", runs, "--quiet")
        assert result.exit_code == 0, result.output
    for a, b in zip(metrics(runs / "cpu"), metrics(runs / "cuda")):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-6)


@needs_cuda
def test_sample_weights_on_the_device_match_cpu(tmp_path, write_config):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(np.int64), w=rng.random(40) * 2)
    runs = tmp_path / "runs"
    for backend in ("cpu", "cuda"):
        config = write_config(f"""
            name: {backend}
            data: {{dataset: npz, path: {tmp_path / "d.npz"}, sample_weight: w, validation_split: 0.25}}
            model: {{input_shape: [3], layers: [{{type: Dense, units: 2, activation: softmax}}]}}
            compile: {{optimizer: adam, loss: sparse_categorical_crossentropy}}
            train: {{epochs: 2, batch_size: 8, backend: {backend}}}
        """, f"{backend}.yaml")
        result = invoke("train", config, "--runs-dir", runs, "--quiet")
        assert result.exit_code == 0, result.output
    for a, b in zip(metrics(runs / "cpu"), metrics(runs / "cuda")):
        for key in ("loss", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key


@needs_cuda
@pytest.mark.parametrize("loss,units", [("sparse_categorical_crossentropy", 3), ("binary_crossentropy", 1)])
def test_class_weights_on_the_device_match_cpu(tmp_path, write_config, loss, units):
    runs = tmp_path / "runs"
    for backend in ("cpu", "cuda"):
        config = write_config(f"""
            name: {backend}
            data: {{dataset: synthetic_classification, samples: 48, features: 4, classes: {max(units, 2)},
                   validation_split: 0.25}}
            model: {{input_shape: [4], layers: [{{type: Dense, units: {units}, activation: {"sigmoid" if units == 1
                                                                                            else "softmax"}}}]}}
            compile: {{optimizer: adam, loss: {loss}, metrics: [accuracy]}}
            train: {{epochs: 2, batch_size: 16, backend: {backend}, class_weight: balanced}}
        """, f"{backend}.yaml")
        result = invoke("train", config, "--runs-dir", runs, "--quiet")
        assert result.exit_code == 0, result.output
    for a, b in zip(metrics(runs / "cpu"), metrics(runs / "cuda")):
        for key in ("loss", "accuracy", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key


@needs_cuda
@pytest.mark.parametrize("type_name", sorted(set(ROWS) - NumbaCUDAOps.LAYERS))
def test_a_layer_without_cuda_kernels_is_refused_by_name(type_name, tmp_path, write_config):
    """The layers the cuda Ops has no kernels for yet are refused before training, naming the layer."""
    from kerascli.ops import get_ops

    layer, _ = make_layer(type_name, *ROWS[type_name][0], "cpu")

    class Model:
        layers = [layer]

    class Objective:
        outputs = []

    reason = get_ops("cuda").unsupported(Model, Objective)
    assert reason and f"({type_name}) has no cuda kernels" in reason and "backend: cpu" in reason


@needs_cuda
def test_a_plugin_layer_is_refused_on_the_device(tmp_path, write_config):
    config = write_config(f"""
        plugins: [{os.path.join(ROOT, "examples", "plugins", "layers.py")}]
        data: {{dataset: synthetic_classification, samples: 32, features: 4, classes: 2}}
        model:
          input_shape: [4]
          layers:
            - {{type: ScaledDense, units: 4, activation: relu}}
            - {{type: Dense, units: 2, activation: softmax}}
        compile: {{optimizer: adam, loss: sparse_categorical_crossentropy}}
        train: {{epochs: 1, backend: cuda}}
    """)
    result = invoke("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert "ScaledDense" in result.output and "backend: cpu" in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ---------------------------------------------------------------- without a GPU
@pytest.mark.skipif(cuda_usable(), reason="a GPU (or the simulator) is usable here")
def test_asking_for_cuda_without_a_gpu_is_one_line_and_no_run(tmp_path, write_config):
    result = invoke("train", write_config(MLP.format(name="x", backend="cpu")), "--backend", "cuda",
                    "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "backend cuda cannot run here" in lines[0], result.output
    assert not (tmp_path / "runs").exists()


def test_nothing_of_cuda_is_imported_unless_asked(tmp_path, write_config):
    """Training on the cpu backend (and with auto on a machine without a GPU) never imports numba.cuda."""
    config = write_config(MLP.format(name="plain", backend="cpu"))
    code = (
        "import sys\n"
        "from kerascli.cli import main\n"
        "sys.argv = ['kerascli', 'train', sys.argv[1], '--runs-dir', sys.argv[2], '--quiet'] + sys.argv[3:]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('IMPORTED' if any(m.startswith(('numba.cuda', 'numba_cuda')) for m in sys.modules) else 'CLEAN')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_ENABLE_CUDASIM", "KERASCLI_ASSUME_GPU")}
    cases = [[]] + ([["--backend", "auto"]] if not os.path.exists("/dev/nvidiactl") else [])
    for i, extra in enumerate(cases):
        out = subprocess.run([sys.executable, "-c", code, config, str(tmp_path / f"runs{i}"), *extra],
                             capture_output=True, text=True, env=env, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().endswith("CLEAN"), (extra, out.stdout, out.stderr)


@needs_cuda
@pytest.mark.parametrize("extra,needle", [
    ("kernel_regularizer: l2", "kernel's regularizer"),
    ("bias_constraint: non_neg", "bias's constraint"),
    ("activity_regularizer: l1", "activity_regularizer"),
])
def test_regularizers_and_constraints_are_refused_on_the_device(extra, needle, tmp_path, write_config):
    config = write_config(f"""
        data: {{dataset: synthetic_classification, samples: 32, features: 4, classes: 2}}
        model:
          input_shape: [4]
          layers:
            - {{type: Dense, units: 2, activation: softmax, {extra}}}
        compile: {{optimizer: adam, loss: sparse_categorical_crossentropy}}
        train: {{epochs: 1, backend: cuda}}
    """)
    result = invoke("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert needle in result.output and "'dense'" in result.output and "backend: cpu" in result.output


@needs_cuda
@pytest.mark.parametrize("type_name,params,shape,why", [
    ("LayerNormalization", {"axis": -2}, (3, 4), "an axis other than the last"),
    ("Conv2D", {"filters": 2, "kernel_size": 2, "dilation_rate": 2}, (5, 5, 1), "dilation_rate or groups"),
    ("Conv2D", {"filters": 2, "kernel_size": 2, "groups": 2}, (5, 5, 2), "dilation_rate or groups")])
def test_a_layer_computing_on_the_host_is_refused_on_the_device(type_name, params, shape, why):
    from kerascli.ops import get_ops

    layer, _ = make_layer(type_name, params, shape, "cpu")

    class Model:
        layers = [layer]

    class Objective:
        outputs = []

    reason = get_ops("cuda").unsupported(Model, Objective)
    assert reason and why in reason and "'layer'" in reason


@needs_cuda
@pytest.mark.skipif(SIMULATED, reason="the simulator has no driver launch to shorten")
def test_kernels_launch_by_the_short_path_with_numba_cudas_results():
    """The short launch path (kerascli.ops.cuda.kernel) is learned on a kernel's first launch of a signature
    and taken after it; results match numba.cuda's own launch, for arrays, views and every number kind."""
    from numba import cuda

    from kerascli.ops.cuda import kernel as kmod
    from kerascli.ops.cuda.kernel import kernel

    @kernel
    def axpy(x, a, shift, flag, out):
        i = cuda.grid(1)
        if i < out.size:
            v = a * x[i] + shift
            out[i] = -v if flag else v

    x = np.arange(300, dtype=np.float32)
    out = cuda.device_array(300, np.float32)
    for a, shift, flag in ((2, 0.5, False), (3, -1.0, True), (np.float32(0.25), np.int32(4), False)):
        axpy[2, 256](cuda.to_device(x), a, shift, flag, out)
        np.testing.assert_allclose(out.copy_to_host(), (-1 if flag else 1) * (a * x + shift), rtol=1e-6)
    assert axpy.short_path_signatures == 2  # (int, float, bool) learned once and reused; the numpy kinds
    whole = cuda.to_device(np.arange(600, dtype=np.float32).reshape(2, 300))
    axpy[2, 256](whole[1], 1, 0.0, False, out)  # a row view: its own pointer
    np.testing.assert_array_equal(out.copy_to_host(), np.arange(300, 600, dtype=np.float32))
    strided = cuda.to_device(np.arange(600, dtype=np.float32))[::2]  # not contiguous: numba.cuda's launch
    axpy[2, 256](strided, 1, 0.0, False, out)
    np.testing.assert_array_equal(out.copy_to_host(), np.arange(0, 600, 2, dtype=np.float32))
    assert kmod._core_launch is not None


@needs_cuda
@pytest.mark.skipif(SIMULATED, reason="the simulator has no driver launch to shorten")
def test_a_training_step_launches_its_kernels_by_the_short_path(tmp_path):
    import gc

    from kerascli.ops.cuda.kernel import Kernel

    result = invoke("train", os.path.join(ROOT, "configs", "digits_mlp.yaml"), "--backend", "cuda",
                    "--set", "train.epochs=1", "--runs-dir", tmp_path, "--quiet")
    assert result.exit_code == 0, result.output
    used = [k for k in gc.get_objects() if isinstance(k, Kernel) and k._signatures]
    assert used and all(k.short_path_signatures for k in used), [k.__name__ for k in used
                                                                 if not k.short_path_signatures]


@needs_cuda
@pytest.mark.skipif(SIMULATED, reason="CuPy needs a real GPU")
def test_cublas_products_called_directly_match_numpy():
    """kerascli.ops.cuda.gemm calls cuBLAS directly where CuPy is installed: every transpose, accumulation,
    both float types, row views with a pitch, and the cases it hands to CuPy's matmul (an empty inner
    dimension, strided columns) give numpy's products."""
    pytest.importorskip("cupy")
    from numba import cuda

    from kerascli.ops.cuda import gemm

    if gemm.cupy_module() is None:
        pytest.skip("CuPy cannot use this GPU")
    assert gemm._raw_binding() is not None, "the direct cuBLAS call disagreed with CuPy's matmul"
    rng = np.random.default_rng(0)
    for dtype, tol in ((np.float32, 1e-4), (np.float64, 1e-12)):
        for trans_a in (False, True):
            for trans_b in (False, True):
                m, k, n = 37, 70, 33
                a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
                b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
                c0 = rng.standard_normal((m, n)).astype(dtype)
                want = (a.T if trans_a else a) @ (b.T if trans_b else b)
                for accumulate in (False, True):
                    out = cuda.to_device(c0)
                    gemm.cublas_gemm(cuda.to_device(a), cuda.to_device(b), out, trans_a, trans_b, accumulate)
                    np.testing.assert_allclose(out.copy_to_host(), want + c0 if accumulate else want,
                                               rtol=tol, atol=tol)
    a = rng.standard_normal((8, 12)).astype(np.float32)
    b = rng.standard_normal((5, 7)).astype(np.float32)
    wide = cuda.to_device(np.zeros((8, 10), np.float32))
    gemm.cublas_gemm(cuda.to_device(a)[:, 2:7], cuda.to_device(b), wide[:, 1:8])  # pitched rows: direct
    np.testing.assert_allclose(wide.copy_to_host()[:, 1:8], a[:, 2:7] @ b, rtol=1e-5, atol=1e-5)
    assert gemm._leading(cuda.to_device(a)[:, 2:7], 4) == 12
    assert gemm._leading(cuda.to_device(a)[:, ::2], 4) is None  # strided columns: CuPy's matmul
    out = cuda.to_device(np.ones((3, 4), np.float32))
    gemm.cublas_gemm(cuda.device_array((3, 0), np.float32), cuda.device_array((0, 4), np.float32), out)
    np.testing.assert_array_equal(out.copy_to_host(), np.zeros((3, 4), np.float32))
