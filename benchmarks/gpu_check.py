"""kerascli's cuda backend against PyTorch (eager) on the same GPU: training throughput of the benchmark
models, the two GEMMs the backend can use, and cuda against cpu training on digits.

    python benchmarks/gpu_check.py            # all of it (benchmarks/gpu_check.sh runs the tests first)
    python benchmarks/gpu_check.py --quick    # fewer samples and rounds

Both frameworks train on data already on the GPU, with Adam, and neither copies anything to the host per
batch (PyTorch sums its loss on the device, as kerascli does): the numbers compare kernels and launch
costs, not transfers. Rounds alternate between frameworks; the table shows medians of samples/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(1, ROOT)  # kerascli from this checkout, installed or not
from compare import Kerascli, cnn_data, mlp_data  # noqa: E402


class KerascliCuda(Kerascli):
    name = "kerascli"

    def __init__(self, gemm):
        super().__init__(threads=0)
        self.gemm = gemm

    def _session(self, input_shape, layers, plugins=()):
        config = {
            "data": {"dataset": "digits"},
            "model": {"input_shape": list(input_shape), "layers": layers},
            "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
            "train": {"backend": "cuda"},
        }
        return self._build(self._resolve(self._loaded(data=config, source="benchmark"))).trainer

    def epoch(self, trainer, split, order, batch):
        from kerascli.ops.cuda import gemm

        # the one cuda Ops serves every session: choose its GEMM for this epoch
        trainer.ops._gemm = gemm.cublas_gemm if self.gemm == "cublas" else gemm.numba_gemm
        trainer.train_epoch(split, batch, order, epoch=1)
        trainer.totals.means()  # the epoch's sums come down once
        trainer.ops.synchronize()


class TorchCuda:
    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch
        self.device = torch.device("cuda")

    def mlp(self):
        nn = self.torch.nn
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
        return model.to(self.device)

    def cnn(self):
        nn = self.torch.nn
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10))
        return model.to(self.device)

    def data(self, x, y):
        t = self.torch.from_numpy(x)
        t = t.permute(0, 3, 1, 2).contiguous() if t.ndim == 4 else t
        return t.to(self.device), self.torch.from_numpy(y).to(self.device)

    def epoch(self, state, data, order, batch):
        torch = self.torch
        model, opt = state
        xt, yt = data
        total = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            xb, yb = xt[idx], yt[idx]
            opt.zero_grad(set_to_none=True)
            out = model(xb)
            loss = torch.nn.functional.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
            correct += (out.argmax(1) == yb).sum()
        float(total), int(correct)  # once per epoch, as kerascli's logs
        torch.cuda.synchronize()


def throughput(cases, rounds, log):
    import torch

    from kerascli.data.pipeline import Split

    rows = []
    for name, kind, batch, samples in cases:
        x, y = (mlp_data if kind == "mlp" else cnn_data)(samples)
        runs = {}
        for gemm in ("cublas", "numba"):
            from kerascli.ops.cuda.gemm import cupy_module

            if gemm == "cublas" and cupy_module() is None:
                log("  kerascli with cuBLAS skipped: CuPy is not installed")
                continue
            k = KerascliCuda(gemm)
            trainer = getattr(k, kind)()
            split = Split(x, y)
            runs[f"kerascli ({gemm} GEMM)"] = (k, trainer, split)
        t = TorchCuda()
        model = getattr(t, kind)()
        state = (model, torch.optim.Adam(model.parameters(), lr=1e-3))
        runs["torch eager"] = (t, state, t.data(x, y))
        times = {label: [] for label in runs}
        orders = [np.random.default_rng(r).permutation(samples) for r in range(rounds + 1)]
        torch_orders = [torch.from_numpy(o).to(t.device) for o in orders]
        for r in range(rounds + 1):  # round 0 warms up (compiles, uploads)
            for label, (fw, state, data) in runs.items():
                order = torch_orders[r] if fw is t else orders[r]
                started = time.perf_counter()
                fw.epoch(state, data, order, batch)
                if r:
                    times[label].append(time.perf_counter() - started)
        result = {label: samples / statistics.median(v) for label, v in times.items()}
        rows.append((name, result))
        log(name + ": " + ", ".join(f"{label} {v:,.0f}/s" for label, v in result.items()))
    return rows


def short_path_report() -> str:
    """How the kernels the benchmark ran were launched: by kerascli's short path (kerascli.ops.cuda.kernel)
    or, for the signatures whose direct values differed from numba-cuda's, by numba-cuda's own."""
    import gc

    from kerascli.ops.cuda.kernel import Kernel

    kernels = [k for k in gc.get_objects() if isinstance(k, Kernel) and k._signatures]
    short = sum(k.short_path_signatures for k in kernels)
    total = sum(len(k._signatures) for k in kernels)
    kept = sorted(k.__name__ for k in kernels if k.short_path_signatures < len(k._signatures))
    return (f"launches: {short} of {total} argument signatures of {len(kernels)} kernels by the short path"
            + (f"; numba-cuda's launch kept for {', '.join(kept)}" if kept else ""))


def gemm_rates(log):
    """TFLOP/s of the two GEMMs on the benchmark MLP's largest products (batch 4096), float32."""
    from numba import cuda

    from kerascli.ops.cuda import gemm

    rng = np.random.default_rng(0)
    out = {}
    for m, k, n in ((4096, 784, 256), (4096, 256, 256), (8192, 8192, 8192)):
        a = cuda.to_device(rng.random((m, k), dtype=np.float32))
        b = cuda.to_device(rng.random((k, n), dtype=np.float32))
        c = cuda.device_array((m, n), np.float32)
        for label, f in (("cublas", gemm.cublas_gemm), ("numba", gemm.numba_gemm)):
            if label == "cublas" and gemm.cupy_module() is None:
                continue
            f(a, b, c)
            cuda.synchronize()
            reps = 3 if m == 8192 else 50
            started = time.perf_counter()
            for _ in range(reps):
                f(a, b, c)
            cuda.synchronize()
            seconds = (time.perf_counter() - started) / reps
            out[f"{m}x{k}x{n} {label}"] = 2 * m * k * n / seconds / 1e12
        log(f"GEMM {m}x{k}x{n}: " + ", ".join(f"{key.split()[-1]} {v:.2f} TFLOP/s" for key, v in out.items()
                                            if key.startswith(f"{m}x{k}x{n}")))
    return out


def digits_agreement(log, epochs=5):
    """Final training loss of cuda and cpu runs of the shipped configs from the same seed (dropout off:
    the two backends draw different masks), in float32 and in float64. float64 shows whether the two
    backends compute the same thing; float32 how far rounding carries each from that (on the CPU, the
    cpu and reference backends differ by 1.2e-3 relative on digits_cnn in float32, 1e-16 in float64)."""
    results = {}
    for config, dropout in (("digits_mlp.yaml", "model.layers[2].rate=0.0"),
                            ("digits_cnn.yaml", "model.layers[9].rate=0.0")):
        losses = {}
        for dtype in ("float32", "float64"):
            for backend in ("cpu", "cuda"):
                runs = tempfile.mkdtemp(prefix="kerascli-gpu-check-")
                cmd = [sys.executable, "-m", "kerascli", "train", os.path.join(ROOT, "configs", config),
                       "--set", f"train.epochs={epochs}", "--set", dropout, "--set", f"train.dtype={dtype}",
                       "--backend", backend, "--runs-dir", runs, "--quiet"]
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                if done.returncode:
                    raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
                (run,) = os.listdir(runs)
                lines = open(os.path.join(runs, run, "metrics.csv")).read().split()
                head, last = lines[0].split(","), lines[-1].split(",")
                losses[f"{backend} {dtype}"] = float(last[head.index("loss")])

        def rel(a, b):
            return abs(losses[a] - losses[b]) / abs(losses[b])

        results[config] = {**losses, "relative_difference": rel("cuda float32", "cpu float32"),
                           "relative_difference_float64": rel("cuda float64", "cpu float64"),
                           "cpu_float32_vs_float64": rel("cpu float32", "cpu float64"),
                           "cuda_float32_vs_float64": rel("cuda float32", "cpu float64")}
        r = results[config]
        log(f"{config}, {epochs} epochs, final loss: float32 cpu {losses['cpu float32']:.6f}, cuda "
            f"{losses['cuda float32']:.6f} (relative difference {r['relative_difference']:.2e}); float64 "
            f"difference {r['relative_difference_float64']:.2e}; from the float64 loss: cpu float32 "
            f"{r['cpu_float32_vs_float64']:.2e}, cuda float32 {r['cuda_float32_vs_float64']:.2e}")
    return results


def profile(log, kind="mlp", batch=4096, samples=65536, top=30):
    """Where the host's time goes in one kerascli training epoch on the GPU (cProfile, by own time)."""
    import cProfile
    import pstats

    from kerascli.data.pipeline import Split
    from kerascli.ops.cuda.gemm import cupy_module

    k = KerascliCuda("cublas" if cupy_module() is not None else "numba")
    trainer = getattr(k, kind)()
    x, y = (mlp_data if kind == "mlp" else cnn_data)(samples)
    split, order = Split(x, y), np.random.default_rng(0).permutation(samples)
    k.epoch(trainer, split, order, batch)  # warm-up
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    k.epoch(trainer, split, order, batch)
    profiler.disable()
    seconds = time.perf_counter() - started
    log(f"profile of one {kind} epoch at batch {batch}: {seconds * 1e3 / (samples // batch):.2f} ms per step")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per case (default 5, quick 3)")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    parser.add_argument("--profile", choices=["mlp", "cnn"], default=None,
                        help="only profile the host side of one training epoch of this model")
    args = parser.parse_args()
    log = lambda s: print(s, flush=True)  # noqa: E731
    import torch

    from kerascli.ops import get_ops

    ops = get_ops("cuda")
    log(f"device: {ops.device_name}; default GEMM: {ops.gemm_name}; torch {torch.__version__}")
    if args.profile:
        profile(log, args.profile, *((4096, 65536) if args.profile == "mlp" else (256, 8192)))
        return
    scale = 4 if args.quick else 1
    cases = [("train MLP b1024", "mlp", 1024, 131072 // scale), ("train MLP b4096", "mlp", 4096, 262144 // scale),
             ("train CNN b256", "cnn", 256, 32768 // scale)]
    rows = throughput(cases, args.rounds or (3 if args.quick else 5), log)
    log(short_path_report())
    rates = gemm_rates(log)
    agreement = digits_agreement(log)
    cpu = json.load(open(os.path.join(HERE, "results.json")))["samples_per_second"]
    cpu_best = {"mlp": cpu["train MLP b512"]["kerascli"], "cnn": cpu["train CNN b128"]["kerascli"]}
    log("")
    log("| case | kerascli (cuBLAS GEMM) | kerascli (numba GEMM) | torch eager | ratio (best kerascli / torch) "
        "| vs kerascli on 2 CPU cores |")
    log("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, result in rows:
        best = max(v for k, v in result.items() if k.startswith("kerascli"))
        cpu_figure = cpu_best["cnn" if "CNN" in name else "mlp"]
        log(f"| {name} | {result.get('kerascli (cublas GEMM)', float('nan')):,.0f} | "
            f"{result.get('kerascli (numba GEMM)', float('nan')):,.0f} | {result['torch eager']:,.0f} | "
            f"{best / result['torch eager']:.2f}x | {best / cpu_figure:.1f}x |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": ops.device_name, "throughput": dict(rows), "gemm_tflops": rates,
                       "digits_agreement": agreement}, f, indent=2)


if __name__ == "__main__":
    main()
