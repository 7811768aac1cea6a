"""The flat gradient's sum sent in buckets during the backward pass against one sum after it
(KERASCLI_MPI_OVERLAP=on / off), on the MLP of benchmarks/distributed.py, 2 ranks taken as two nodes
(KERASCLI_MPI_NODE_RANKS=1: each rank its own node, so the sum is the Allreduce of the flat gradient that
runs between nodes), one thread each, with ``kerascli train`` itself.

    python benchmarks/overlap.py                       # shared memory and TCP, 3 rounds, default buckets
    python benchmarks/overlap.py --rounds 5 --bucket-mb 0.25,1

Two transports: MPICH's default (shared memory between processes of one machine) and TCP on loopback
(UCX_TLS=tcp,self and MPIR_CVAR_NOLOCAL=1: the path a cluster without a fast interconnect takes, minus the
wire). Each round runs every setting once, taking turns; the table shows medians of the steady throughput
(epochs after the first), the ratio on / off, and the time per step the sums still cost after the backward
pass (``allreduce_ms_per_step``). One run per transport with ``auto`` shows what it chose and the step times
it measured. Needs mpi4py and an mpiexec (pip install mpi4py mpich).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distributed import mpiexec, steady, write_case  # noqa: E402

TRANSPORTS = {"shared memory": {}, "TCP (loopback)": {"UCX_TLS": "tcp,self", "MPIR_CVAR_NOLOCAL": "1"}}


def train(folder: str, config: str, name: str, env: dict) -> dict:
    command = [mpiexec(), "-n", "2", sys.executable, "-m", "kerascli", "train", config, "--runs-dir", folder,
               "--name", name, "-q"]
    env = {**os.environ, "KERASCLI_MPI_NODE_RANKS": "1", **env}
    subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    with open(os.path.join(folder, name, "summary.json")) as f:
        summary = json.load(f)
    return {"samples_per_second": steady(os.path.join(folder, name)),
            "allreduce_ms_per_step": summary["distributed"]["allreduce_ms_per_step"],
            "buckets": summary["distributed"]["gradient_buckets"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=30720)
    ap.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is not counted)")
    ap.add_argument("--batch", type=int, default=512, help="the global batch size")
    ap.add_argument("--bucket-mb", default="0.25", help="bucket sizes to try (comma-separated MiB)")
    args = ap.parse_args()
    sizes = args.bucket_mb.split(",")

    with tempfile.TemporaryDirectory() as tmp:
        config = write_case(tmp, args.samples, args.epochs, args.batch)
        train(tmp, config, "warmup", {})  # compiles the kernels once, into the cache every run then loads
        settings = [("off", None)] + [("on", mb) for mb in sizes]
        runs = {(t, s): [] for t in TRANSPORTS for s in settings}
        for round_ in range(args.rounds):
            for transport, env in TRANSPORTS.items():
                for mode, mb in settings:  # taking turns, so noise hits every setting alike
                    extra = {"KERASCLI_MPI_OVERLAP": mode, **({"KERASCLI_MPI_BUCKET_MB": mb} if mb else {})}
                    runs[transport, (mode, mb)].append(
                        train(tmp, config, f"{len(runs)}-{round_}-{transport[:3]}-{mode}-{mb}", {**env, **extra}))
        chosen = {t: train(tmp, config, f"auto-{t[:3]}", env) for t, env in TRANSPORTS.items()}

    print(f"MLP 784-256-256-10, global batch {args.batch}, {args.samples} samples, 2 ranks as two nodes, "
          f"1 thread each, {args.rounds} rounds (medians)")
    print(f"{'transport':<16} {'sums':<30} {'buckets':>7} {'samples/s':>10} {'vs off':>7} {'sum ms/step':>12}")
    results = []
    for transport in TRANSPORTS:
        base = statistics.median(r["samples_per_second"] for r in runs[transport, ("off", None)])
        for mode, mb in settings:
            rs = runs[transport, (mode, mb)]
            speed = statistics.median(r["samples_per_second"] for r in rs)
            exposed = statistics.median(r["allreduce_ms_per_step"] for r in rs)
            label = "after the backward pass" if mode == "off" else f"during it, buckets of {mb} MiB"
            print(f"{transport:<16} {label:<30} {rs[0]['buckets']['buckets'] if mode == 'on' else 1:>7} "
                  f"{speed:>10,.0f} {speed / base:>6.3f}x {exposed:>12.3f}")
            results.append({"transport": transport, "overlap": mode, "bucket_mb": mb, "samples_per_second": speed,
                            "vs_off": speed / base, "allreduce_ms_per_step": exposed,
                            "runs": [r["samples_per_second"] for r in rs]})
        auto = chosen[transport]["buckets"]
        print(f"{transport:<16} auto chose overlapped={auto['overlapped']} from {auto.get('ms_per_step')}")
    print(json.dumps({"results": results, "auto": {t: c["buckets"] for t, c in chosen.items()}}))


if __name__ == "__main__":
    main()
