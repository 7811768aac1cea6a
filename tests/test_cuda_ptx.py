"""Every cuda kernel signature the simulator tests launched, compiled to PTX as on a GPU (see
tests/cuda_signatures.py). Runs when KERASCLI_CUDA_SIGNATURES names the file a simulator run recorded
(.ci/run does both); skipped otherwise."""

import os

import pytest
from cuda_signatures import compile_ptx, signatures

PATH = os.environ.get("KERASCLI_CUDA_SIGNATURES", "")
RECORDED = signatures(PATH) if PATH and os.path.exists(PATH) and os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" \
    else {}

pytestmark = pytest.mark.skipif(not RECORDED, reason="no recorded kernel signatures (KERASCLI_CUDA_SIGNATURES)")


@pytest.mark.parametrize("kernel", sorted(RECORDED) or [("none", "none")], ids=lambda k: f"{k[0]}.{k[1]}")
def test_kernel_compiles_for_a_gpu(kernel):
    pytest.importorskip("numba.cuda")
    failures = []
    for args in RECORDED[kernel]:
        try:
            ptx = compile_ptx(*kernel, args)
            assert ".entry" in ptx
        except Exception as e:  # every failing signature is reported, not only the first
            failures.append(f"{args}: {type(e).__name__}: {str(e)[:400]}")
    assert not failures, "\n".join(failures)
