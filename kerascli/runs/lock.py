"""One live process per run directory.

A run directory holds ``.lock``, locked with ``flock`` by the process that
trains into it and naming that process (host, PID, start time, command). The
operating system drops the lock when the process ends in any way (SIGKILL
included), so a lock left by a dead process is simply taken over; a second
live process (a requeued job while the old one still runs, or the same
``--resume auto`` line started twice) is refused with the owner's name.
The file is left in place and emptied on release: removing it would let a
process that opened it just before the removal lock a file nobody else sees.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time

from kerascli.errors import ConfigError

LOCK_NAME = ".lock"


class RunLock:
    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, LOCK_NAME)
        self.fd: int | None = None
        self.previous: dict | None = None  # the owner recorded by a process that died holding the run

    def acquire(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = _read_owner(fd)
            deadline = time.monotonic() + 1.0
            while not owner and time.monotonic() < deadline:  # it took the lock and is writing its name now
                time.sleep(0.01)
                owner = _read_owner(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ConfigError(f"cannot lock run directory {self.run_dir}: {exc.strerror}") from None
            raise ConfigError(f"run directory {self.run_dir} is in use by {_describe(owner)}; "
                              "wait for it to finish or stop it (a second process would train into the same files)"
                              ) from None
        self.previous = _read_owner(fd) or None
        owner = {"host": socket.gethostname(), "pid": os.getpid(),
                 "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
        os.close(self.fd)  # closing drops the flock
        self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_owner(fd: int) -> dict:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        owner = json.loads(text) if text.strip() else {}
        return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(owner: dict) -> str:
    if not owner:
        return "another process"
    text = f"process {owner.get('pid', '?')} on {owner.get('host', '?')}"
    if owner.get("started"):
        text += f" (since {owner['started']})"
    return text
