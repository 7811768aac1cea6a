"""kerascli init (starter configs that train as they are) and kerascli config (the resolved config, each value
with where it came from)."""

import json

import pytest
import yaml
from click.testing import CliRunner

from kerascli.cli import cli
from kerascli.tool_commands import TEMPLATES


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_trains_as_it_is(template, tmp_path):
    config = tmp_path / "config.yaml"
    result = invoke("init", template, "-o", config)
    assert result.exit_code == 0, result.output
    text = config.read_text()
    assert text.startswith("# ") and f"name: {template}" in text
    trained = invoke("train", config, "--runs-dir", tmp_path / "runs", "-q", "--set", "train.epochs=2")
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "runs" / template / "summary.json").exists()


def test_init_keeps_an_existing_file(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("mine\n")
    result = invoke("init", "-o", config)
    assert result.exit_code == 2 and "exists; choose another name, or --force" in result.output
    assert config.read_text() == "mine\n"
    assert invoke("init", "-o", config, "--force").exit_code == 0
    assert "name: mlp" in config.read_text()  # mlp by default
    bad = invoke("init", "transformer", "-o", tmp_path / "x.yaml")
    assert bad.exit_code == 2


def test_config_says_where_each_value_came_from(tmp_path):
    config = tmp_path / "config.yaml"
    assert invoke("init", "mlp", "-o", config).exit_code == 0
    result = invoke("config", config, "--set", "train.epochs=3")
    assert result.exit_code == 0, result.output
    lines = {line.split("#")[0].strip(): line.split("# ")[-1] for line in result.output.splitlines() if "#" in line}
    assert lines["epochs: 3"] == "--set train.epochs=3"
    assert lines["batch_size: 32"] == f"{config}:22"
    assert lines["shuffle: true"] == "default"
    assert lines["units: 128"] == f"{config}:13"
    assert lines["beta_1: 0.9"] == "default"
    # the text is a config: it reads back as the resolved one
    from kerascli.commands import load_spec

    assert yaml.safe_load(result.output) == load_spec(str(config), ["train.epochs=3"]).to_dict()
    rows = json.loads(invoke("config", config, "--json").stdout)
    by_key = {r["key"]: r for r in rows}
    assert by_key["model.layers[1].units"] == {"key": "model.layers[1].units", "value": 128,
                                               "from": f"{config}:13"}
    assert by_key["compile.optimizer.epsilon"]["from"] == "default"
    assert by_key["model.input_shape"]["value"] == [64]


def test_config_of_a_run_directory(tmp_path):
    config = tmp_path / "config.yaml"
    assert invoke("init", "regression", "-o", config).exit_code == 0
    assert invoke("train", config, "--runs-dir", tmp_path / "runs", "-q", "--set", "train.epochs=1").exit_code == 0
    result = invoke("config", tmp_path / "runs" / "regression")
    assert result.exit_code == 0
    assert "epochs: 1" in result.output and "config.yaml:" in result.output  # the run's own resolved file
