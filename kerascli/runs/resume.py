"""Finding where to resume a run, and checking that the config still describes the same run."""

from __future__ import annotations

import os
from typing import Callable

from kerascli.errors import CheckpointError, ConfigError
from kerascli.runs.checkpoint import Checkpoint, load_checkpoint

# Keys a resumed run may change: how long to train and how checkpoints are taken; and its name, which
# is only a folder name (a run directory may be renamed, copied, or be runs/<name>-3).
MAY_CHANGE = {("name",), ("train", "epochs"), ("train", "threads"), ("train", "backend"), ("checkpoint", "every_steps"),
              ("checkpoint", "every_seconds"), ("checkpoint", "keep"), ("train", "tensorboard")}


def candidates(run_dir: str) -> list[str]:
    """Checkpoints that hold a training position (best.npz is a copy of an older one)."""
    folder = os.path.join(run_dir, "checkpoints")
    if not os.path.isdir(folder):
        return []
    names = sorted(f for f in os.listdir(folder) if f == "last.npz" or (f.startswith("step-") and f.endswith(".npz")))
    return [os.path.join(folder, f) for f in names]


def newest_good_checkpoint(run_dir: str, warn: Callable[[str], None]) -> Checkpoint | None:
    """The furthest-along checkpoint that loads and passes its checksum; corrupt ones are reported."""
    good = []
    for path in candidates(run_dir):
        try:
            good.append(load_checkpoint(path))
        except CheckpointError as exc:
            warn(f"skipping a damaged checkpoint: {exc}")
    return max(good, key=lambda c: c.global_step, default=None)


def first_difference(old, new, path=()) -> tuple | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            if path + (key,) in MAY_CHANGE:
                continue
            found = first_difference(old.get(key), new.get(key), path + (key,))
            if found is not None:
                return found
        return None
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            found = first_difference(a, b, path + (i,))
            if found is not None:
                return found
        return None
    return None if old == new else (path, old, new)


def check_same_run(stored: dict | None, config: dict, ckpt: Checkpoint, threads: int) -> None:
    if stored is None:
        raise CheckpointError(f"{ckpt.path} has no stored config; it cannot be resumed")
    diff = first_difference(stored, config)
    if diff is not None:
        path, old, new = diff
        key = ".".join(str(p) for p in path)
        raise ConfigError(
            f"the config differs from the run being resumed at {key}: {old!r} in the run, {new!r} now; "
            "only train.epochs, train.threads, train.backend, train.tensorboard and the checkpoint frequency may "
            "change (train without --resume for a new run)"
        )
    if config["train"].get("deterministic") and ckpt.state.get("threads") not in (None, threads):
        raise ConfigError(
            f"train.deterministic: the run used {ckpt.state['threads']} threads, this process has {threads}; "
            "resume with --threads " + str(ckpt.state["threads"])
        )
