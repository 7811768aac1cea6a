"""The backend boundary holds: layers, losses, metrics and optimizers compute only through ``self.ops``
(no numpy matrix products, no thread pool, no backend named), and importing the package stays light."""

import ast
import os
import subprocess
import sys

import pytest
from conftest import ROOT

PACKAGE = os.path.join(ROOT, "kerascli")
BOUNDED = [os.path.join(PACKAGE, "layers", f) for f in sorted(os.listdir(os.path.join(PACKAGE, "layers")))
           if f.endswith(".py")] + [os.path.join(PACKAGE, f) for f in ("losses.py", "metrics.py", "optimizers.py")]

PRODUCTS = {"matmul", "dot", "einsum", "tensordot", "inner", "outer", "vdot"}
BACKEND_MODULES = ("kerascli.ops.cpu", "kerascli.ops.reference", "kerascli.ops.backend", "kerascli.ops.algorithms",
                   "numba", "threading", "concurrent")


def violations(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            found.append(f"line {node.lineno}: the @ operator")
        elif isinstance(node, ast.Attribute) and node.attr in PRODUCTS and getattr(node.value, "id", "") == "np":
            found.append(f"line {node.lineno}: np.{node.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            names += [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else []
            bad = [name for name in names if name.startswith(BACKEND_MODULES) or name.endswith(".workers")]
            if bad:
                found.append(f"line {node.lineno}: imports {bad[0]}")
        elif isinstance(node, ast.Constant) and node.value in ("cpu", "reference", "cuda"):
            found.append(f"line {node.lineno}: names the backend {node.value!r}")
    return found


@pytest.mark.parametrize("path", BOUNDED, ids=lambda p: os.path.relpath(p, PACKAGE))
def test_layers_losses_metrics_optimizers_compute_through_ops(path):
    found = violations(path)
    assert not found, f"{os.path.relpath(path, ROOT)} goes around the Ops: " + "; ".join(found)


def test_the_check_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy as np\nfrom kerascli.ops.cpu import workers\n"
                   "def f(a, b):\n    return np.matmul(a, b) + a @ b, get_ops('cpu')\n")
    assert len(violations(str(bad))) == 4


def test_importing_the_ops_boundary_does_not_import_numba():
    code = ("import sys\nimport kerascli.ops, kerascli.ops.backend, kerascli.graph.model, kerascli.layers\n"
            "assert 'numba' not in sys.modules, 'numba imported'\n"
            "from kerascli.ops import get_ops\nget_ops('reference').dense_forward\n"
            "assert 'numba' not in sys.modules, 'the reference Ops imported numba'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
