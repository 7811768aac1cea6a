"""kerascli side by side with PyTorch (CPU, eager and torch.compile), JAX (jax.jit + optax) and Keras 3 (torch
backend): same models, data, optimizer and threads.

    python benchmarks/compare.py                      # full run, writes benchmarks/results.json
    python benchmarks/compare.py --quick              # fewer repeats, smaller data: a smoke run
    python benchmarks/compare.py --peers torch,jax    # only these peers
    python benchmarks/compare.py --cases "train CNN"  # only the cases whose name contains this
    python benchmarks/compare.py --display-only       # only the live display's cost on a terminal
    python benchmarks/compare.py --custom-layer-only  # only a call-only plugin layer against built-in Dense

Peers that are not installed are skipped. Each framework runs in a worker
process of its own (so thread pools and their settings never mix), and the
script makes them take turns (kerascli, torch, keras, kerascli, ...) for
``--repeats`` rounds after a warm-up epoch each, so machine noise hits all of
them alike; the table shows medians and the ratio kerascli / peer. Startup
(time to the first training batch, with an empty and a warm Numba cache),
peak RSS and the live display's cost (training time on an 80x24
pseudo-terminal against --quiet) are measured on separate processes.

For numbers comparable to other machines' runs, unset OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE where they are set for old OpenBLAS builds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

MLP_LAYERS = [784, 256, 256, 10]
CNN_INPUT = (28, 28, 1)
SEQ_INPUT = (50, 32)  # steps, features: issue's LSTM/GRU case (128 units, batch 64)
SEQ_UNITS = 128
TEXT_STEPS, TEXT_VOCABULARY, TEXT_EMBEDDING, TEXT_FILTERS, TEXT_WIDTH = 100, 2000, 64, 128, 5  # a text CNN


# ---------------------------------------------------------------- data
def mlp_data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)


def cnn_data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n,) + CNN_INPUT, dtype=np.float32), rng.integers(0, 10, n)


def seq_data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + SEQ_INPUT, dtype=np.float32), rng.integers(0, 10, n)


def text_data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, TEXT_VOCABULARY, (n, TEXT_STEPS)).astype(np.float32), rng.integers(0, 10, n)


DATA = {"mlp": mlp_data, "custom_mlp": mlp_data, "cnn": cnn_data, "cnn_augmented": cnn_data,
        "cnn_augmented_inline": cnn_data, "lstm": seq_data,
        "gru": seq_data,
        "textcnn": text_data}


# ---------------------------------------------------------------- kerascli
class Kerascli:
    name = "kerascli"

    def __init__(self, threads):
        from kerascli.config.loader import LoadedConfig
        from kerascli.config.schema import resolve_config
        from kerascli.data.pipeline import Split
        from kerascli.train.session import build_session

        self._loaded, self._resolve, self._build, self._split = LoadedConfig, resolve_config, build_session, Split
        self.threads = threads
        self.rng = np.random.default_rng(0)

    def _session(self, input_shape, layers, plugins=()):
        config = {
            "plugins": list(plugins),
            "data": {"dataset": "digits"},
            "model": {"input_shape": list(input_shape), "layers": layers},
            "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
            "train": {"threads": self.threads},
        }
        return self._build(self._resolve(self._loaded(data=config, source="benchmark"))).trainer

    def mlp(self):
        return self._session([784], [
            {"type": "Dense", "units": 256, "activation": "relu"},
            {"type": "Dense", "units": 256, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ])

    def custom_mlp(self):
        """The MLP with the hidden layers written as a call-only plugin layer (gradient from the tape)."""
        return self._session([784], [
            {"type": "ScaledDense", "units": 256, "activation": "relu"},
            {"type": "ScaledDense", "units": 256, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ], plugins=[os.path.join(ROOT, "examples", "plugins", "layers.py")])

    def cnn(self):
        return self._session(list(CNN_INPUT), [
            {"type": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"},
            {"type": "MaxPooling2D", "pool_size": 2},
            {"type": "Conv2D", "filters": 64, "kernel_size": 3, "activation": "relu"},
            {"type": "MaxPooling2D", "pool_size": 2},
            {"type": "Flatten"},
            {"type": "Dense", "units": 128, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ])

    def lstm(self):
        return self._session(list(SEQ_INPUT), [{"type": "LSTM", "units": SEQ_UNITS},
                                               {"type": "Dense", "units": 10, "activation": "softmax"}])

    def gru(self):
        return self._session(list(SEQ_INPUT), [{"type": "GRU", "units": SEQ_UNITS},
                                               {"type": "Dense", "units": 10, "activation": "softmax"}])

    def textcnn(self):
        return self._session([TEXT_STEPS], [
            {"type": "Embedding", "input_dim": TEXT_VOCABULARY, "output_dim": TEXT_EMBEDDING},
            {"type": "Conv1D", "filters": TEXT_FILTERS, "kernel_size": TEXT_WIDTH, "activation": "relu"},
            {"type": "GlobalMaxPooling1D"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ])

    # Keras' image tutorial's augmentation (its rescale aside: put a Rescaling layer in the model)
    AUGMENTATION = {"rotation_range": 0.0, "width_shift_range": 0.0, "height_shift_range": 0.0, "shear_range": 0.2,
                    "zoom_range": [0.2], "channel_shift_range": 0.0, "brightness_range": None,
                    "horizontal_flip": True, "vertical_flip": False, "fill_mode": "nearest", "cval": 0.0}

    def cnn_augmented(self):
        """The CNN trained on batches augmented as the tutorial's ImageDataGenerator does (kerascli only)."""
        trainer = self.cnn()
        trainer.augmentation = self.AUGMENTATION
        return trainer

    def cnn_augmented_inline(self):
        """As cnn_augmented, with each batch made in the training loop (data.prefetch: 0)."""
        trainer = self.cnn_augmented()
        trainer.prefetch = 0
        return trainer

    def train_epoch(self, trainer, x, y, batch):
        split = self._split(x, y)
        if getattr(trainer, "augmentation", None):  # as a run makes it (kerascli.train.session.load_data)
            from kerascli.data.augment import AugmentedSplit
            from kerascli.data.prefetch import PrefetchedSplit
            from kerascli.data.preprocess import Standardizer
            from kerascli.train.session import prefetch_depth

            aug = trainer.augmentation
            split = AugmentedSplit(split, aug, 0, trainer.ops, Standardizer.from_config({"augmentation": aug}))
            split = PrefetchedSplit(split, prefetch_depth({"prefetch": getattr(trainer, "prefetch", None)}, split))
        trainer.train_epoch(split, batch, split.order(0, 1, True), epoch=1)

    def predict(self, trainer, x, batch):
        return trainer.predict(x, batch)


# ---------------------------------------------------------------- PyTorch
class Torch:
    name = "torch"

    def __init__(self, threads):
        import torch

        self.torch = torch
        torch.set_num_threads(threads)
        # denormal slots slow any CPU optimizer down; give the peer the flush-to-zero it needs
        torch.set_flush_denormal(True)

    def mlp(self):
        nn = self.torch.nn
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
        return model, self.torch.optim.Adam(model.parameters(), lr=1e-3)

    def cnn(self):
        nn = self.torch.nn
        model = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10),
        )
        return model, self.torch.optim.Adam(model.parameters(), lr=1e-3)

    def _recurrent(self, cell):
        torch = self.torch

        class LastStep(torch.nn.Module):
            """The recurrent layer's last output into a Linear layer (Keras' return_sequences: false)."""

            def __init__(self):
                super().__init__()
                self.rnn = cell(SEQ_INPUT[1], SEQ_UNITS, batch_first=True)
                self.head = torch.nn.Linear(SEQ_UNITS, 10)

            def forward(self, x):
                return self.head(self.rnn(x)[0][:, -1])

        model = LastStep()
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    def lstm(self):
        return self._recurrent(self.torch.nn.LSTM)

    def textcnn(self):
        torch = self.torch

        class TextCNN(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = torch.nn.Embedding(TEXT_VOCABULARY, TEXT_EMBEDDING)
                self.conv = torch.nn.Conv1d(TEXT_EMBEDDING, TEXT_FILTERS, TEXT_WIDTH)
                self.head = torch.nn.Linear(TEXT_FILTERS, 10)

            def forward(self, ids):
                h = torch.relu(self.conv(self.embedding(ids.long()).transpose(1, 2)))
                return self.head(h.max(dim=2).values)

        model = TextCNN()
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    def gru(self):
        return self._recurrent(self.torch.nn.GRU)

    def _tensor(self, x):
        t = self.torch.from_numpy(x)
        return t.permute(0, 3, 1, 2).contiguous() if t.ndim == 4 else t  # NHWC -> NCHW

    def train_epoch(self, state, x, y, batch):
        torch = self.torch
        model, opt = state
        xt, yt = self._tensor(x), torch.from_numpy(y)
        perm = torch.randperm(len(xt))
        loss_fn = torch.nn.functional.cross_entropy
        total, correct = 0.0, 0
        model.train()
        for i in range(0, len(xt), batch):
            idx = perm[i : i + batch]
            xb, yb = xt[idx], yt[idx]
            opt.zero_grad()
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == yb).sum().item()

    def predict(self, state, x, batch):
        torch = self.torch
        model, _ = state
        model.eval()
        xt = self._tensor(x)
        with torch.no_grad():
            return torch.cat([torch.softmax(model(xt[i : i + batch]), 1) for i in range(0, len(xt), batch)])


# ---------------------------------------------------------------- Keras 3
class Keras:
    name = "keras"

    def __init__(self, threads):
        os.environ.setdefault("KERAS_BACKEND", "torch")
        import torch

        torch.set_num_threads(threads)
        torch.set_flush_denormal(True)
        import keras

        self.keras = keras

    def _compile(self, model):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def mlp(self):
        L = self.keras.layers
        return self._compile(self.keras.Sequential([
            self.keras.Input((784,)), L.Dense(256, activation="relu"), L.Dense(256, activation="relu"),
            L.Dense(10, activation="softmax"),
        ]))

    def cnn(self):
        L = self.keras.layers
        return self._compile(self.keras.Sequential([
            self.keras.Input(CNN_INPUT), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
            L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(), L.Dense(128, activation="relu"),
            L.Dense(10, activation="softmax"),
        ]))

    def train_epoch(self, model, x, y, batch):
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=True)

    def predict(self, model, x, batch):
        return model.predict(x, batch_size=batch, verbose=0)


# ---------------------------------------------------------------- torch.compile
class TorchCompile(Torch):
    """PyTorch with its models compiled by torch.compile (inductor, C++ kernels on the CPU)."""

    name = "torch.compile"

    def mlp(self):
        model, opt = super().mlp()
        return self.torch.compile(model), opt

    def cnn(self):
        model, opt = super().cnn()
        return self.torch.compile(model), opt


# ---------------------------------------------------------------- JAX
class Jax:
    """JAX: the same models written with jax.numpy and jax.lax, the whole training step (forward, gradient,
    optax's Adam with Keras' epsilon) compiled by jax.jit; Keras' glorot-uniform initial weights."""

    name = "jax"

    def __init__(self, threads):
        if threads == 1:
            os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        import jax
        import jax.numpy as jnp
        import optax

        self.jax, self.jnp, self.optax = jax, jnp, optax
        self.key = jax.random.PRNGKey(0)
        self.rng = np.random.default_rng(0)

    def _glorot(self, shape, fan_in, fan_out):
        self.key, sub = self.jax.random.split(self.key)
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return self.jax.random.uniform(sub, shape, minval=-limit, maxval=limit)

    def _dense(self, n_in, n_out):
        return {"w": self._glorot((n_in, n_out), n_in, n_out), "b": self.jnp.zeros(n_out)}

    def _conv(self, k, c_in, c_out):
        return {"w": self._glorot((k, k, c_in, c_out), k * k * c_in, k * k * c_out), "b": self.jnp.zeros(c_out)}

    def _state(self, params, forward):
        jax, optax = self.jax, self.optax
        opt = optax.adam(1e-3, eps=1e-7)

        def loss(p, x, y):
            return optax.softmax_cross_entropy_with_integer_labels(forward(p, x), y).mean()

        @jax.jit
        def step(p, opt_state, x, y):
            grads = jax.grad(loss)(p, x, y)
            updates, opt_state = opt.update(grads, opt_state, p)
            return optax.apply_updates(p, updates), opt_state

        @jax.jit
        def probabilities(p, x):
            return jax.nn.softmax(forward(p, x))

        return {"params": params, "opt_state": opt.init(params), "step": step, "predict": probabilities}

    def mlp(self):
        jnp = self.jnp
        params = [self._dense(784, 256), self._dense(256, 256), self._dense(256, 10)]

        def forward(p, x):
            for layer in p[:-1]:
                x = jnp.maximum(x @ layer["w"] + layer["b"], 0)
            return x @ p[-1]["w"] + p[-1]["b"]

        return self._state(params, forward)

    def cnn(self):
        jax, jnp = self.jax, self.jnp
        params = [self._conv(3, 1, 32), self._conv(3, 32, 64), self._dense(64 * 5 * 5, 128), self._dense(128, 10)]

        def conv_pool(x, layer):
            x = jax.lax.conv_general_dilated(x, layer["w"], (1, 1), "VALID",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC")) + layer["b"]
            return jax.lax.reduce_window(jnp.maximum(x, 0), -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                                         "VALID")

        def forward(p, x):
            x = conv_pool(conv_pool(x, p[0]), p[1]).reshape(x.shape[0], -1)
            x = jnp.maximum(x @ p[2]["w"] + p[2]["b"], 0)
            return x @ p[3]["w"] + p[3]["b"]

        return self._state(params, forward)

    def train_epoch(self, state, x, y, batch):
        order = self.rng.permutation(len(x))
        params, opt_state = state["params"], state["opt_state"]
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            params, opt_state = state["step"](params, opt_state, x[idx], y[idx])
        self.jax.block_until_ready(params)
        state["params"], state["opt_state"] = params, opt_state

    def predict(self, state, x, batch):
        parts = [state["predict"](state["params"], x[i : i + batch]) for i in range(0, len(x), batch)]
        return np.concatenate([np.asarray(p) for p in parts])


# ---------------------------------------------------------------- BLAS alone: a floor, not a peer
class BlasOnly:
    """Prediction as nothing but the matrix products kerascli's layers hand to numpy's BLAS, on operands
    already in cache (the patches of one chunk of images, made once outside the timing; no bias,
    activation, pooling or patch building), the batch split over the threads as kerascli splits it (each
    thread's BLAS single-threaded): how fast prediction could be with this BLAS if everything around the
    products were free. Trains nothing."""

    name = "blas"
    trains = False
    CHUNK = 16  # images per convolution product, per thread

    def __init__(self, threads):
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
        self.threads = threads
        self.pool = ThreadPoolExecutor(threads)
        self.rng = np.random.default_rng(0)

    def _matrix(self, rows, cols):
        return self.rng.random((rows, cols), dtype=np.float32)

    def _state(self, convolutions, features, dense):
        # each thread its own operands (and outputs), as each of kerascli's threads has its own workspaces
        return [{"convolutions": [(self._matrix(self.CHUNK * pixels, k), self._matrix(k, f),
                                   np.empty((self.CHUNK * pixels, f), np.float32)) for pixels, k, f in convolutions],
                 "features": None if features is None else self._matrix(1024, features),
                 "dense": [(self._matrix(k, f), np.empty((1024, f), np.float32)) for k, f in dense]}
                for _ in range(self.threads)]

    def mlp(self):
        return self._state([], None, [(784, 256), (256, 256), (256, 10)])

    def cnn(self):
        # conv1: 26x26 patches of 3x3x1 per image; conv2: 11x11 patches of 3x3x32; the Dense layers are fed a
        # stand-in for the flattened pooled features
        return self._state([(676, 9, 32), (121, 288, 64)], 1600, [(1600, 128), (128, 10)])

    @staticmethod
    def _part(state, x):
        for patches, weights, out in state["convolutions"]:
            for _ in range(0, len(x), BlasOnly.CHUNK):
                np.matmul(patches, weights, out=out)
        h = x.reshape(len(x), -1) if state["features"] is None else state["features"][:len(x)]
        for weights, out in state["dense"]:  # into buffers made once, as kerascli's workspaces
            h = np.matmul(h, weights, out=out[:len(x)])
        return h

    def predict(self, state, x, batch):
        for i in range(0, len(x), batch):
            rows = x[i:i + batch]
            parts = np.array_split(np.arange(len(rows)), self.threads)
            list(self.pool.map(self._part, state, [rows[p[0]:p[-1] + 1] for p in parts if len(p)]))


PEERS = {"torch": Torch, "keras": Keras, "jax": Jax, "torch.compile": TorchCompile, "blas": BlasOnly}


# ---------------------------------------------------------------- throughput
def throughput_cases(quick):
    n_mlp, n_cnn, n_seq = (4096, 512, 1024) if quick else (16384, 2048, 4096)
    return [
        # name, model, mode, batch, samples
        ("train MLP b32", "mlp", "train", 32, n_mlp // 2),
        ("train MLP b128", "mlp", "train", 128, n_mlp),
        ("train MLP b512", "mlp", "train", 512, n_mlp),
        ("train CNN b128", "cnn", "train", 128, n_cnn),
        ("train CNN b128 augmented", "cnn_augmented", "train", 128, n_cnn),
        ("train CNN b128 augmented inline", "cnn_augmented_inline", "train", 128, n_cnn),
        ("train LSTM b64", "lstm", "train", 64, n_seq),
        ("train GRU b64", "gru", "train", 64, n_seq),
        ("train TextCNN b64", "textcnn", "train", 64, n_seq),
        ("predict MLP b1024", "mlp", "predict", 1024, n_mlp * 2),
        ("predict CNN b1024", "cnn", "predict", 1024, n_cnn * 8),
    ]


class Worker:
    """A framework in its own process, driven one line of JSON at a time."""

    def __init__(self, name, threads):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", name, "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.info = self.ask({"op": "hello"})

    def ask(self, message):
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} worker exited")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']}")
        return reply

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def serve(name, threads):
    """Worker side: build and time cases on request."""
    out = sys.stdout
    sys.stdout = sys.stderr  # frameworks' own printing must not break the protocol
    try:
        fw = (Kerascli if name == "kerascli" else PEERS[name])(threads)
    except ImportError as exc:
        fw, failure = None, f"not installed ({exc})"
    state = case = None
    for line in sys.stdin:
        message = json.loads(line)
        try:
            if message["op"] == "hello":
                if fw is None:
                    reply = {"error": failure}
                else:
                    reply = {"version": _version(fw)}
                    if fw.name == "kerascli":  # which BLAS the recurrent loops call (KERASCLI_KERNEL_BLAS)
                        from kerascli.ops.cpu import blas

                        reply["kernel_blas"] = blas.describe()
            elif message["op"] == "prepare" and (message["case"]["mode"] == "train" and not getattr(fw, "trains", True)
                                                 or not hasattr(fw, message["case"]["model"])):
                reply = {"skip": True}  # a peer without this model
            elif message["op"] == "prepare":
                case = message["case"]
                x, y = DATA[case["model"]](case["samples"])
                state = getattr(fw, case["model"])()
                case["x"], case["y"] = x, y
                run_once(fw, state, case["mode"], x, y, case["batch"])  # warm-up
                reply = {"ok": True}
            else:
                reply = {"seconds": run_once(fw, state, case["mode"], case["x"], case["y"], case["batch"])}
        except Exception as exc:  # report, keep serving
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def measure_throughput(workers, cases, repeats, log):
    results = {}
    for name, model_kind, mode, batch, samples in cases:
        case = {"model": model_kind, "mode": mode, "batch": batch, "samples": samples}
        taking = [w for w in workers if not w.ask({"op": "prepare", "case": case}).get("skip")]
        times = {w.name: [] for w in taking}
        for _ in range(repeats):
            for w in taking:  # take turns, so noise hits every framework alike
                time.sleep(0.3)  # let the previous framework's idle threads go to sleep
                times[w.name].append(w.ask({"op": "run"})["seconds"])
        results[name] = {fw: samples / statistics.median(t) for fw, t in times.items()}
        log(name + ": " + ", ".join(f"{fw} {v:,.0f}/s" for fw, v in results[name].items()))
    return results


def run_once(fw, state, mode, x, y, batch):
    started = time.perf_counter()
    if mode == "train":
        fw.train_epoch(state, x, y, batch)
    else:
        fw.predict(state, x, batch)
    return time.perf_counter() - started


# ---------------------------------------------------------------- startup and memory
def kerascli_train(args, env=None, runs_dir=None):
    """Run ``kerascli train`` in a new process; returns (summary.json, peak RSS in MiB)."""
    runs_dir = runs_dir or tempfile.mkdtemp(prefix="kerascli-bench-")
    cmd = [sys.executable, "-m", "kerascli", "train", *args, "--runs-dir", runs_dir, "--quiet"]
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()}")
    (run,) = os.listdir(runs_dir)
    with open(os.path.join(runs_dir, run, "summary.json")) as f:
        return json.load(f), usage.ru_maxrss / 1024


def measure_startup(threads, repeats, log):
    config = os.path.join(ROOT, "configs", "digits_mlp.yaml")
    args = [config, "--set", "train.epochs=1", "--threads", str(threads)]
    cache = tempfile.mkdtemp(prefix="kerascli-numba-cache-")
    env = {"NUMBA_CACHE_DIR": cache}
    cold = kerascli_train(args, env)[0]["time_to_first_batch_seconds"]
    warm = statistics.median(kerascli_train(args, env)[0]["time_to_first_batch_seconds"] for _ in range(repeats))
    helps = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kerascli", "--help"], stdout=subprocess.DEVNULL, check=True)
        helps.append(time.perf_counter() - started)
    out = {"first batch, empty cache (s)": cold, "first batch, warm cache (s)": warm,
           "kerascli --help (s)": statistics.median(helps)}
    log(", ".join(f"{k}: {v:.2f}" for k, v in out.items()))
    return out


def train_in_a_terminal(args, rows=24, cols=80):
    """``kerascli train ARGS`` with a pseudo-terminal as its screen (rows x cols), the output read as a
    terminal would; returns summary.json."""
    import fcntl
    import pty
    import struct
    import termios

    runs_dir = tempfile.mkdtemp(prefix="kerascli-bench-")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "kerascli", "train", *args, "--runs-dir", runs_dir],
                            stdin=slave, stdout=slave, stderr=slave, env={**env, "TERM": "xterm-256color"},
                            start_new_session=True)
    os.close(slave)
    while True:
        try:
            if not os.read(master, 1 << 16):
                break
        except OSError:  # the terminal closed with the process
            break
    os.close(master)
    if proc.wait() != 0:
        raise RuntimeError(f"kerascli train {' '.join(args)} failed in a terminal")
    (run,) = os.listdir(runs_dir)
    with open(os.path.join(runs_dir, run, "summary.json")) as f:
        return json.load(f)


def measure_display(threads, repeats, log, epochs=400):
    """Training time with the live display on an 80x24 terminal against --quiet, same terminal, taking
    turns: digits MLP for more epochs than the terminal has rows."""
    args = [os.path.join(ROOT, "configs", "digits_mlp.yaml"), "--set", f"train.epochs={epochs}",
            "--threads", str(threads)]
    shown, quiet = [], []
    for _ in range(repeats):
        shown.append(train_in_a_terminal(args)["train_seconds"])
        quiet.append(train_in_a_terminal(args + ["--quiet"])["train_seconds"])
    out = {"epochs": epochs, "terminal (s)": statistics.median(shown), "quiet (s)": statistics.median(quiet)}
    out["overhead"] = out["terminal (s)"] / out["quiet (s)"] - 1
    out["overhead per repeat"] = [s / q - 1 for s, q in zip(shown, quiet)]
    log(f"display: {out['terminal (s)']:.2f} s on a terminal, {out['quiet (s)']:.2f} s with --quiet "
        f"({out['overhead']:+.1%}; per repeat " + ", ".join(f"{o:+.1%}" for o in out["overhead per repeat"]) + ")")
    return out


def measure_custom_layer(threads, repeats, log, samples=16384, batch=128):
    """Training speed of the MLP with built-in Dense layers against the same MLP whose hidden layers are the
    call-only ScaledDense of examples/plugins (autograd tape), taking turns in one process."""
    fw = Kerascli(threads)
    x, y = mlp_data(samples)
    models = {"built-in Dense": fw.mlp(), "call-only ScaledDense": fw.custom_mlp()}
    for trainer in models.values():  # warm-up: compile, allocate
        fw.train_epoch(trainer, x[:batch * 4], y[:batch * 4], batch)
    times = {name: [] for name in models}
    for _ in range(repeats):
        for name, trainer in models.items():
            times[name].append(run_once(fw, trainer, "train", x, y, batch))
    out = {name: samples / statistics.median(t) for name, t in times.items()}
    out["ratio"] = out["built-in Dense"] / out["call-only ScaledDense"]
    log(f"custom layer (MLP b{batch}): built-in {out['built-in Dense']:,.0f}/s, call-only plugin "
        f"{out['call-only ScaledDense']:,.0f}/s ({out['ratio']:.2f}x slower)")
    return out


RSS_SAMPLES, RSS_EPOCHS, RSS_BATCH = 16384, 2, 128


def measure_rss(threads, peers, log):
    config = {
        "name": "rss", "seed": 0,
        "data": {"dataset": "synthetic_classification", "samples": RSS_SAMPLES, "features": 784, "classes": 10},
        "model": {"input_shape": [784], "layers": [
            {"type": "Dense", "units": 256, "activation": "relu"},
            {"type": "Dense", "units": 256, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"}]},
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "train": {"epochs": RSS_EPOCHS, "batch_size": RSS_BATCH, "threads": threads},
    }
    path = os.path.join(tempfile.mkdtemp(prefix="kerascli-bench-"), "rss.yaml")
    with open(path, "w") as f:
        json.dump(config, f)  # JSON is YAML
    out = {"kerascli": kerascli_train([path])[1]}
    for peer in peers:
        proc = subprocess.Popen([sys.executable, __file__, "--child-rss", peer, "--threads", str(threads)])
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            out[peer] = usage.ru_maxrss / 1024
    log("peak RSS of a training run (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in out.items()))
    return out


def child_rss(peer, threads):
    """Train the RSS case in this process with a peer: same data size, epochs and batch."""
    fw = PEERS[peer](threads)
    x, y = mlp_data(RSS_SAMPLES)
    state = fw.mlp()
    for _ in range(RSS_EPOCHS):
        fw.train_epoch(state, x, y, RSS_BATCH)


# ---------------------------------------------------------------- report
def table(results, frameworks):
    peers = [f for f in frameworks if f != "kerascli"]
    header = ["case", "kerascli"] + peers + [f"kerascli/{p}" for p in peers]
    rows = []
    for case, values in results.items():
        row = [case, f"{values['kerascli']:,.0f}"]
        row += [f"{values[p]:,.0f}" if p in values else "-" for p in peers]
        row += [f"{values['kerascli'] / values[p]:.2f}x" if p in values else "-" for p in peers]
        rows.append(row)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--peers", default="torch,keras,jax,torch.compile,blas",
                        help="comma-separated: torch, keras, jax, torch.compile, blas (prediction's matrix products "
                             "alone: a floor)")
    parser.add_argument("--quick", action="store_true", help="smaller data and 2 repeats")
    parser.add_argument("--json", default=os.path.join(HERE, "results.json"))
    parser.add_argument("--cases", help="only cases whose name contains this text; skips startup, RSS and the JSON")
    parser.add_argument("--display-only", action="store_true",
                        help="only the display overhead (terminal vs --quiet); prints it, writes no JSON")
    parser.add_argument("--custom-layer-only", action="store_true",
                        help="only a call-only plugin layer against built-in Dense; prints it, writes no JSON")
    parser.add_argument("--child-rss", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        return child_rss(args.child_rss, args.threads)
    if args.worker:
        return serve(args.worker, args.threads)
    repeats = 2 if args.quick else args.repeats

    def log(text):
        print(text, file=sys.stderr, flush=True)

    if args.display_only:
        measure_display(args.threads, repeats, log)
        return
    if args.custom_layer_only:
        measure_custom_layer(args.threads, repeats, log)
        return

    workers = []
    for name in ["kerascli"] + [p for p in args.peers.split(",") if p]:
        try:
            workers.append(Worker(name, args.threads))
        except RuntimeError as exc:
            log(f"{name}: skipped ({exc})")
    names = [w.name for w in workers]
    cases = [c for c in throughput_cases(args.quick) if not args.cases or args.cases in c[0]]
    try:
        results = measure_throughput(workers, cases, repeats, log)
    finally:
        for w in workers:
            w.close()
    kernel_blas = next((w.info.get("kernel_blas") for w in workers if w.name == "kerascli"), None)
    if args.cases:
        print(table(results, names))
        print(f"kerascli's recurrent loops multiply through: {kernel_blas}")
        return
    startup = measure_startup(args.threads, repeats, log)
    rss = measure_rss(args.threads, [n for n in names if n != "kerascli" and getattr(PEERS[n], "trains", True)], log)
    display = measure_display(args.threads, repeats, log)
    custom = measure_custom_layer(args.threads, repeats, log)

    import numba

    report = {
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "threads": args.threads,
                    "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
                    "kerascli_kernel_blas": kernel_blas},
        "versions": {"numpy": np.__version__, "numba": numba.__version__,
                     **{w.name: w.info["version"] for w in workers}},
        "repeats": repeats,
        "samples_per_second": results,
        "ratios": {case: {p: v["kerascli"] / v[p] for p in v if p != "kerascli"} for case, v in results.items()},
        "startup_seconds": startup,
        "peak_rss_mib": rss,
        "display_seconds": display,
        "custom_layer_samples_per_second": custom,
        "command": " ".join(sys.argv),
    }
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(table(results, names))
    print()
    for key, value in startup.items():
        print(f"{key}: {value:.2f}")
    print("peak RSS of a training run (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))
    print(f"display overhead on a terminal ({display['epochs']} epochs of digits MLP): {display['overhead']:+.1%} "
          f"({display['terminal (s)']:.2f} s against {display['quiet (s)']:.2f} s with --quiet)")
    print(f"call-only plugin layer: {custom['ratio']:.2f}x the time of built-in Dense (MLP b128)")
    print(f"\nwritten to {args.json}")


def _version(fw):
    if fw.name == "kerascli":
        import kerascli

        return kerascli.__version__
    if fw.name in ("torch", "torch.compile"):
        return fw.torch.__version__
    if fw.name == "jax":
        return f"{fw.jax.__version__} (optax {fw.optax.__version__})"
    if fw.name == "blas":
        return "numpy " + np.__version__
    return fw.keras.__version__


if __name__ == "__main__":
    main()
