"""Numba's on-disk kernel cache, made to notice changes in the files a kernel depends on.

Numba keys a cached kernel by a hash of the one file that defines it. A kernel
here also compiles code from other files (ops/scalar.py's definitions, shared
helpers of another family, tunables), and a change there would leave the
cached machine code stale: after an upgrade that touched only scalar.py, a
loss kernel would still compute the old loss. So every kernel defined under
kerascli/ops is keyed, in addition, by a digest of all the sources there: any
change to any of them recompiles every kernel once.

The hook is Numba's list of cache locators (one per way of finding a cache
directory), an internal detail: where a Numba release moves it, ``install``
does nothing and caching works as Numba's own (without this protection).
"""

from __future__ import annotations

import hashlib
import os

OPS_DIR = os.path.dirname(os.path.abspath(__file__))


def sources_digest(root: str = OPS_DIR) -> str:
    """SHA-256 over the relative path and content of every .py file under ``root``."""
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


DIGEST = sources_digest()


def _keyed(locator_class):
    """A subclass of one of Numba's locators that takes only kernels under kerascli/ops and adds DIGEST
    to their source stamp."""

    class KernelSourcesLocator(locator_class):
        def get_source_stamp(self):
            return super().get_source_stamp(), DIGEST

        @classmethod
        def from_function(cls, py_func, py_file):
            if not os.path.abspath(py_file).startswith(OPS_DIR + os.sep):
                return None
            return super().from_function(py_func, py_file)

    KernelSourcesLocator.__name__ = f"KernelSources{locator_class.__name__}"
    return KernelSourcesLocator


def install(cache_impl) -> bool:
    """Put digest-keyed twins of ``cache_impl``'s locators ahead of them (once); False where Numba's
    caching has no such list."""
    locators = getattr(cache_impl, "_locator_classes", None)
    if not isinstance(locators, list):
        return False
    if not any(getattr(c, "__name__", "").startswith("KernelSources") for c in locators):
        locators[:0] = [_keyed(c) for c in list(locators)]
    return True


def install_for_cpu() -> bool:
    try:
        from numba.core.caching import CacheImpl
    except ImportError:
        return False
    return install(CacheImpl)


def install_for_cuda() -> bool:
    try:
        from numba.cuda.core.caching import CacheImpl
    except ImportError:
        return False
    return install(CacheImpl)
