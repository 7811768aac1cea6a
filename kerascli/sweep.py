"""``kerascli sweep``: hyperparameter search over any config keys, each trial a run of its own.

A sweep file names a base config and the keys to vary (any ``--set`` path), and how to choose them: every
combination (grid), or ``trials`` points drawn at random, from a Sobol sequence, or from a Latin
hypercube (for continuous ranges). Trial ``k`` is ``kerascli train BASE --set key=value ... --name
trial-k --resume auto`` in ``RUNS_DIR/<sweep name>/``, run in worker processes of their own (a fresh
interpreter each: no fork of this one). Rerunning the sweep skips finished trials and resumes interrupted
ones; ``--trial K`` runs trial K alone (a Slurm job array's task). ``sweep.csv`` is the leaderboard, sorted
by the chosen metric, remade from the trials' run directories whenever one ends.

Early stopping of bad trials (``early_stopping.rule``): ``median`` stops a trial whose best value by epoch
e (e >= ``grace_epochs``) is worse than the median of the other trials' best values by epoch e (at least
``min_trials`` of them); ``successive_halving`` keeps, at the rung epochs grace, grace * eta, grace * eta^2,
..., only the trials among the best 1/eta of those that reached the rung. The sweep watches each trial's
metrics.csv and stops a trial with SIGTERM (it writes a checkpoint and ends); a stopped trial stays
stopped when the sweep is rerun.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from kerascli.callbacks import resolve_mode
from kerascli.config.loader import format_key, load_config_file
from kerascli.config.overrides import parse_key
from kerascli.errors import ConfigError, KerascliError
from kerascli.runs.atomic import atomic_write_text
from kerascli.runs.manage import describe

METHODS = ("grid", "random", "sobol", "latin_hypercube")
RULES = ("median", "successive_halving")
KEYS = ("config", "name", "method", "trials", "seed", "metric", "mode", "parameters", "set", "early_stopping")
STOPPING_KEYS = ("rule", "grace_epochs", "min_trials", "reduction_factor")
STATE = "sweep.json"  # the sweep's trials and the ones stopped early, in its directory
POLL_SECONDS = 0.2


@dataclass
class Dimension:
    """One varied key: a list of values, or a range (float, on a linear or log scale, or int)."""

    key: str
    values: list | None = None
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    integer: bool = False

    def at(self, u: float):
        """The value at ``u`` in [0, 1) (a list: its item in that fraction of its length)."""
        if self.values is not None:
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        if self.integer:
            return int(min(math.floor(self.low + u * (self.high - self.low + 1)), self.high))
        if self.log:
            return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        return float(self.low + u * (self.high - self.low))


@dataclass
class Sweep:
    file: str
    name: str
    config: str  # the base config, an absolute path
    method: str
    seed: int
    metric: str | None
    mode: str
    dimensions: list[Dimension]
    fixed: list[str]  # KEY=VALUE for every trial
    trials: list[dict] = field(default_factory=list)  # each trial's {key: value}
    rule: str | None = None
    grace_epochs: int = 1
    min_trials: int = 3
    reduction_factor: int = 3

    def overrides(self, k: int) -> list[str]:
        return self.fixed + [f"{key}={json.dumps(value)}" for key, value in self.trials[k].items()]

    def folder(self, runs_dir: str) -> str:
        return os.path.join(runs_dir, self.name)


# ----------------------------------------------------------------- reading the sweep file
def _error(loaded, path: tuple, message: str) -> ConfigError:
    return ConfigError(message, key=format_key(path), where=loaded.where(path))


def _dimension(loaded, key: str, spec) -> Dimension:
    path = ("parameters", key)
    parse_key(key, loaded.where(path))  # a --set path
    if isinstance(spec, list):
        spec = {"values": spec}
    if not isinstance(spec, dict):
        raise _error(loaded, path, f"expected a list of values or a range {{min: .., max: ..}}, got {spec!r}")
    unknown = set(spec) - {"values", "min", "max", "scale", "type"}
    if unknown:
        raise _error(loaded, path, f"unknown key {sorted(unknown)[0]!r} (valid keys: values, min, max, scale, type)")
    if "values" in spec:
        if not isinstance(spec["values"], list) or not spec["values"]:
            raise _error(loaded, path + ("values",), "expected a non-empty list")
        return Dimension(key, values=list(spec["values"]))
    if "min" not in spec or "max" not in spec:
        raise _error(loaded, path, "a range needs min and max (or give values: [...])")
    low, high = spec["min"], spec["max"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low > high:
        raise _error(loaded, path, f"min and max must be numbers with min <= max, got {low!r}, {high!r}")
    scale, kind = spec.get("scale", "linear"), spec.get("type", "int" if isinstance(low, int) and
                                                            isinstance(high, int) else "float")
    if scale not in ("linear", "log") or kind not in ("int", "float"):
        raise _error(loaded, path, f"scale is linear or log and type int or float, got {scale!r}, {kind!r}")
    if scale == "log" and low <= 0:
        raise _error(loaded, path, f"a log scale needs min > 0, got {low!r}")
    return Dimension(key, low=low, high=high, log=scale == "log", integer=kind == "int")


def load_sweep(path: str) -> Sweep:
    loaded = load_config_file(path)
    data = loaded.data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping with config, method and parameters")
    for key in data:
        if key not in KEYS:
            raise _error(loaded, (key,), f"unknown key {key!r} (valid keys: {', '.join(KEYS)})")
    for key in ("config", "parameters"):
        if key not in data:
            raise ConfigError(f"{path}: missing {key!r}")
    base = os.path.join(os.path.dirname(os.path.abspath(path)), str(data["config"]))
    if not os.path.isfile(base):
        raise _error(loaded, ("config",), f"no config file at {base}")
    method = data.get("method", "grid")
    if method not in METHODS:
        raise _error(loaded, ("method",), f"unknown method {method!r} (valid: {', '.join(METHODS)})")
    params = data["parameters"]
    if not isinstance(params, dict) or not params:
        raise _error(loaded, ("parameters",), "expected a mapping of config keys to values or ranges")
    dims = [_dimension(loaded, str(k), v) for k, v in params.items()]
    fixed = data.get("set") or {}
    if not isinstance(fixed, dict):
        raise _error(loaded, ("set",), "expected a mapping of config keys to values, for every trial")
    name = str(data.get("name") or os.path.splitext(os.path.basename(path))[0])
    sweep = Sweep(path, name, base, method, int(data.get("seed", 0)), data.get("metric"), data.get("mode", "auto"),
                  dims, [f"{k}={json.dumps(v)}" for k, v in fixed.items()])
    if sweep.mode not in ("auto", "min", "max"):
        raise _error(loaded, ("mode",), f"mode is auto, min or max, got {sweep.mode!r}")
    stopping = data.get("early_stopping")
    if stopping is not None:
        if not isinstance(stopping, dict) or stopping.get("rule") not in RULES:
            raise _error(loaded, ("early_stopping",), f"early_stopping needs rule: {' or '.join(RULES)}")
        for key in stopping:
            if key not in STOPPING_KEYS:
                raise _error(loaded, ("early_stopping", key), f"unknown key {key!r} (valid keys: "
                                                              f"{', '.join(STOPPING_KEYS)})")
        sweep.rule = stopping["rule"]
        sweep.grace_epochs = int(stopping.get("grace_epochs", 1))
        sweep.min_trials = int(stopping.get("min_trials", 3))
        sweep.reduction_factor = int(stopping.get("reduction_factor", 3))
        if sweep.grace_epochs < 1 or sweep.min_trials < 1 or sweep.reduction_factor < 2:
            raise _error(loaded, ("early_stopping",), "grace_epochs and min_trials must be >= 1, "
                                                      "reduction_factor >= 2")
    if method == "grid":
        ranges = [d.key for d in dims if d.values is None]
        if ranges:
            raise _error(loaded, ("parameters", ranges[0]), "a grid takes lists of values; a range needs method "
                                                            "random, sobol or latin_hypercube")
        if "trials" in data:
            raise _error(loaded, ("trials",), "a grid runs every combination: trials is for the other methods")
        points = [dict(zip((d.key for d in dims), combo)) for combo in itertools.product(*(d.values for d in dims))]
    else:
        count = data.get("trials")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise _error(loaded, ("trials",), f"method {method} needs trials: a count >= 1")
        units = unit_points(method, count, len(dims), sweep.seed)
        points = [{d.key: d.at(float(u)) for d, u in zip(dims, row)} for row in units]
    sweep.trials = points
    return sweep


# ----------------------------------------------------------------- points in the unit cube
# Joe and Kuo's direction numbers (new-joe-kuo-6.21201) for dimensions 2 to 16: degree s, coefficients a,
# initial m_1 .. m_s; dimension 1 is the van der Corput sequence
JOE_KUO = [(1, 0, (1,)), (2, 1, (1, 3)), (3, 1, (1, 3, 1)), (3, 2, (1, 1, 1)), (4, 1, (1, 1, 3, 3)),
           (4, 4, (1, 3, 5, 13)), (5, 2, (1, 1, 5, 5, 17)), (5, 4, (1, 1, 5, 5, 5)), (5, 7, (1, 1, 7, 11, 19)),
           (5, 11, (1, 1, 5, 1, 1)), (5, 13, (1, 1, 1, 3, 11)), (5, 14, (1, 3, 5, 5, 31)),
           (6, 1, (1, 3, 3, 9, 7, 49)), (6, 13, (1, 1, 1, 15, 21, 21)), (6, 16, (1, 3, 1, 13, 27, 49))]
SOBOL_BITS = 30


def sobol(count: int, dims: int) -> np.ndarray:
    """The first ``count`` points of the (unscrambled) Sobol sequence in ``dims`` dimensions (at most 16),
    by Gray code; the first point is the origin."""
    if dims > len(JOE_KUO) + 1:
        raise ConfigError(f"method sobol takes at most {len(JOE_KUO) + 1} parameters, got {dims}")
    directions = np.zeros((dims, SOBOL_BITS), np.int64)
    for d in range(dims):
        if d == 0:
            m = [1] * SOBOL_BITS
        else:
            s, a, initial = JOE_KUO[d - 1]
            m = list(initial)
            for i in range(s, SOBOL_BITS):
                value = m[i - s] ^ (m[i - s] << s)
                for k in range(1, s):
                    value ^= ((a >> (s - 1 - k)) & 1) * (m[i - k] << k)
                m.append(value)
        for i in range(SOBOL_BITS):
            directions[d, i] = m[i] << (SOBOL_BITS - 1 - i)
    points = np.zeros((count, dims))
    x = np.zeros(dims, np.int64)
    for n in range(1, count):
        x ^= directions[:, _lowest_zero_bit(n - 1)]
        points[n] = x / float(1 << SOBOL_BITS)
    return points


def _lowest_zero_bit(n: int) -> int:
    c = 0
    while n & 1:
        n >>= 1
        c += 1
    return c


def latin_hypercube(count: int, dims: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` points, each dimension's values one in each of ``count`` equal strata, in random order."""
    strata = np.stack([rng.permutation(count) for _ in range(dims)], axis=1)
    return (strata + rng.random((count, dims))) / count


def unit_points(method: str, count: int, dims: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 7])
    if method == "random":
        return rng.random((count, dims))
    if method == "sobol":
        return sobol(count, dims)
    return latin_hypercube(count, dims, rng)


# ----------------------------------------------------------------- stopping bad trials
def better(a: float, b: float, mode: str) -> bool:
    return a < b if mode == "min" else a > b


def best_by_epoch(values: list[float], mode: str) -> list[float]:
    """The best value so far after each epoch."""
    out, best = [], None
    for v in values:
        if math.isfinite(v) and (best is None or better(v, best, mode)):
            best = v
        out.append(best if best is not None else math.nan)
    return out


def should_stop(sweep: Sweep, trial: int, histories: dict[int, list[float]], mode: str) -> str | None:
    """Why trial ``trial`` should stop now under the sweep's rule, given every trial's metric by epoch (its
    own included), else None."""
    mine = best_by_epoch(histories[trial], mode)
    epoch = len(mine)
    if sweep.rule is None or epoch < sweep.grace_epochs or not math.isfinite(mine[-1]):
        return None
    others = {k: best_by_epoch(h, mode) for k, h in histories.items() if k != trial}
    if sweep.rule == "median":
        at = [h[epoch - 1] for h in others.values() if len(h) >= epoch and math.isfinite(h[epoch - 1])]
        if len(at) < sweep.min_trials:
            return None
        median = float(np.median(at))
        if better(median, mine[-1], mode):
            return f"median rule: best {mine[-1]:.6g} by epoch {epoch} is worse than the median {median:.6g} of " \
                   f"{len(at)} other trials"
        return None
    eta, rung = sweep.reduction_factor, sweep.grace_epochs
    while rung * eta <= epoch:
        rung *= eta
    if epoch != rung:  # decided when a rung's epoch is reached
        return None
    at = [h[rung - 1] for h in others.values() if len(h) >= rung and math.isfinite(h[rung - 1])] + [mine[-1]]
    if len(at) < sweep.min_trials:
        return None
    keep = max(1, len(at) // eta)
    ranked = sorted(at, reverse=mode == "max")
    if better(ranked[keep - 1], mine[-1], mode):
        return f"successive halving: at epoch {rung} not among the best {keep} of {len(at)} trials"
    return None


# ----------------------------------------------------------------- state and leaderboard
def trial_name(k: int) -> str:
    return f"trial-{k:03d}"


def read_state(folder: str) -> dict:
    try:
        with open(os.path.join(folder, STATE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_state(folder: str, sweep: Sweep, stopped: dict) -> None:
    state = {"sweep": os.path.abspath(sweep.file), "config": sweep.config, "method": sweep.method,
             "trials": sweep.trials, "stopped": {str(k): v for k, v in sorted(stopped.items())}}
    atomic_write_text(os.path.join(folder, STATE), json.dumps(state, indent=1) + "\n")


def metric_history(run_dir: str, metric: str) -> list[float]:
    try:
        with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    return [float(row[metric]) if row.get(metric) not in (None, "") else math.nan for row in rows]


def monitored(sweep: Sweep) -> tuple[str, str]:
    """The metric that ranks the trials and its direction (default: the base config's checkpoint.monitor)."""
    metric = sweep.metric
    if metric is None:
        from kerascli.config import resolve_config

        metric = resolve_config(load_config_file(sweep.config)).checkpoint["monitor"]
    return metric, resolve_mode(metric, sweep.mode)


def leaderboard(sweep: Sweep, folder: str) -> list[dict]:
    """A row per trial: number, status, parameters, best metric value and its epoch, epochs, run dir."""
    metric, mode = monitored(sweep)
    stopped = read_state(folder).get("stopped", {})
    rows = []
    for k, params in enumerate(sweep.trials):
        run = os.path.join(folder, trial_name(k))
        if os.path.isdir(run):
            info = describe(run)
            status = "stopped early" if str(k) in stopped and info["status"] != "running" else info["status"]
        else:
            status, info = "pending", {"epochs": 0}
        history = metric_history(run, metric)
        best = best_by_epoch(history, mode)[-1] if history else math.nan
        best_epoch = history.index(best) + 1 if history and math.isfinite(best) else None
        rows.append({"trial": k, "status": status, **params, metric: None if math.isnan(best) else best,
                     "best_epoch": best_epoch, "epochs": info["epochs"], "run_dir": run,
                     "note": stopped.get(str(k), "")})
    finite = [r for r in rows if r[metric] is not None]
    finite.sort(key=lambda r: r[metric], reverse=mode == "max")
    return finite + [r for r in rows if r[metric] is None]


def write_leaderboard(sweep: Sweep, folder: str) -> list[dict]:
    rows = leaderboard(sweep, folder)
    with open(os.path.join(folder, ".sweep.csv.lock"), "w") as lock:  # job array tasks end at any time
        fcntl.flock(lock, fcntl.LOCK_EX)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(os.path.join(folder, "sweep.csv"), out.getvalue())
    return rows


# ----------------------------------------------------------------- running
def trial_command(sweep: Sweep, k: int, runs_dir: str, threads: int) -> list[str]:
    sets = [a for o in sweep.overrides(k) for a in ("--set", o)]
    return [sys.executable, "-m", "kerascli", "train", sweep.config, *sets, "--name", trial_name(k),
            "--runs-dir", sweep.folder(runs_dir), "--resume", "auto", "--threads", str(threads), "-q"]


def _die_with_parent() -> None:
    """In a trial's process: SIGTERM when the sweep that started it dies (also by SIGKILL), so it writes a
    checkpoint and ends instead of training on unwatched (Linux; elsewhere nothing)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def check_trial_configs(sweep: Sweep) -> None:
    """Every trial's config resolves (a bad key or value is said before anything runs)."""
    from kerascli.commands import load_spec

    for k in range(len(sweep.trials)):
        try:
            load_spec(sweep.config, sweep.overrides(k))
        except ConfigError as exc:
            raise ConfigError(f"{sweep.file}: trial {k} ({', '.join(sweep.overrides(k))}): {exc}") from None


def run_sweep(sweep: Sweep, runs_dir: str, workers: int, only: int | None, console) -> int:
    """Run the sweep's unfinished trials (or trial ``only``); returns the exit code."""
    check_trial_configs(sweep)
    metric, mode = monitored(sweep)
    folder = sweep.folder(runs_dir)
    os.makedirs(folder, exist_ok=True)
    state = read_state(folder)
    stopped = {int(k): v for k, v in state.get("stopped", {}).items()}
    if state.get("trials") not in (None, sweep.trials):
        raise ConfigError(f"{folder} holds a sweep with other trials ({STATE}); give the sweep another name or "
                          "runs directory")
    write_state(folder, sweep, stopped)
    if only is not None:
        if not 0 <= only < len(sweep.trials):
            raise ConfigError(f"--trial {only}: the sweep has trials 0 to {len(sweep.trials) - 1}")
        todo = [only]
    else:
        todo = [k for k in range(len(sweep.trials)) if k not in stopped and
                not os.path.exists(os.path.join(folder, trial_name(k), "summary.json"))]
    done = len(sweep.trials) - len(todo)
    console.print(f"sweep {sweep.name}: {len(sweep.trials)} trials ({sweep.method}), {done} finished or stopped, "
                  f"{len(todo)} to run with {min(workers, max(len(todo), 1))} worker(s); ranked by {metric} "
                  f"({mode}); {folder}", highlight=False)
    threads = max(1, len(os.sched_getaffinity(0)) // max(1, min(workers, len(todo))))
    running: dict[int, subprocess.Popen] = {}
    failed, received = [], []
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    try:
        while (todo or running) and not received:
            while todo and len(running) < workers:
                k = todo.pop(0)
                running[k] = subprocess.Popen(trial_command(sweep, k, runs_dir, threads), stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
            time.sleep(POLL_SECONDS)
            if sweep.rule is not None and only is None:
                histories = {k: metric_history(os.path.join(folder, trial_name(k)), metric)
                             for k in range(len(sweep.trials)) if k not in stopped}
                for k, proc in running.items():
                    why = should_stop(sweep, k, histories, mode) if k not in stopped and proc.poll() is None \
                        else None
                    if why:
                        stopped[k] = why
                        write_state(folder, sweep, stopped)
                        proc.send_signal(signal.SIGTERM)
                        console.print(f"{trial_name(k)}: stopped early ({why})", highlight=False)
            for k, proc in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[k]
                err = proc.stderr.read().strip().splitlines()
                if proc.returncode and k not in stopped:
                    failed.append(k)
                    console.print(f"{trial_name(k)}: failed (exit {proc.returncode}): "
                                  f"{err[-1] if err else ''}", highlight=False)
                elif not proc.returncode:
                    console.print(f"{trial_name(k)}: finished", highlight=False)
                write_leaderboard(sweep, folder)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for proc in running.values():  # each trial writes a checkpoint and ends
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in running.values():
            proc.wait()
    rows = write_leaderboard(sweep, folder)
    print_leaderboard(console, rows, metric)
    if received:
        console.print(f"sweep stopped by {signal.Signals(received[0]).name}: rerun the same command to go on",
                      highlight=False)
        return 128 + received[0]
    if failed:
        console.print(f"{len(failed)} trial(s) failed: {', '.join(trial_name(k) for k in failed)} (see their "
                      "status.json; rerun the sweep to retry them)", highlight=False)
        return 1
    return 0


def print_leaderboard(console, rows: list[dict], metric: str, limit: int = 20) -> None:
    from rich.table import Table

    keys = [k for k in rows[0] if k not in ("trial", "status", metric, "best_epoch", "epochs", "run_dir", "note")]
    table = Table("trial", "status", metric, "epoch", *keys, box=None)
    for row in rows[:limit]:
        value = row[metric]
        table.add_row(trial_name(row["trial"]), row["status"], "" if value is None else f"{value:.6g}",
                      str(row["best_epoch"] or ""), *(str(row[k]) for k in keys))
    console.print(table)


def status(sweep: Sweep, runs_dir: str, console, as_json: bool) -> None:
    folder = sweep.folder(runs_dir)
    if not os.path.isdir(folder):
        raise KerascliError(f"sweep {sweep.name} has not run yet (no {folder})")
    metric, _ = monitored(sweep)
    rows = leaderboard(sweep, folder)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    if as_json:
        console.print_json(json.dumps({"sweep": sweep.name, "folder": folder, "metric": metric, "counts": counts,
                                       "trials": rows}))
        return
    console.print(f"sweep {sweep.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), highlight=False)
    print_leaderboard(console, rows, metric)
