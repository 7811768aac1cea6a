"""Run management: what the runs under a runs directory are (``kerascli runs list``, ``runs show``) and
removing them (``runs rm``).

A run's status: ``running`` while a live process holds its lock (kerascli.runs.lock; a run directory whose
process was killed holds none); else ``completed`` where its summary.json is the newest word on it; else
what ``status.json`` says (written when training stops on a signal: ``interrupted``, or on an error:
``failed``, with the message); else ``interrupted`` (the process ended without a word: killed).
"""

from __future__ import annotations

import csv
import errno
import fcntl
import json
import os
import shutil
import time

from kerascli.errors import ConfigError, KerascliError
from kerascli.runs.atomic import atomic_write_text
from kerascli.runs.lock import LOCK_NAME

STATUS_NAME = "status.json"


def write_status(run_dir: str, status: str, message: str = "") -> None:
    """Record why training in ``run_dir`` stopped (``interrupted`` or ``failed``)."""
    record = {"status": status, "message": message, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        atomic_write_text(os.path.join(run_dir, STATUS_NAME), json.dumps(record) + "\n")
    except OSError:  # (a full or read-only disk: the error being reported matters more)
        pass


def is_run_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.exists(os.path.join(path, "config.yaml")) and \
        os.path.isdir(os.path.join(path, "checkpoints"))


def lock_held(run_dir: str) -> bool:
    """Whether a live process holds the run's lock (tried without waiting, released at once)."""
    path = os.path.join(run_dir, LOCK_NAME)
    if not os.path.exists(path):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)


def _json(path: str) -> dict | None:
    try:
        with open(path) as f:
            value = json.load(f)
        return value if isinstance(value, dict) else None
    except (OSError, ValueError):
        return None


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return -1.0


def _history(run_dir: str) -> list[dict]:
    try:
        with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def describe(run_dir: str) -> dict:
    """Name, status, start, epochs, best monitored value and wall time of one run directory."""
    summary = _json(os.path.join(run_dir, "summary.json"))
    marker = _json(os.path.join(run_dir, STATUS_NAME))
    history = _history(run_dir)
    if lock_held(run_dir):
        status, message = "running", ""
    elif summary is not None and _mtime(os.path.join(run_dir, "summary.json")) >= \
            _mtime(os.path.join(run_dir, STATUS_NAME)):
        status, message = summary.get("status", "completed"), ""
    elif marker is not None:
        status, message = marker.get("status", "interrupted"), marker.get("message", "")
    else:
        status, message = "interrupted", "the process ended without finishing (killed?)"
    seconds = summary.get("wall_seconds") if summary else None
    if seconds is None and history:
        seconds = sum(float(row.get("seconds") or 0) for row in history)
    return {
        "name": os.path.basename(os.path.normpath(run_dir)),
        "path": os.path.abspath(run_dir),
        "status": status,
        "message": message,
        "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(_mtime(os.path.join(run_dir, "config.yaml")))),
        "epochs": len(history),
        "monitor": summary.get("monitor") if summary else None,
        "best": summary.get("best_value") if summary else None,
        "wall_seconds": seconds,
    }


def list_runs(runs_dir: str) -> list[dict]:
    """Every run directory under ``runs_dir``, oldest first."""
    if not os.path.isdir(runs_dir):
        raise ConfigError(f"no runs directory at {runs_dir}")
    found = [os.path.join(runs_dir, d) for d in sorted(os.listdir(runs_dir))]
    runs = [describe(d) for d in found if is_run_dir(d)]
    return sorted(runs, key=lambda r: (r["started"], r["name"]))


def show(run_dir: str) -> dict:
    """The run's description with its summary and its configuration file's path."""
    if not is_run_dir(run_dir):
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml and checkpoints/)")
    out = describe(run_dir)
    out["config"] = os.path.join(out["path"], "config.yaml")
    out["summary"] = _json(os.path.join(run_dir, "summary.json"))
    return out


def remove(run_dir: str) -> None:
    """Delete a run directory; refused for what is not one, and for a run that is training now."""
    if not is_run_dir(run_dir):
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml and checkpoints/); not removed")
    if lock_held(run_dir):
        raise ConfigError(f"{run_dir} is training now (its lock is held); stop it first")
    try:
        shutil.rmtree(run_dir)
    except OSError as exc:
        raise KerascliError(f"could not remove {run_dir}: {exc.strerror}") from None


def _flat(value, prefix: str = "") -> dict:
    """{'train.epochs': 10, 'model.layers[0].units': 64, ...} of a nested config."""
    if isinstance(value, dict):
        out: dict = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(_flat(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


ABSENT = "(absent)"


def compare(run_dirs: list[str]) -> dict:
    """The config keys whose values differ between runs, and their results side by side: the last epoch's
    values and the final evaluation of every split."""
    import yaml

    infos = [show(d) for d in run_dirs]
    configs = []
    for info in infos:
        try:
            with open(info["config"]) as f:
                configs.append(_flat(yaml.safe_load(f) or {}))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{info['config']}: cannot read ({exc})") from None
    keys = sorted(set().union(*configs))
    differ = {}
    for key in keys:
        values = [c.get(key, ABSENT) for c in configs]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            differ[key] = values
    results: dict = {}
    for i, info in enumerate(infos):
        summary = info["summary"] or {}
        rows = {f"last epoch {k}": v for k, v in (summary.get("final_epoch") or {}).items() if k != "seconds"}
        for split, values in (summary.get("evaluation") or {}).items():
            if isinstance(values, dict):
                rows.update({f"{split} {k}": v for k, v in values.items()})
        for name, value in rows.items():
            results.setdefault(name, [None] * len(infos))[i] = value
    return {"runs": [info["name"] for info in infos], "status": [info["status"] for info in infos],
            "config": differ, "results": results}
