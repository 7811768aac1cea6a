"""How many threads training uses, and who runs them."""

from __future__ import annotations

import os


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# kerascli subcommands that keep cores busy
BUSY_COMMANDS = {"train", "resume", "evaluate", "predict"}


def other_busy_processes() -> int:
    """How many other kerascli processes on this machine are training, evaluating or predicting
    (read from /proc; 0 where there is no /proc)."""
    me, count = os.getpid(), 0
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
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


def auto_threads() -> tuple[int, str | None]:
    """The thread count for ``threads: 0``: the available cores, shared with the kerascli processes
    already busy on this machine, and a note saying so when they are.

    Two processes that each run BLAS on every core of a small machine do not run at half speed but
    many times slower (measured: a Dense model 0.5 s alone, 15 s each when two ran at once on 2 cores
    with 2 threads each; 1.3 s each with 2 + 1 threads).
    """
    cores, others = available_cores(), other_busy_processes()
    if not others:
        return cores, None
    n = max(1, cores // (others + 1))
    return n, (f"{others} other kerascli process{'es' if others > 1 else ''} busy on this machine's {cores} cores: "
               f"using {n} thread{'s' if n > 1 else ''} (set --threads or train.threads to choose)")


def oversubscription_note(threads: int) -> str | None:
    """A warning when an explicit thread count together with other busy kerascli processes exceeds the cores."""
    cores, others = available_cores(), other_busy_processes()
    if others and threads > max(1, cores // (others + 1)):
        return (f"{others} other kerascli process{'es' if others > 1 else ''} busy on this machine's {cores} cores "
                f"and {threads} threads here: oversubscribed runs can be many times slower")
    return None


def set_threads(threads: int, batch_parallel: bool = True) -> int:
    """Use ``threads`` threads (0: every available core); returns the count applied.

    Two regimes, never both at once (on a small machine an idle pool spinning
    next to a busy one halves the busy one's speed):

    * ``batch_parallel``: layers split their batch across kerascli's own pool
      (kerascli.ops.workers) and run BLAS and Numba single-threaded inside it.
      Best for convolutional models, whose window kernels are most of the work.
    * otherwise: BLAS parallelises each matrix product itself and everything
      else runs on one thread. Best for models made of Dense layers, where
      the products are the work and handing parts to threads would cost more
      than it saves at small batches.
    """
    import numba
    from threadpoolctl import threadpool_limits

    from kerascli.ops.workers import set_workers

    n = threads or available_cores()
    numba.set_num_threads(1)
    threadpool_limits(limits=1 if batch_parallel else n, user_api="blas")
    set_workers(n if batch_parallel else 1)
    return n
