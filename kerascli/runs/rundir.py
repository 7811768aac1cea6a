"""The run directory: runs/<name>/ with config, metrics, checkpoints and summary."""

from __future__ import annotations

import csv
import io
import os

from kerascli.config.schema import RUN_NAME_RE, RUN_NAME_RULE
from kerascli.errors import ConfigError, KerascliError
from kerascli.runs.atomic import atomic_write_text


def create_run_dir(runs_dir: str, name: str) -> str:
    """Make ``runs_dir/name`` (or ``name-2``, ``name-3``, ... when taken) and return its path."""
    if not RUN_NAME_RE.match(name):
        raise ConfigError(f"run name {name!r} {RUN_NAME_RULE}")
    try:
        os.makedirs(runs_dir, exist_ok=True)
    except OSError as exc:
        raise KerascliError(f"cannot create runs directory {runs_dir}: {exc.strerror}") from None
    if not os.access(runs_dir, os.W_OK):
        raise KerascliError(f"runs directory {runs_dir} is not writable")
    candidate, n = name, 1
    while True:
        path = os.path.join(runs_dir, candidate)
        try:
            os.mkdir(path)  # atomic: two jobs starting at once never share a directory
            break
        except FileExistsError:
            n += 1
            candidate = f"{name}-{n}"
        except OSError as exc:
            raise KerascliError(f"cannot create run directory {path}: {exc.strerror}") from None
    os.mkdir(os.path.join(path, "checkpoints"))
    return path


def write_metrics_csv(path: str, history: list[dict]) -> None:
    """Rewrite metrics.csv with one row per epoch (the file is small; rewriting keeps it atomic)."""
    columns: list[str] = []
    for row in history:
        for key in row:
            if key not in columns:
                columns.append(key)
    # epoch first, then training values, their val_ twins, lr and seconds last
    tail = [c for c in ("lr", "seconds") if c in columns]
    body = [c for c in columns if c not in ("epoch", *tail)]
    train = [c for c in body if not c.startswith("val_")]
    ordered = ["epoch"] + train + [c for c in body if c.startswith("val_")] + tail
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(ordered)
    for row in history:
        writer.writerow([_fmt(row.get(c, "")) for c in ordered])
    atomic_write_text(path, buf.getvalue())


def _fmt(value) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)
