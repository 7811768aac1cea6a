"""The registries: lazy built-in entries that all resolve, no import cycle, clear clashes."""

import ast
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from kerascli.ops.contract import ACTIVATION_TABLE
from kerascli.registry import ACTIVATIONS, LAYERS, REGISTRIES, NameClash, Registry


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_every_built_in_entry_resolves(registry):
    for name in registry.builtin_names():
        assert registry.get(name) is not None or name == "accuracy", name


def test_layer_types_carry_their_registered_names():
    for name in LAYERS.builtin_names():
        assert LAYERS.get(name).type_name == name


def test_activation_names_follow_the_table():
    assert ACTIVATIONS.builtin_names() == [a.name for a in ACTIVATION_TABLE]
    assert [ACTIVATIONS.get(a.name) for a in ACTIVATION_TABLE] == [a.code for a in ACTIVATION_TABLE]


def test_the_registry_module_imports_nothing_of_kerascli():
    tree = ast.parse(open(os.path.join(ROOT, "kerascli", "registry.py")).read())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module != "__future__"]
    assert not [m for m in imported if m.startswith("kerascli")], imported


def test_a_lookup_imports_only_what_it_names():
    code = ("import sys\nfrom kerascli.registry import LAYERS\nLAYERS.get('Dense')\n"
            "assert 'kerascli.layers.conv' not in sys.modules and 'numba' not in sys.modules\n"
            "LAYERS.get('conv2d')\nassert 'kerascli.layers.conv' in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_clashes_name_both_sources_and_a_source_may_replace_its_own():
    r = Registry("thing", (("alpha", "kerascli.ops.contract:RELU", "first"),))
    with pytest.raises(NameClash, match="thing 'First' is already registered by built-in .as 'alpha'.; plugin x"):
        r.add("beta", 1, "First", source="plugin x")
    r.add("gamma", 1, source="plugin x")
    r.add("gamma", 2, source="plugin x")  # the same plugin imported again
    assert r.get("gamma") == 2 and r.source("Gamma") == "plugin x"
    with pytest.raises(NameClash):
        r.add("gamma", 3, source="plugin y")
