"""Data-parallel training over MPI: the same weights as one process, resumes across rank counts, signals and
dead or hung ranks (run under mpiexec from mpi4py's pip package 'mpich'; skipped where either is missing),
and the sharding of batches (no MPI needed)."""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from kerascli.data.pipeline import BatchSplit, Split
from kerascli.errors import ConfigError
from kerascli.train import distributed
from kerascli.train.distributed import launched_processes
from kerascli.train.sharding import Padding, ShardedSplit

MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")


def _have_mpi() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return MPIEXEC is not None


needs_mpi = pytest.mark.skipif(not _have_mpi(), reason="needs mpi4py and mpiexec (pip install mpi4py mpich)")

# 200 training samples: 7 batches of 30 in an epoch, the last of 20 (cut 10/10 on 2 ranks, 7/7/6 on 3);
# ReduceLROnPlateau halves the rate after every epoch on rank 0, which the other ranks must follow
CONFIG = """
name: dp
seed: 7
data: {dataset: synthetic_classification, samples: 250, features: 12, classes: 4, validation_split: 0.2}
model:
  input_shape: [12]
  layers:
    - {type: Dense, units: 32, activation: relu, kernel_regularizer: {type: l2, l2: 0.001}}
    - {type: Dense, units: 16, activation: tanh}
    - {type: Dense, units: 4, activation: softmax}
compile: {optimizer: adam, loss: categorical_crossentropy, metrics: [accuracy, {type: AUC}]}
train: {epochs: 3, batch_size: 30, threads: 1}
callbacks:
  - {type: ReduceLROnPlateau, monitor: loss, factor: 0.5, patience: 0, min_delta: 100.0, min_lr: 0.0}
"""


def kerascli(args, ranks=1, env=None, timeout=240):
    command = [sys.executable, "-m", "kerascli"] + args
    if ranks > 1:
        command = [MPIEXEC, "-n", str(ranks)] + command
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def weights(run) -> dict:
    with np.load(os.path.join(run, "checkpoints", "last.npz")) as z:
        return {k: z[k].copy() for k in z.files if not k.startswith("_")}


def assert_close(a: dict, b: dict, rtol=1e-5):
    assert sorted(a) == sorted(b)
    for key in a:
        scale = max(float(np.abs(a[key]).max()), 1e-12)
        assert float(np.abs(a[key] - b[key]).max()) / scale < rtol, key


def metrics(run) -> np.ndarray:
    lines = open(os.path.join(run, "metrics.csv")).read().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name not in ("seconds",)]
    return np.array([[float(row.split(",")[i]) for i in keep] for row in lines[1:]])


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("dpcfg") / "dp.yaml"
    path.write_text(CONFIG)
    return str(path)


@pytest.fixture(scope="module")
def one_process(config, tmp_path_factory):
    runs = tmp_path_factory.mktemp("one")
    result = kerascli(["train", config, "--runs-dir", str(runs), "-q"])
    assert result.returncode == 0, result.stderr
    return str(runs / "dp")


TWO_NODES = "shared memory, then MPI Allreduce between nodes"


@needs_mpi
@pytest.mark.parametrize("ranks, sums", [(2, "shared memory"), (3, "shared memory"), (2, "MPI Allreduce"),
                                         (3, "MPI Allreduce, deterministic"), (4, TWO_NODES + ", deterministic")])
def test_ranks_train_the_weights_of_one_process(config, one_process, tmp_path, ranks, sums):
    # shared memory on one node; Allreduce between nodes (forced here), in rank order where deterministic;
    # 4 ranks taken as two nodes of 2: each node sums through its shared memory, the nodes sum its slices
    env = {"shared memory": {}, "MPI Allreduce": {"KERASCLI_MPI_SHARED": "0"},
           TWO_NODES: {"KERASCLI_MPI_NODE_RANKS": "2"}}[sums.split(", deterministic")[0]]
    if sums == "MPI Allreduce":  # the flat gradient in buckets of 1 KB: the run times both ways and chooses
        env = {**env, "KERASCLI_MPI_BUCKET_MB": "0.001"}
    sets = ["--set", "train.deterministic=true"] if "deterministic" in sums else []
    result = kerascli(["train", config, "--runs-dir", str(tmp_path), "-q", *sets], ranks=ranks, env=env)
    assert result.returncode == 0, result.stderr
    run = str(tmp_path / "dp")
    assert_close(weights(run), weights(one_process))
    # the epochs' loss, metrics (accuracy, AUC from summed counts), validation and halved learning rates
    np.testing.assert_allclose(metrics(run), metrics(one_process), rtol=1e-5)
    assert sorted(os.listdir(tmp_path)) == ["dp"]  # rank 0 alone wrote
    import json

    summary = json.load(open(os.path.join(run, "summary.json")))
    assert summary["distributed"]["ranks"] == ranks
    assert summary["distributed"]["allreduce_ms_per_step"] > 0
    assert summary["distributed"]["gradient_sums"] == sums.split(", deterministic")[0]
    assert summary["distributed"]["nodes"] == (2 if sums.startswith(TWO_NODES) else 1)
    # Adam's update is elementwise: on a node each rank updates its slice of the weights the node shares
    by_parts = sums.startswith("shared memory")
    assert summary["distributed"]["optimizer_step"] == ("by parts" if by_parts else "whole")
    buckets = summary["distributed"]["gradient_buckets"]
    if sums == "MPI Allreduce":  # 21 steps: 5, then 8 each way alternating, then the choice
        assert buckets["overlap"] == "auto" and buckets["buckets"] == 2 and isinstance(buckets["overlapped"], bool)
        assert set(buckets["ms_per_step"]) == {"overlapped", "after_backward"}
    elif sums.startswith("MPI Allreduce"):  # one bucket of 0.25 MiB: nothing to overlap, nothing timed
        assert buckets == {"overlap": "auto", "buckets": 1, "bucket_mb": 0.25, "overlapped": False}
    else:  # sums through shared memory
        assert buckets is None


@needs_mpi
def test_buckets_sent_during_the_backward_pass_sum_to_the_same_bits(config, tmp_path):
    """With train.deterministic, the buckets' sums (gathered, then added in rank order) are those of the sum
    after the backward pass, bit for bit; the weight regularizer's gradient goes into its bucket first."""
    runs = {}
    for overlap in ("on", "off"):
        env = {"KERASCLI_MPI_SHARED": "0", "KERASCLI_MPI_OVERLAP": overlap, "KERASCLI_MPI_BUCKET_MB": "0.001"}
        result = kerascli(["train", config, "--runs-dir", str(tmp_path / overlap), "-q", "--set", "train.epochs=1",
                           "--set", "train.deterministic=true"], ranks=2, env=env)
        assert result.returncode == 0, result.stderr
        runs[overlap] = str(tmp_path / overlap / "dp")
    on, off = weights(runs["on"]), weights(runs["off"])
    assert sorted(on) == sorted(off)
    for key in on:
        np.testing.assert_array_equal(on[key], off[key])
    np.testing.assert_array_equal(metrics(runs["on"]), metrics(runs["off"]))
    import json

    described = json.load(open(os.path.join(runs["on"], "summary.json")))["distributed"]["gradient_buckets"]
    assert described == {"overlap": "on", "buckets": 2, "bucket_mb": 0.001, "overlapped": True}


# SGD with Nesterov momentum and weight decay (every rank updates its slice of the weights and of the slots),
# and constrained weights (each rank projects some whole weights)
BY_PARTS = CONFIG.replace(
    "kernel_regularizer: {type: l2, l2: 0.001}}",
    "kernel_constraint: {type: max_norm, max_value: 0.4}, bias_constraint: {type: non_neg}}").replace(
    "{type: Dense, units: 16, activation: tanh}",
    "{type: Dense, units: 16, activation: tanh, kernel_constraint: {type: unit_norm, axis: 0}}").replace(
    "optimizer: adam,", "optimizer: {type: sgd, learning_rate: 0.1, momentum: 0.9, nesterov: true, "
    "weight_decay: 0.01},")


@needs_mpi
def test_ranks_update_their_parts_of_shared_weights(tmp_path):
    path = tmp_path / "parts.yaml"
    path.write_text(BY_PARTS)
    runs = {}
    for ranks in (1, 3, 4):  # 4: as two nodes of 2 ranks (each node projects every constrained weight)
        env = {"KERASCLI_MPI_NODE_RANKS": "2"} if ranks == 4 else {}
        result = kerascli(["train", str(path), "--runs-dir", str(tmp_path / f"r{ranks}"), "-q"], ranks=ranks,
                          env=env)
        assert result.returncode == 0, result.stderr
        runs[ranks] = str(tmp_path / f"r{ranks}" / "dp")
    import json

    for ranks in (3, 4):
        summary = json.load(open(os.path.join(runs[ranks], "summary.json")))
        assert summary["distributed"]["optimizer_step"] == "by parts"
        assert_close(weights(runs[ranks]), weights(runs[1]))
        np.testing.assert_allclose(metrics(runs[ranks]), metrics(runs[1]), rtol=1e-5)
    last = weights(runs[3])
    norms = np.linalg.norm(last["dense/kernel"], axis=0)
    assert norms.max() <= 0.4 + 1e-6 and (last["dense/bias"] >= 0).all()  # constraints held on 3 ranks
    np.testing.assert_allclose(np.linalg.norm(last["dense_1/kernel"], axis=0), 1.0, rtol=1e-5)


@needs_mpi
def test_clipping_changes_a_copy_of_the_shared_sum(config, tmp_path):
    """global_clipnorm scales the gradient in place: each rank must clip its own copy of the sum (a norm
    over whole weights: the ranks do not update by parts)."""
    clip = ["--set", "compile.optimizer={type: adam, global_clipnorm: 0.05}", "--set", "train.epochs=2"]
    for ranks in (1, 2, 4):  # 4: as two nodes of 2 ranks, which sum the shared sum's slices between them
        env = {"KERASCLI_MPI_NODE_RANKS": "2"} if ranks == 4 else {}
        result = kerascli(["train", config, "--runs-dir", str(tmp_path / f"r{ranks}"), "-q", *clip], ranks=ranks,
                          env=env)
        assert result.returncode == 0, result.stderr
    import json

    for ranks in (2, 4):
        assert_close(weights(str(tmp_path / f"r{ranks}" / "dp")), weights(str(tmp_path / "r1" / "dp")))
        summary = json.load(open(tmp_path / f"r{ranks}" / "dp" / "summary.json"))
        assert summary["distributed"]["optimizer_step"] == "whole"
        assert summary["distributed"]["nodes"] == ranks // 2


@needs_mpi
def test_dropout_streams_per_rank_resume_bit_for_bit(config, tmp_path):
    """Dropout on 2 ranks: each rank its own stream (the result is not the 1-process one), and a run
    stopped after epoch 2 and resumed ends with the same bits as one that ran through."""
    with_dropout = open(config).read().replace("    - {type: Dense, units: 16, activation: tanh}",
                                               "    - {type: Dense, units: 16, activation: tanh}\n"
                                               "    - {type: Dropout, rate: 0.3}")
    path = tmp_path / "dropout.yaml"
    path.write_text(with_dropout)
    through = kerascli(["train", str(path), "--runs-dir", str(tmp_path / "through"), "-q"], ranks=2)
    stopped = kerascli(["train", str(path), "--runs-dir", str(tmp_path / "resumed"), "-q", "--set",
                        "train.epochs=2"], ranks=2)
    assert through.returncode == 0 and stopped.returncode == 0, through.stderr + stopped.stderr
    resumed = kerascli(["resume", str(tmp_path / "resumed" / "dp"), "-q", "--set", "train.epochs=3"], ranks=2)
    assert resumed.returncode == 0, resumed.stderr
    a, b = weights(str(tmp_path / "through" / "dp")), weights(str(tmp_path / "resumed" / "dp"))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    alone = kerascli(["train", str(path), "--runs-dir", str(tmp_path / "alone"), "-q"])
    assert alone.returncode == 0, alone.stderr
    c = weights(str(tmp_path / "alone" / "dp"))
    assert not all(np.allclose(a[k], c[k], rtol=1e-3) for k in a)


@needs_mpi
def test_checkpoint_of_two_ranks_resumes_on_one_and_on_three(config, one_process, tmp_path):
    first = kerascli(["train", config, "--runs-dir", str(tmp_path), "-q", "--set", "train.epochs=2",
                      "--set", "train.deterministic=true"], ranks=2)
    assert first.returncode == 0, first.stderr
    run = str(tmp_path / "dp")
    copies = {n: str(tmp_path / f"copy{n}") for n in ("1", "3a", "3b")}
    for copy in copies.values():
        shutil.copytree(run, copy)
    for name, copy in copies.items():
        result = kerascli(["resume", copy, "-q", "--set", "train.epochs=3"], ranks=1 if name == "1" else 3)
        assert result.returncode == 0, result.stderr
        assert_close(weights(copy), weights(one_process))
    # deterministic: the same resume on the same ranks gives the same bits
    a, b = weights(copies["3a"]), weights(copies["3b"])
    assert all(np.array_equal(a[k], b[k]) for k in a)


@needs_mpi
def test_moving_statistics_are_the_whole_batch_average(write_config, tmp_path):
    """One step over all 96 samples: BatchNormalization's moving mean after the step is
    the 1-process one (each rank's part averaged, weighted by its size)."""
    config = write_config("""
        name: bn
        seed: 2
        data: {dataset: synthetic_classification, samples: 96, features: 5, classes: 2}
        model:
          input_shape: [5]
          layers:
            - {type: Dense, units: 6}
            - {type: BatchNormalization, momentum: 0.5}
            - {type: Dense, units: 2, activation: softmax}
        compile: {optimizer: sgd, loss: sparse_categorical_crossentropy}
        train: {epochs: 1, batch_size: 96, threads: 1}
    """)
    runs = {}
    for ranks in (1, 3):
        folder = tmp_path / f"r{ranks}"
        result = kerascli(["train", config, "--runs-dir", str(folder), "-q"], ranks=ranks)
        assert result.returncode == 0, result.stderr
        runs[ranks] = weights(str(folder / "bn"))
    np.testing.assert_allclose(runs[3]["batch_normalization/moving_mean"],
                               runs[1]["batch_normalization/moving_mean"], rtol=1e-5, atol=1e-7)
    assert not np.allclose(runs[1]["batch_normalization/moving_mean"], 0)


LONG = CONFIG.replace("train: {epochs: 3, batch_size: 30, threads: 1}", "train: {epochs: 400, batch_size: 2, threads: 1}")


def _rank_pids(marker: str) -> dict[int, int]:
    """{rank: pid} of the processes started with KERASCLI_TEST_JOB=marker."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = dict(v.split("=", 1) for v in open(f"/proc/{pid}/environ").read().split("\0") if "=" in v)
        except OSError:
            continue
        if env.get("KERASCLI_TEST_JOB") == marker and "PMI_RANK" in env:
            found[int(env["PMI_RANK"])] = int(pid)
    return found


def _start_long(write_config, tmp_path, env=None):
    config = write_config(LONG, "long.yaml")
    marker = uuid.uuid4().hex
    proc = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-m", "kerascli", "train", config, "--runs-dir",
                             str(tmp_path), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "KERASCLI_TEST_JOB": marker, **(env or {})})
    metrics_file = tmp_path / "dp" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not metrics_file.exists():  # training is under way: an epoch ended
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no epoch ended in 120 s"
        time.sleep(0.05)
    pids = _rank_pids(marker)
    assert sorted(pids) == [0, 1]
    return proc, pids


@needs_mpi
def test_sigterm_to_one_rank_stops_all_with_one_checkpoint(write_config, tmp_path):
    proc, pids = _start_long(write_config, tmp_path)
    os.kill(pids[1], signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.count("stopped by SIGTERM") == 1, err  # rank 0 speaks for both
    steps = [f for f in os.listdir(tmp_path / "dp" / "checkpoints") if f.startswith("step-")]
    assert len(steps) == 1
    assert '"interrupted"' in (tmp_path / "dp" / "status.json").read_text()


@needs_mpi
def test_a_killed_rank_ends_the_job(write_config, tmp_path):
    proc, pids = _start_long(write_config, tmp_path)
    os.kill(pids[1], signal.SIGKILL)
    started = time.monotonic()
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert time.monotonic() - started < 60


@needs_mpi
def test_a_hung_rank_ends_the_job_after_the_timeout(write_config, tmp_path):
    proc, pids = _start_long(write_config, tmp_path, env={"KERASCLI_MPI_TIMEOUT": "2"})
    os.kill(pids[1], signal.SIGSTOP)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.kill(pids[1], signal.SIGKILL)
    assert proc.returncode != 0
    assert "rank 0: no word from the other ranks for 2 s" in err, (proc.returncode, err)


@needs_mpi
def test_an_error_on_one_rank_mid_training_ends_the_job_saying_where(write_config, tmp_path):
    plugin = tmp_path / "flaky.py"
    plugin.write_text("import os\nfrom kerascli.api import Layer, register_layer\n"
                      "@register_layer('Flaky')\nclass Flaky(Layer):\n    calls = 0\n"
                      "    def call(self, x):\n        Flaky.calls += 1\n"
                      "        if os.environ.get('PMI_RANK') == '1' and Flaky.calls > 20:\n"
                      "            raise RuntimeError('sensor unplugged')\n        return x * 1.0\n")
    config = write_config(f"plugins: [{plugin}]\n" + LONG.replace("    - {type: Dense, units: 16, activation: tanh}",
                                                                   "    - {type: Flaky}"))
    started = time.monotonic()
    result = kerascli(["train", config, "--runs-dir", str(tmp_path / "runs"), "-q"], ranks=2, timeout=120)
    assert result.returncode == 1
    assert "internal error: rank 1: RuntimeError: sensor unplugged" in result.stderr
    assert time.monotonic() - started < 60


@needs_mpi
@pytest.mark.parametrize("sets, env, says", [
    (["--set", "train.epochz=3"], {}, "unknown key 'epochz'"),
    ([], {"KERASCLI_MPI_NODE_RANKS": "two"}, "KERASCLI_MPI_NODE_RANKS must be a whole number of ranks"),
    ([], {"KERASCLI_MPI_OVERLAP": "yes"}, "KERASCLI_MPI_OVERLAP must be auto, on or off, got 'yes'"),
])
def test_a_config_error_is_said_once(config, tmp_path, sets, env, says):
    result = kerascli(["train", config, "--runs-dir", str(tmp_path), *sets], ranks=2, env=env)
    assert result.returncode == 2
    assert result.stderr.count("error:") == 1, result.stderr
    assert says in result.stderr
    assert not os.path.exists(tmp_path / "dp")


@needs_mpi
def test_gpu_backend_is_refused_under_mpi(config, tmp_path):
    result = kerascli(["train", config, "--runs-dir", str(tmp_path), "--backend", "cuda"], ranks=2)
    assert result.returncode == 2
    assert "data-parallel training over MPI runs on the cpu or reference backend" in result.stderr


def test_missing_mpi4py_is_one_line(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setattr(distributed, "_WORLD", None)
    with pytest.raises(ConfigError, match=r"one of 4 MPI processes, but mpi4py is not installed: pip install "
                                          r"'kerascli\[mpi\]'"):
        distributed.world()


def test_one_process_never_imports_mpi(config, tmp_path):
    code = ("import sys; from click.testing import CliRunner; from kerascli.cli import cli; "
            f"r = CliRunner().invoke(cli, ['train', {config!r}, '--runs-dir', {str(tmp_path)!r}, '-q', "
            "'--set', 'train.epochs=1']); assert r.exit_code == 0, r.output; "
            "print('mpi4py' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "SLURM_"))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("env, expected", [
    ({}, 1),
    ({"PMI_SIZE": "3"}, 3),
    ({"OMPI_COMM_WORLD_SIZE": "4"}, 4),
    ({"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "8"}, 8),
    ({"SLURM_STEP_ID": "batch", "SLURM_STEP_NUM_TASKS": "8"}, 1),  # the batch script itself: one process
])
def test_launched_processes(monkeypatch, env, expected):
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_ID", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert launched_processes() == expected


def _split(n=23):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return Split(x, np.arange(n))


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_ranks_parts_make_up_each_global_batch(size):
    split = _split()
    order = np.random.default_rng(0).permutation(len(split))
    whole = list(split.batches(8, order))
    parts = [list(ShardedSplit(split, r, size, training=False).batches(8, order)) for r in range(size)]
    for i, (x, y, _) in enumerate(whole):
        got = [p[i] for p in parts if i < len(p) and p[i] is not None]
        # consecutive parts, in rank order, of sizes within one of each other
        assert np.array_equal(np.concatenate([g[1] for g in got]), y)
        sizes = [len(g[1]) for g in got]
        assert max(sizes) - min(sizes) <= 1


def test_a_rank_without_samples_stands_in_with_zero_weight():
    split = _split(5)
    order = np.arange(5)
    # a global batch of 5 on 7 ranks: ranks 5 and 6 train on a stand-in marked by Padding weights
    (x, y, w), = ShardedSplit(split, 6, 7, training=True).batches(5, order)
    assert isinstance(w, Padding) and len(y) == 1 and not w.any()
    (x, y, w), = ShardedSplit(split, 2, 7, training=True).batches(5, order)
    assert w is None and list(y) == [2]
    # in evaluation such a rank has no batch
    assert list(ShardedSplit(split, 6, 7, training=False).batches(5, order)) == []


def test_batches_made_whole_are_cut_after():
    """A dataset's own batches (and augmented ones, whose draws follow the whole batch) are made whole on
    each rank, then cut."""
    class Source:
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return np.full((4, 3), i, np.float32), np.arange(4) + 10 * i

    split = BatchSplit(Source(), np.arange(2), lambda x, y, where: (x, y), 4, "train")
    parts = [list(ShardedSplit(split, r, 3, training=True).batches(4, np.array([1, 0]))) for r in range(3)]
    assert [list(p[0][1]) for p in parts] == [[10, 11], [12], [13]]
    assert [list(p[1][1]) for p in parts] == [[0, 1], [2], [3]]


def test_synchronized_batch_norm_alone_is_plain_batch_norm():
    """Through the synchronized path with one rank (sums over nothing else), forward and backward are the
    plain kernels' (float64)."""
    from kerascli.config import resolve_config
    from kerascli.config.loader import LoadedConfig
    from kerascli.graph.builder import build_model
    from kerascli.ops import get_ops

    spec = resolve_config(LoadedConfig(data={
        "data": {"dataset": "digits"}, "compile": {"loss": "mse"},
        "model": {"input_shape": [5], "layers": [{"type": "BatchNormalization", "synchronized": True}]}},
        source="test"))
    model = build_model(spec.model, spec.source)
    model.set_backend(get_ops("cpu"), 0)
    model.allocate(np.float64, 0)
    (layer,) = model.layers
    rng = np.random.default_rng(0)
    x, dy = rng.normal(size=(7, 5)) * 3 + 1, rng.normal(size=(7, 5))
    layer.params["gamma"][...] = rng.normal(size=5)

    class One:
        rows = 7

        class world:
            @staticmethod
            def sum(buf):
                pass

    plain = layer.forward(x, training=True).copy(), layer.backward(dy).copy(), layer.grads["gamma"].copy()
    layer.sync = One()
    synced = layer.forward(x, training=True).copy(), layer.backward(dy).copy(), layer.grads["gamma"].copy()
    for a, b in zip(plain, synced):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@needs_mpi
def test_synchronized_batch_norm_trains_the_weights_of_one_process(config, tmp_path):
    bn = open(config).read().replace("    - {type: Dense, units: 16, activation: tanh}",
                                     "    - {type: Dense, units: 16, use_bias: false}\n"
                                     "    - {type: BatchNormalization, synchronized: true, momentum: 0.5}")
    path = tmp_path / "bn.yaml"
    path.write_text(bn)
    runs = {}
    for ranks in (1, 3):
        result = kerascli(["train", str(path), "--runs-dir", str(tmp_path / f"r{ranks}"), "-q"], ranks=ranks)
        assert result.returncode == 0, result.stderr
        runs[ranks] = str(tmp_path / f"r{ranks}" / "dp")
    assert_close(weights(runs[3]), weights(runs[1]))
    np.testing.assert_allclose(metrics(runs[3]), metrics(runs[1]), rtol=1e-5)


@pytest.mark.parametrize("initializes", [True, False])
def test_a_rank_leaves_shared_weights_to_rank_0(tmp_path, initializes):
    """Where the ranks share the weights (the optimizer step by parts), only rank 0 writes them before
    training starts (initialised, loaded or resumed: a late rank initialising them after rank 0 loaded
    others would overwrite those); the other ranks still initialise their own non-trainable weights, with
    the same draws."""
    from kerascli.config.loader import load_config_file
    from kerascli.config.schema import resolve_config
    from kerascli.train.session import build_session

    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("{type: Dense, units: 16, activation: tanh}",
                                   "{type: BatchNormalization}\n    - {type: Dense, units: 16, activation: tanh}"))
    spec = resolve_config(load_config_file(str(path)))
    alone = build_session(spec).model

    class Storage:
        initializes_parameters = initializes

        def parameters(self, size, dtype):
            self.params = np.full(size, np.nan, dtype)
            return self.params

        def gradients(self, size, dtype):
            return None

    storage = Storage()
    model = build_session(spec, initial_weights=False, storage=storage).model
    assert model.param_buffer is storage.params
    np.testing.assert_array_equal(model.state_buffer, alone.state_buffer)  # moving statistics: every rank's own
    if initializes:
        np.testing.assert_array_equal(model.param_buffer, alone.param_buffer)
    else:
        assert np.isnan(model.param_buffer).all()
