"""Cached kernels are keyed by every source under kerascli/ops: a change to a file a kernel only inlines
(ops/scalar.py) recompiles it instead of running stale machine code."""

import os
import shutil

from kerascli.ops import kernel_cache


def test_kernels_are_keyed_by_all_the_ops_sources():
    from kerascli.ops.cpu.losses import element_loss

    locator = element_loss._cache._impl.locator
    assert type(locator).__name__.startswith("KernelSources")
    own, digest = locator.get_source_stamp()
    assert digest == kernel_cache.DIGEST == kernel_cache.sources_digest()


def test_the_digest_follows_any_source_and_nothing_else(tmp_path):
    copy = tmp_path / "ops"
    shutil.copytree(kernel_cache.OPS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert kernel_cache.sources_digest(str(copy)) == kernel_cache.DIGEST
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "x.nbi").write_bytes(b"cache files are not sources")
    assert kernel_cache.sources_digest(str(copy)) == kernel_cache.DIGEST
    scalar = copy / "scalar.py"
    scalar.write_text(scalar.read_text() + "\n# changed\n")
    assert kernel_cache.sources_digest(str(copy)) != kernel_cache.DIGEST


def test_functions_elsewhere_keep_numbas_own_locators(tmp_path):
    from numba.core.caching import CacheImpl

    ours = [c for c in CacheImpl._locator_classes if c.__name__.startswith("KernelSources")]
    assert ours and len(ours) * 2 == len(CacheImpl._locator_classes)  # installed once, ahead of Numba's own
    elsewhere = tmp_path / "mine.py"
    elsewhere.write_text("def f():\n    return 1\n")
    for locator in ours:
        assert locator.from_function(test_functions_elsewhere_keep_numbas_own_locators, str(elsewhere)) is None
    assert os.path.isdir(kernel_cache.OPS_DIR)
