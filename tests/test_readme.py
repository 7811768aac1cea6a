"""The README stays true: every registered name is documented and its annotated example is valid."""

import os
import re

import pytest
from conftest import ROOT

from kerascli.config.loader import parse_yaml_text
from kerascli.config.schema import resolve_config
from kerascli.registry import (
    ACTIVATIONS,
    CONSTRAINTS,
    DATASETS,
    INITIALIZERS,
    LAYERS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    REGULARIZERS,
    load_builtins,
)

load_builtins()
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


@pytest.mark.parametrize("registry", [LAYERS, ACTIVATIONS, DATASETS, INITIALIZERS, REGULARIZERS, CONSTRAINTS, LOSSES,
                                      METRICS, OPTIMIZERS], ids=lambda r: r.kind)
def test_every_registered_name_is_documented(registry):
    missing = [name for name in registry.builtin_names() if f"`{name}`" not in README]
    assert not missing, f"README does not mention {registry.kind}s {missing}"


def test_annotated_example_is_a_valid_config():
    blocks = re.findall(r"```yaml\n(.*?)```", README, re.S)
    example = next(b for b in blocks if b.startswith("name: digits-mlp"))
    spec = resolve_config(parse_yaml_text(example, "README example"))
    assert spec.train["epochs"] == 40 and spec.model.layers[1]["units"] == 128


def test_quickstart_has_exactly_two_commands():
    quick = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", quick, re.S)
    assert len(commands) == 2
    assert "kerascli train configs/digits_mlp.yaml" in commands[0]
    assert ".[test]" in commands[1] and "pytest" in commands[1]


def test_the_weight_table_lists_every_layer_with_weights():
    """Each registered layer that declares weights has a row in the README's weight table naming every one of
    them (built from its first row of the layer table)."""
    from test_layers import ROWS, make_layer

    table = README[README.index("Weights by layer"):]
    table = table[:table.index("\n\n", table.index("| layer | weights |"))]
    rows = {line.split("|")[1].strip().strip("`"): line for line in table.splitlines() if line.startswith("| `")}
    for type_name, cases in ROWS.items():
        names = set()
        for params, shape in cases:
            layer, _ = make_layer(type_name, params, shape, "reference")
            names |= {spec.name for spec in layer.weight_specs}
        if not names:
            assert type_name not in rows, f"{type_name} has no weights but a row"
            continue
        assert type_name in rows, f"README's weight table has no row for {type_name}"
        for name in names:
            if type_name == "Bidirectional":  # forward_lstm/kernel ...: documented as forward_<layer>/...
                name = name.split("_")[0] + "_<layer>/..."
            if type_name == "TimeDistributed":  # dense/kernel, conv2d/bias ...: documented as <layer>/...
                name = "<layer>/..."
            assert f"`{name}`" in rows[type_name], f"{type_name}'s row does not name {name}"
