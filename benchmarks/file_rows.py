"""Training from a large .npy read batch by batch against the same data loaded whole: throughput and peak
memory (issue: a 4 GB float32 .npy keeps peak RSS under 1 GB, at no more than 10% lower throughput than
from RAM when the file is in the page cache).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/file_rows.py [--gib 4] [--rounds 2]

Writes the features (N, 784) float32 as x.npy (read by rows) and as x.npz (loaded whole), warms the page
cache, then trains the benchmark MLP (784-256-256-10, Adam, batch 128, 2 threads, one epoch) from each,
alternating, each run in a fresh process whose peak RSS is taken from getrusage. Prints samples/s and
peak RSS per run and the ratio of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

import numpy as np

CONFIG = """
name: {name}
seed: 1
data: {data}
model:
  input_shape: [784]
  layers:
    - {{type: Dense, units: 256, activation: relu}}
    - {{type: Dense, units: 256, activation: relu}}
    - {{type: Dense, units: 10, activation: softmax}}
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
train: {{epochs: 1, batch_size: 128, threads: 2}}
"""


def write_data(folder: str, gib: float) -> tuple[str, str, str]:
    rows = int(gib * (1 << 30)) // (784 * 4)
    x_path, y_path, npz_path = (os.path.join(folder, n) for n in ("x.npy", "y.npy", "x.npz"))
    rng = np.random.default_rng(0)
    x = np.lib.format.open_memmap(x_path, mode="w+", dtype=np.float32, shape=(rows, 784))
    for start in range(0, rows, 65536):
        x[start:start + 65536] = rng.random((min(65536, rows - start), 784), dtype=np.float32)
    x.flush()
    y = rng.integers(0, 10, rows)
    np.save(y_path, y)
    np.savez(npz_path, x=np.load(x_path, mmap_mode="r"), y=y)
    del x
    return x_path, y_path, npz_path


def warm(path: str) -> None:
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass


def run(config: str, runs: str) -> tuple[float, int]:
    """(train samples/s, peak RSS in bytes) of one training run in a fresh process."""
    script = textwrap.dedent(f"""
        import resource, subprocess, sys
        done = subprocess.run([sys.executable, "-m", "kerascli", "train", {config!r}, "--runs-dir", {runs!r},
                               "-q"], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    newest = max((os.path.join(runs, d) for d in os.listdir(runs)), key=os.path.getmtime)
    summary = json.load(open(os.path.join(newest, "summary.json")))
    return summary["train_samples_per_second"], int(out.stdout.split()[-1]) * 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=4.0, help="size of the features file (GiB)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", default=None, help="where to write the data (default: a temporary folder)")
    args = parser.parse_args()
    folder = args.dir or tempfile.mkdtemp(prefix="kerascli-file-rows-")
    os.makedirs(folder, exist_ok=True)
    x_path, y_path, npz_path = write_data(folder, args.gib)
    print(f"features: {os.path.getsize(x_path) / (1 << 30):.2f} GiB in {x_path}", flush=True)
    configs = {}
    for name, data in (("rows", f"{{dataset: npy, x: {x_path}, y: {y_path}}}"),
                       ("ram", f"{{dataset: npz, path: {npz_path}}}")):
        configs[name] = os.path.join(folder, f"{name}.yaml")
        with open(configs[name], "w") as f:
            f.write(CONFIG.format(name=name, data=data))
    results: dict = {"rows": [], "ram": []}
    for r in range(args.rounds):
        for name in ("rows", "ram"):
            warm(x_path if name == "rows" else npz_path)
            speed, rss = run(configs[name], os.path.join(folder, "runs"))
            results[name].append((speed, rss))
            print(f"round {r + 1} {name}: {speed:,.0f} samples/s, peak RSS {rss / (1 << 20):,.0f} MiB", flush=True)
    rows = statistics.median(s for s, _ in results["rows"])
    ram = statistics.median(s for s, _ in results["ram"])
    print(f"from the file by rows / loaded whole: {rows / ram:.3f} of the throughput; peak RSS "
          f"{max(m for _, m in results['rows']) / (1 << 20):,.0f} MiB against "
          f"{max(m for _, m in results['ram']) / (1 << 20):,.0f} MiB")


if __name__ == "__main__":
    main()
