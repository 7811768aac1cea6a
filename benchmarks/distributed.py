"""Data-parallel training over MPI against one process: the MLP of the benchmarks (784-256-256-10, Adam) at a
global batch of 512, one thread per process, on synthetic data, with ``kerascli train`` itself.

    python benchmarks/distributed.py                  # 1 process, then 2 ranks, taking turns, 3 rounds
    python benchmarks/distributed.py --ranks 2,3 --rounds 5 --samples 61440

Each run's training throughput is over its epochs after the first (metrics.csv's seconds: no startup, no
kernel loading, no final evaluation); the table shows medians and the ratio to one process, with the time per
step spent summing gradients over the ranks and waiting for them (``allreduce_ms_per_step``), and the
machine's ceiling: as many independent one-process runs at once, each at batch / ranks, with nothing summed
between them. It also times the gradient Allreduce alone (the flat float32 buffer of 269,322 numbers, as in training) to give its bandwidth, and
projects the scaling to more nodes from the measured step time and an assumed network (see the README,
"Running on a cluster"). Needs mpi4py and an mpiexec (pip install mpi4py mpich).

For numbers comparable to other machines' runs, unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE where they are
set for old OpenBLAS builds.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np

CONFIG = """
name: {name}
seed: 1
data: {{dataset: npz, path: {data}}}
model:
  input_shape: [784]
  layers:
    - {{type: Dense, units: 256, activation: relu}}
    - {{type: Dense, units: 256, activation: relu}}
    - {{type: Dense, units: 10, activation: softmax}}
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
train: {{epochs: {epochs}, batch_size: {batch}, threads: 1}}
checkpoint: {{monitor: loss}}
"""

BATCH = 512
PARAMS = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10

ALLREDUCE = """
import time, numpy as np
from mpi4py import MPI
comm = MPI.COMM_WORLD
buf = np.ones({n}, np.float32)
for _ in range(20):
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
times = []
for _ in range(200):
    comm.Barrier()
    t = time.perf_counter()
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    times.append(time.perf_counter() - t)
if comm.rank == 0:
    print(sorted(times)[len(times) // 2])
"""


def mpiexec() -> str:
    found = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if found is None:
        sys.exit("no mpiexec: pip install mpi4py mpich")
    return found


def write_case(folder: str, samples: int, epochs: int, batch: int) -> str:
    """The MLP's synthetic data and config in ``folder``; returns the config's path."""
    rng = np.random.default_rng(0)
    data = os.path.join(folder, "mlp.npz")
    np.savez(data, x=rng.random((samples, 784), dtype=np.float32), y=rng.integers(0, 10, samples))
    config = os.path.join(folder, "mlp.yaml")
    with open(config, "w") as f:
        f.write(CONFIG.format(name="mlp", data=data, epochs=epochs, batch=batch))
    return config


def train(folder: str, config: str, ranks: int, name: str) -> dict:
    command = [sys.executable, "-m", "kerascli", "train", config, "--runs-dir", folder, "--name", name, "-q"]
    if ranks > 1:
        command = [mpiexec(), "-n", str(ranks)] + command
    subprocess.run(command, check=True, capture_output=True, text=True)
    with open(os.path.join(folder, name, "summary.json")) as f:
        summary = json.load(f)
    summary["steady_samples_per_second"] = steady(os.path.join(folder, name))
    return summary


def steady(run: str) -> float:
    """Samples per second over the epochs after the first (which loads the kernels from the cache)."""
    with open(os.path.join(run, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(run, "summary.json")) as f:
        summary = json.load(f)
    per_epoch = summary["train_samples_per_second"] * summary["train_seconds"] / len(rows)
    return per_epoch * len(rows[1:]) / sum(float(row["seconds"]) for row in rows[1:])


def independent(folder: str, config: str, ranks: int, round_: int) -> float:
    """The machine's ceiling for ``ranks`` processes: as many one-process runs at the same time, each on
    batches of batch / ranks with nothing summed between them; their throughputs added."""
    procs = []
    for r in range(ranks):
        name = f"alone{ranks}-{round_}-{r}"
        command = [sys.executable, "-m", "kerascli", "train", config, "--runs-dir", folder, "--name", name, "-q",
                   "--set", f"train.batch_size={BATCH // ranks}"]
        procs.append((name, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
    total = 0.0
    for name, proc in procs:
        if proc.wait():
            sys.exit(proc.stderr.read().decode())
        total += steady(os.path.join(folder, name))
    return total


def allreduce_seconds(ranks: int) -> float:
    out = subprocess.run([mpiexec(), "-n", str(ranks), sys.executable, "-c", ALLREDUCE.format(n=PARAMS)],
                         check=True, capture_output=True, text=True).stdout
    return float(out.split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", default="2", help="rank counts to compare with one process (comma-separated)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=30720)
    ap.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is not counted)")
    ap.add_argument("--batch", type=int, default=512, help="the global batch size")
    args = ap.parse_args()
    global BATCH
    BATCH = args.batch
    counts = [1] + [int(r) for r in args.ranks.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        config = write_case(tmp, args.samples, args.epochs, args.batch)
        train(tmp, config, 1, "warmup")  # compiles the kernels once, into the cache every run then loads
        speed = {r: [] for r in counts}
        allreduce_ms = {r: [] for r in counts}
        ceiling = {r: [] for r in counts}
        for round_ in range(args.rounds):
            for r in counts:  # taking turns, so noise hits every rank count alike
                summary = train(tmp, config, r, f"r{r}-{round_}")
                speed[r].append(summary["steady_samples_per_second"])
                if summary.get("distributed"):
                    allreduce_ms[r].append(summary["distributed"]["allreduce_ms_per_step"])
            for r in counts[1:]:
                ceiling[r].append(independent(tmp, config, r, round_))
        alone = {r: allreduce_seconds(r) for r in counts if r > 1}

    base = statistics.median(speed[1])
    steps = args.samples / args.batch
    print(f"MLP 784-256-256-10, global batch {args.batch}, {args.samples} samples, 1 thread per process, "
          f"{args.rounds} rounds (medians)")
    print(f"{'processes':>9} {'samples/s':>11} {'vs 1':>6} {'ms/step':>8} {'allreduce ms/step':>18}")
    results = []
    for r in counts:
        s = statistics.median(speed[r])
        ar = statistics.median(allreduce_ms[r]) if allreduce_ms[r] else 0.0
        print(f"{r:>9} {s:>11,.0f} {s / base:>5.2f}x {1e3 * args.samples / s / steps:>8.2f} {ar:>18.3f}")
        results.append({"ranks": r, "samples_per_second": s, "speedup": s / base, "allreduce_ms_per_step": ar,
                        "runs": speed[r]})
    for r in counts[1:]:
        c = statistics.median(ceiling[r])
        print(f"{r:>9} {c:>11,.0f} {c / base:>5.2f}x  as many independent one-process runs at batch "
              f"{args.batch // r}, nothing summed: the machine's ceiling")
        results.append({"independent": r, "samples_per_second": c, "speedup": c / base, "runs": ceiling[r]})
    for r, seconds in alone.items():
        megabytes = PARAMS * 4 / 1e6
        # a ring allreduce moves 2 (p - 1) / p of the buffer through each rank's link
        bus = 2 * (r - 1) / r * PARAMS * 4 / seconds / 1e9
        print(f"Allreduce of the {megabytes:.2f} MB gradient buffer alone on {r} ranks: {1e3 * seconds:.3f} ms "
              f"(bus bandwidth {bus:.1f} GB/s)")
    projection = project(1e3 * args.samples / base / steps)
    print(json.dumps({"mlp_batch": args.batch, "results": results,
                      "allreduce_alone_ms": {r: 1e3 * s for r, s in alone.items()}, "projection": projection}))


# networks for the projection: (name, bandwidth in GB/s per direction, latency per message in microseconds)
NETWORKS = [("10 Gb/s Ethernet", 1.25, 25.0), ("25 Gb/s Ethernet", 3.1, 15.0), ("100 Gb/s InfiniBand", 12.5, 2.0)]


def project(step_ms: float, nodes=(2, 4, 8)) -> list[dict]:
    """On paper: one rank per node, each with this machine's step time per sample; a ring Allreduce moves
    2 (p - 1) / p of the gradient buffer through each node's link in 2 (p - 1) messages."""
    megabytes = PARAMS * 4 / 1e6
    print(f"on paper, nodes like this one running the measured step ({step_ms:.2f} ms for the global batch):")
    rows = []
    for name, gbps, latency_us in NETWORKS:
        cells = []
        for p in nodes:
            compute = step_ms / p
            allreduce = 2 * (p - 1) / p * megabytes / gbps + 2 * (p - 1) * latency_us / 1e3  # MB / (GB/s) = ms
            speedup = step_ms / (compute + allreduce)
            cells.append(f"{p} nodes {speedup:.1f}x")
            rows.append({"network": name, "nodes": p, "compute_ms": compute, "allreduce_ms": allreduce,
                         "speedup": speedup})
        print(f"  {name:<20} " + ", ".join(cells))
    return rows


if __name__ == "__main__":
    main()
