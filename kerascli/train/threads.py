"""How many threads training uses, and who runs them."""

from __future__ import annotations

import os

from kerascli.ops.backend import available_cores

# kerascli subcommands that keep cores busy
BUSY_COMMANDS = {"train", "resume", "evaluate", "predict"}


def _process_ids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def other_busy_processes() -> int:
    """How many other kerascli processes on this machine are training, evaluating or predicting
    (read from /proc; 0 where there is no /proc)."""
    me, count = os.getpid(), 0
    try:
        pids = _process_ids()
    except OSError:
        return 0
    for pid in pids:
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue  # ended meanwhile, or not ours to read
        if _is_busy_kerascli(argv):
            count += 1
    return count


def _is_busy_kerascli(argv: list[str]) -> bool:
    for i, arg in enumerate(argv[:-1]):
        if os.path.basename(arg) == "kerascli" or (arg == "-m" and argv[i + 1] == "kerascli"):
            rest = argv[i + 2:] if arg == "-m" else argv[i + 1:]
            return any(a in BUSY_COMMANDS for a in rest[:3])  # the subcommand, after options such as --debug
    return False


def choose_threads(requested: int) -> tuple[int, str | None]:
    """The thread count to use and a note for the user. ``requested`` 0 takes the available cores, shared
    with the kerascli processes already busy on this machine (saying so when there are some); an
    explicit count is kept, with a warning when it oversubscribes the cores together with them.

    Two processes that each run BLAS on every core of a small machine do not run at half speed but
    many times slower (measured: a Dense model 0.5 s alone, 15 s each when two ran at once on 2 cores
    with 2 threads each; 1.3 s each with 2 + 1 threads).
    """
    from kerascli.train.distributed import local_threads

    launched = local_threads()
    if launched is not None and not requested:  # one of several MPI ranks: this node's share, no warning
        return launched, None
    cores, others = available_cores(), other_busy_processes()
    share = max(1, cores // (others + 1))
    busy = f"{others} other kerascli process{'es' if others > 1 else ''} busy on this machine's {cores} cores"
    if requested:
        note = f"{busy} and {requested} threads here: oversubscribed runs can be many times slower"
        return requested, note if others and requested > share else None
    if not others:
        return cores, None
    return share, f"{busy}: using {share} thread{'s' if share > 1 else ''} (set --threads or train.threads to choose)"


def auto_threads() -> tuple[int, str | None]:
    """``choose_threads`` for ``threads: 0``."""
    return choose_threads(0)


def oversubscription_note(threads: int) -> str | None:
    """The warning ``choose_threads`` gives for an explicit thread count, if any."""
    return choose_threads(threads)[1]


def set_threads(threads: int, batch_parallel: bool = True, backend: str = "cpu") -> int:
    """Use ``threads`` threads (0: every available core) on ``backend``'s Ops; returns the count applied
    (see NumbaCPUOps.set_threads for the two threading regimes)."""
    from kerascli.ops import get_ops

    return get_ops(backend).set_threads(threads, batch_parallel)
