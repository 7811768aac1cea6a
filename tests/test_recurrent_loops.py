"""The recurrent layers' time loops: the cpu Ops' one-kernel-per-direction loops (kerascli/ops/cpu/sequences.py)
against their definition (kerascli/ops/algorithms/recurrent.py over the reference kernels), and the BLAS
call those kernels make (kerascli/ops/cpu/blas.py), with numpy's BLAS and with the loops that stand in
for one."""

import re

import numpy as np
import pytest

from kerascli.ops import get_ops
from kerascli.ops.contract import RELU, SIGMOID, TANH
from kerascli.ops.cpu import blas

reference, cpu = get_ops("reference"), get_ops("cpu")
STEPS, N, UNITS = 5, 4, 3


@pytest.fixture(params=["blas", "loops"])
def kernel_blas(request, monkeypatch):
    """Each case runs with the BLAS found in this process and with the Numba loops used without one."""
    if request.param == "loops":
        monkeypatch.setattr(blas, "_FOUND", (blas.NO_BLAS, "loops"))
    elif not blas.handle()[0]:
        pytest.skip(f"no BLAS callable from kernels here ({blas.describe()})")
    return request.param


@pytest.fixture(params=[1, 3], ids=["whole batch", "3 threads"])
def kernel_blas_threads(request, kernel_blas, monkeypatch):
    """Each case runs on the whole batch at once and in parts on three threads (one BLAS thread each), as in
    the batch-parallel regime, with parts however small."""
    if request.param > 1:
        from threadpoolctl import threadpool_limits

        from kerascli.ops.cpu import workers

        monkeypatch.setattr(workers, "SPLIT_MIN_WORK", 0)
        before = threadpool_limits(limits=None, user_api="blas")  # to put BLAS's threads back after
        threads, pool = cpu.threads, workers.count()
        cpu.set_threads(request.param, batch_parallel=True)
        assert workers.parts(N, 1) == [(0, 1), (1, 2), (2, 4)]
        yield kernel_blas
        workers.set_workers(pool)
        cpu._threads = threads
        before.restore_original_limits()
    else:
        yield kernel_blas


def workspaces(dtype):
    """Scratch arrays as a layer hands them out, NaN where unwritten so a loop reading one shows."""
    made = {}

    def ws(name, shape, kind=None):
        key = (name, tuple(shape))
        if key not in made:
            made[key] = np.full(shape, np.nan, kind or dtype)
        return made[key]

    return ws


def case_arrays(rng, dtype, gates, masked, dropped, every_step):
    m = lambda *shape: rng.normal(size=shape).astype(dtype)  # noqa: E731
    keep = None
    if masked:
        keep = (rng.random((STEPS, N)) > 0.4).astype(dtype)
        keep[:, 0] = 1
        keep[:2, 1] = 0  # a sample whose first steps are padding
    state_mask = (rng.random((N, UNITS)) > 0.3).astype(dtype) / 0.7 if dropped else None
    arriving = m(STEPS if every_step else 1, N, UNITS)
    return m(STEPS, N, gates * UNITS), m(UNITS, gates * UNITS) * 0.5, keep, state_mask, arriving, m


def close(a, b, dtype):
    tol = 2e-5 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


MASKS = [(False, False), (True, False), (False, True), (True, True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked,dropped", MASKS)
@pytest.mark.parametrize("every_step", [True, False])
@pytest.mark.parametrize("acts", [(TANH, SIGMOID), (RELU, SIGMOID)])
def test_lstm_loops(rng, kernel_blas_threads, dtype, masked, dropped, every_step, acts):
    xw, kernel, keep, state_mask, arriving, m = case_arrays(rng, dtype, 4, masked, dropped, every_step)
    h0, c0, dh_final, dc_final = m(N, UNITS), m(N, UNITS), m(N, UNITS), m(N, UNITS)
    results = []
    for ops in (reference, cpu):
        h, c = np.full((STEPS + 1, N, UNITS), np.nan, dtype), np.full((STEPS + 1, N, UNITS), np.nan, dtype)
        h[0], c[0] = h0, c0
        gates = np.full((STEPS, N, 4 * UNITS), np.nan, dtype)
        ops.lstm_sequence_forward(xw, kernel, h, c, gates, keep, state_mask, *acts, workspaces(dtype))
        dh, dc = dh_final.copy(), dc_final.copy()
        dz = np.full((STEPS, N, 4 * UNITS), np.nan, dtype)
        ops.lstm_sequence_backward(arriving, dh, dc, kernel, gates, c, keep, state_mask, *acts, dz, workspaces(dtype))
        results.append((h, c, gates, dh, dc, dz))
    for want, got in zip(*results):
        close(got, want, dtype)
    if masked:  # a padded step carries both states over
        h = results[1][0]
        np.testing.assert_array_equal(h[1:3, 1], np.broadcast_to(h0[1], (2, UNITS)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked,dropped", MASKS)
@pytest.mark.parametrize("every_step", [True, False])
@pytest.mark.parametrize("reset_after,recurrent_bias", [(True, True), (True, False), (False, False)])
def test_gru_loops(rng, kernel_blas_threads, dtype, masked, dropped, every_step, reset_after, recurrent_bias):
    xw, kernel, keep, state_mask, arriving, m = case_arrays(rng, dtype, 3, masked, dropped, every_step)
    bias = m(3 * UNITS) if recurrent_bias else None
    h0, dh_final = m(N, UNITS), m(N, UNITS)
    results = []
    for ops in (reference, cpu):
        h = np.full((STEPS + 1, N, UNITS), np.nan, dtype)
        h[0] = h0
        gates = np.full((STEPS, N, 4 * UNITS), np.nan, dtype)
        rh = np.full((STEPS, N, UNITS), np.nan, dtype)
        ops.gru_sequence_forward(xw, kernel, bias, h, gates, rh, keep, state_mask, TANH, SIGMOID, reset_after,
                                 workspaces(dtype))
        dh = dh_final.copy()
        dxw, drec = np.full((STEPS, N, 3 * UNITS), np.nan, dtype), np.full((STEPS, N, 3 * UNITS), np.nan, dtype)
        ops.gru_sequence_backward(arriving, dh, kernel, gates, h, keep, state_mask, TANH, SIGMOID, reset_after,
                                  dxw, drec, workspaces(dtype))
        used = slice(None) if reset_after else slice(0, 2 * UNITS)  # gates[..., 3u:] holds reset_after's alone
        results.append((h, gates[..., used], rh, dh, dxw, drec))
    for want, got in zip(*results):
        close(got, want, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked,dropped", MASKS)
@pytest.mark.parametrize("every_step", [True, False])
@pytest.mark.parametrize("act", [TANH, RELU])
def test_simple_rnn_loops(rng, kernel_blas_threads, dtype, masked, dropped, every_step, act):
    xw, kernel, keep, state_mask, arriving, m = case_arrays(rng, dtype, 1, masked, dropped, every_step)
    h0, dh_final = m(N, UNITS), m(N, UNITS)
    results = []
    for ops in (reference, cpu):
        h = np.full((STEPS + 1, N, UNITS), np.nan, dtype)
        h[0] = h0
        ops.simple_rnn_sequence_forward(xw, kernel, h, keep, state_mask, act, workspaces(dtype))
        dh = dh_final.copy()
        dz = np.full((STEPS, N, UNITS), np.nan, dtype)
        ops.simple_rnn_sequence_backward(arriving, dh, kernel, h, keep, state_mask, act, dz, workspaces(dtype))
        results.append((h, dh, dz))
    for want, got in zip(*results):
        close(got, want, dtype)


@pytest.fixture(params=["numpy", "mkl", "loops"])
def each_kernel_blas(request, monkeypatch):
    """Each library KERASCLI_KERNEL_BLAS can choose (mkl: where the mkl wheel is installed, as in CI)."""
    monkeypatch.setenv("KERASCLI_KERNEL_BLAS", request.param)
    if request.param == "mkl" and blas.mkl_wheel_library() is None:
        pytest.skip("the mkl wheel is not installed (pip install 'kerascli[mkl]')")
    monkeypatch.setattr(blas, "_FOUND", blas._find())
    if request.param != "loops" and not blas.handle()[0]:
        pytest.skip(f"no BLAS callable from kernels here ({blas.describe()})")
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("layout", ["contiguous", "column slice", "strided", "empty inner"])
def test_kernel_gemm(rng, each_kernel_blas, dtype, trans_b, beta, layout):
    """c = a @ op(b) + beta c as BLAS reads it, and views BLAS cannot read going to the loops."""
    k = 0 if layout == "empty inner" else 7
    a = rng.normal(size=(5, k)).astype(dtype)
    wide = rng.normal(size=(9, 2 * 12)).astype(dtype)
    b = {"contiguous": rng.normal(size=(3, k) if trans_b else (k, 3)).astype(dtype),
         "column slice": wide[:3, 4:4 + k] if trans_b else wide[:k, 4:7],
         "strided": wide[:3, :2 * k:2] if trans_b else wide[:k, :6:2],
         "empty inner": np.zeros((3, 0) if trans_b else (0, 3), dtype)}[layout]
    c0 = rng.normal(size=(5, 3)).astype(dtype)
    want = a @ (b.T if trans_b else b) + beta * c0
    got = c0.copy()
    blas.gemm(blas.handle(), a, b, got, trans_b, beta)
    close(got, want, dtype)


def test_numpys_blas_is_found_and_named(monkeypatch):
    """On a machine whose numpy uses OpenBLAS (PyPI's wheels), KERASCLI_KERNEL_BLAS=numpy calls it."""
    from threadpoolctl import threadpool_info

    if not any(lib.get("internal_api") == "openblas" for lib in threadpool_info()):
        pytest.skip("numpy here does not use OpenBLAS")
    monkeypatch.setenv("KERASCLI_KERNEL_BLAS", "numpy")
    handle, what = blas._find()
    assert handle[0] and handle[1] and what.startswith("openblas ")


def test_the_mkl_wheel_comes_first_where_installed(monkeypatch):
    """By default the kernels take MKL where the mkl wheel is installed (loaded with one thread a call);
    without it, numpy's BLAS."""
    monkeypatch.delenv("KERASCLI_KERNEL_BLAS", raising=False)
    wheel = blas.mkl_wheel_library()
    handle, what = blas._find()
    if wheel is None:
        assert not what.startswith("mkl")
        monkeypatch.setattr(blas, "mkl_wheel_library", lambda: "/nowhere/libmkl_rt.so.2")
        assert blas._find()[1] == what  # a library that cannot be loaded is passed over
    else:
        assert handle[0] and handle[1] and not handle[2] and what == f"mkl {wheel} (sequential)"


def test_blas_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("KERASCLI_KERNEL_BLAS", "loops")
    handle, what = blas._find()
    assert not handle.any() and "KERASCLI_KERNEL_BLAS" in what


@pytest.mark.parametrize("value, says", [("mkl", "MKL is not installed here: pip install 'kerascli[mkl]'"),
                                         ("openblass", "'openblass' is not one of auto, mkl, numpy, loops")])
def test_a_kernel_blas_that_cannot_be_had_is_refused(monkeypatch, value, says):
    monkeypatch.setenv("KERASCLI_KERNEL_BLAS", value)
    monkeypatch.setattr(blas, "mkl_wheel_library", lambda: None)
    monkeypatch.setattr(blas, "_loaded", lambda: [])
    with pytest.raises(blas.KernelBLASUnavailable, match=re.escape(says)):
        blas.check()


def test_train_refuses_a_kernel_blas_it_cannot_have_in_one_line_before_any_run(monkeypatch, tmp_path):
    import os

    from click.testing import CliRunner
    from conftest import CONFIGS

    import kerascli.ops as ops_package
    from kerascli.cli import cli

    monkeypatch.setattr(ops_package, "_OPS", {})  # a new cpu Ops checks the variable
    monkeypatch.setenv("KERASCLI_KERNEL_BLAS", "openblass")
    result = CliRunner().invoke(cli, ["train", os.path.join(CONFIGS, "digits_mlp.yaml"), "--runs-dir",
                                      str(tmp_path / "runs")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "KERASCLI_KERNEL_BLAS='openblass' is not one of" in lines[0], result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("case", ["into out", "new out", "accumulate", "column slices", "strided", "out is an input"])
def test_cpu_ops_products_through_the_kernels_blas(rng, each_kernel_blas, monkeypatch, trans_a, trans_b, case):
    """Where the cpu Ops sends its products to the kernels' BLAS (with the mkl wheel, where numpy's BLAS
    runs on one thread), they are numpy's; views BLAS cannot read, and an output that is also an input, go to
    numpy instead."""
    monkeypatch.setattr(cpu, "_mkl_products", blas.handle())
    calls = []
    through = blas.gemm_ops
    monkeypatch.setattr(blas, "gemm_ops", lambda *args: calls.append(1) or through(*args))
    m, k, n = 6, 5, 4
    wide = rng.normal(size=(12, 12))
    a = rng.normal(size=(k, m) if trans_a else (m, k))
    b = rng.normal(size=(n, k) if trans_b else (k, n))
    if case == "column slices":
        a = wide[: a.shape[0], 3 : 3 + a.shape[1]]
    if case == "strided":
        b = wide[: b.shape[0], : 2 * b.shape[1] : 2]
    want = (a.T if trans_a else a) @ (b.T if trans_b else b)
    if case == "out is an input":  # a square product written over its own input
        a = b = rng.normal(size=(k, k))
        want = (a.T if trans_a else a) @ (b.T if trans_b else b)
        got = cpu.gemm(a, b, out=a, trans_a=trans_a, trans_b=trans_b)
    elif case == "new out":
        got = cpu.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    else:
        out = rng.normal(size=(m, n))
        start = out.copy()
        got = cpu.gemm(a, b, out=out, trans_a=trans_a, trans_b=trans_b, accumulate=case == "accumulate")
        assert got is out
        if case == "accumulate":
            want = want + start
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert len(calls) == (0 if case in ("strided", "out is an input") else 1)


def test_cpu_ops_products_take_mkl_only_where_numpys_blas_runs_on_one_thread(monkeypatch):
    if blas.mkl_wheel_library() is None:
        pytest.skip("the mkl wheel is not installed (pip install 'kerascli[mkl]')")
    from threadpoolctl import threadpool_limits

    from kerascli.ops.cpu import workers

    before = threadpool_limits(limits=None, user_api="blas")
    threads, pool, products = cpu.threads, workers.count(), cpu._mkl_products
    try:
        cpu.set_threads(2, batch_parallel=True)
        assert cpu._mkl_products is not None and blas.describe().endswith("(sequential)")
        cpu.set_threads(1, batch_parallel=False)
        assert cpu._mkl_products is not None
        cpu.set_threads(2, batch_parallel=False)  # numpy's BLAS runs each product on both threads
        assert cpu._mkl_products is None
        monkeypatch.setenv("KERASCLI_KERNEL_BLAS", "numpy")
        cpu.set_threads(2, batch_parallel=True)
        assert cpu._mkl_products is None
    finally:
        workers.set_workers(pool)
        cpu._threads, cpu._mkl_products = threads, products
        before.restore_original_limits()
