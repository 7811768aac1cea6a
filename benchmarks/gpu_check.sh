#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the CUDA tests for real (every kernel against its numpy twin, every layer
# against the cpu backend, training and checkpoints across backends), then kerascli's cuda backend against
# PyTorch eager on the same GPU (benchmarks/gpu_check.py). Needs numba-cuda, PyTorch with CUDA and pytest;
# CuPy for the cuBLAS GEMM. Arguments go to gpu_check.py (--quick, --out FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$py" - <<'PY'
import importlib.metadata as m
found = []
for name in ("numba", "numba-cuda", "numpy", "torch", "cupy-cuda13x", "cupy-cuda12x"):
    try:
        found.append(f"{name} {m.version(name)}")
    except m.PackageNotFoundError:
        pass
print(", ".join(found))
PY
started=$SECONDS
status=0
# with pytest-xdist, test processes compile their kernels side by side (on an H200 with 16 cores: 26 s)
parallel=()
"$py" -c "import xdist" 2>/dev/null && parallel=(-n 8)
"$py" -m pytest -q -p no:randomly -p no:cacheprovider "${parallel[@]}" tests/test_cuda.py tests/test_ops_parity.py \
    -k cuda || status=$?
echo "tests: $((SECONDS - started)) s (exit $status)"
"$py" benchmarks/gpu_check.py "$@"
echo "total: $((SECONDS - started)) s"
exit $status
