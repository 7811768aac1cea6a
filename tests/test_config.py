"""Config loading, overrides and validation: every error names file, line and key."""

import os

import pytest
import yaml
from conftest import CONFIGS, SMALL_MLP

from kerascli.config import apply_overrides, load_config_file, resolve_config
from kerascli.config.loader import LoadedConfig, parse_yaml_text
from kerascli.errors import ConfigError


def resolve_text(text, overrides=()):
    loaded = parse_yaml_text(text, "cfg.yaml")
    return resolve_config(apply_overrides(loaded, list(overrides)))


def error_of(text, overrides=()):
    with pytest.raises(ConfigError) as info:
        resolve_text(text, overrides)
    return str(info.value)


def test_resolves_every_default():
    spec = resolve_text(SMALL_MLP)
    d = spec.to_dict()
    assert d["compile"]["optimizer"] == {"type": "adam", "learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999,
                                         "epsilon": 1e-7, "amsgrad": False, "weight_decay": None, "clipnorm": None,
                                         "clipvalue": None, "global_clipnorm": None,
                                         "gradient_accumulation_steps": None, "use_ema": False, "ema_momentum": 0.99,
                                         "ema_overwrite_frequency": None}
    assert d["compile"]["loss"] == {"type": "sparse_categorical_crossentropy", "from_logits": False, "axis": -1,
                                    "ignore_class": None}
    assert d["model"]["layers"][0] == {"type": "Dense", "name": "dense", "units": 8, "activation": "relu",
                                       "use_bias": True, "kernel_initializer": "glorot_uniform",
                                       "bias_initializer": "zeros", "kernel_regularizer": None,
                                       "bias_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
                                       "trainable": True, "activity_regularizer": None}
    assert d["model"]["layers"][2]["name"] == "dense_1"
    assert d["train"] == {"epochs": 2, "batch_size": 16, "shuffle": True, "dtype": "float32", "backend": "cpu",
                          "threads": 0, "deterministic": False, "on_nan": "stop", "validation_freq": 1,
                          "initial_epoch": 0, "steps_per_epoch": None, "validation_steps": None,
                          "class_weight": None, "tensorboard": False}
    assert d["checkpoint"] == {"monitor": "val_loss", "mode": "auto", "every_steps": 0, "every_seconds": 0.0,
                               "keep": 3}
    assert d["data"]["shuffle"] is True


def test_resolved_config_resolves_to_itself():
    for name in os.listdir(CONFIGS):
        spec = resolve_config(load_config_file(os.path.join(CONFIGS, name)))
        text = yaml.safe_dump(spec.to_dict(), sort_keys=False)
        again = resolve_config(parse_yaml_text(text, "resolved.yaml"))
        assert again.to_dict() == spec.to_dict(), name


def test_names_are_case_insensitive_and_canonical():
    text = SMALL_MLP.replace("optimizer: adam", "optimizer: Adam").replace("type: Dense, units: 8", "type: dense, units: 8")
    d = resolve_text(text).to_dict()
    assert d["compile"]["optimizer"]["type"] == "adam"
    assert d["model"]["layers"][0]["type"] == "Dense"


def test_overrides_parse_yaml_values():
    spec = resolve_text(SMALL_MLP, ["train.epochs=7", "model.layers[0].units=5", "compile.optimizer={type: sgd}",
                                    "train.shuffle=false"])
    assert spec.train["epochs"] == 7 and spec.train["shuffle"] is False
    assert spec.model.layers[0]["units"] == 5
    assert spec.compile["optimizer"]["type"] == "sgd"


@pytest.mark.parametrize("overrides,needle", [
    (["train.epochs"], "expected KEY=VALUE"),
    (["train.epochs=[1"], "not valid YAML"),
    (["model.layers[9].units=3"], "no list item [9]"),
    (["train..epochs=3"], "bad key"),
])
def test_bad_overrides(overrides, needle):
    msg = error_of(SMALL_MLP, overrides)
    assert needle in msg and "--set" in msg


def test_override_errors_point_at_the_set():
    msg = error_of(SMALL_MLP, ["train.epochs=zero"])
    assert msg.startswith("--set train.epochs=zero: train.epochs: expected an integer")


def test_yaml_syntax_error_has_a_line():
    msg = error_of("name: x\ndata: {dataset: digits\nmodel: 3\n")
    assert msg.startswith("cfg.yaml:") and "YAML syntax error" in msg


@pytest.mark.parametrize("old,new,needle,line", [
    ("epochs: 2", "epoch: 2", "unknown key 'epoch'; did you mean 'epochs'?", 15),
    ("units: 8", "units: eight", "model.layers[0].units: expected an integer, got str 'eight'", 8),
    ("units: 8", "units: -3", "model.layers[0].units: must be >= 1, got -3", 8),
    ("units: 8", "units: 1000000000000", "must be <= 16777216", 8),
    ("type: Dropout", "type: Dropuot", "unknown layer type 'Dropuot'; did you mean 'Dropout'?", 9),
    ("optimizer: adam", "optimizer: adma", "unknown optimizer 'adma'; did you mean 'adam'?", 12),
    ("loss: sparse_categorical_crossentropy", "loss: sparse_crossentropy", "unknown loss 'sparse_crossentropy'", 13),
    ("activation: relu", "activation: rleu", "did you mean 'relu'?", 8),
    ("rate: 0.1", "rate: 1.5", "must be < 1.0", 9),
    ("rate: 0.1", "rate: 1.0", "must be < 1", 9),
    ("metrics: [accuracy]", "metrics: [acuracy]", "unknown metric 'acuracy'", 14),
    ("batch_size: 16", "batch_size: true", "expected an integer, got bool True", 15),
    ("validation_split: 0.2", "validation_split: half", "expected a number", 4),
    ("dataset: synthetic_classification", "dataset: digitz", "unknown dataset 'digitz'", 4),
    ("train: {epochs: 2, batch_size: 16}\n", "train: {epochs: 2, batch_size: 16}\nextra: 1\n", "unknown key 'extra'", 16),
])
def test_config_errors_name_file_line_and_key(old, new, needle, line):
    assert old in SMALL_MLP
    msg = error_of(SMALL_MLP.replace(old, new))
    assert needle in msg, msg
    assert msg.startswith(f"cfg.yaml:{line}: "), msg


def test_missing_sections_and_keys():
    assert "missing required section 'model'" in error_of("data: {dataset: digits}\ncompile: {loss: mse}\n")
    assert "missing required key 'loss'" in error_of(SMALL_MLP.replace("  loss: sparse_categorical_crossentropy\n", ""))
    assert "missing required key 'units'" in error_of(SMALL_MLP.replace("units: 8, ", ""))
    assert "expected a mapping" in error_of("- a\n- b\n") or "must be a mapping" in error_of("- a\n- b\n")


def test_empty_and_scalar_configs():
    assert "empty" in error_of("")
    assert "must be a mapping" in error_of("42\n")


FUNCTIONAL = """
data: {dataset: digits}
model:
  inputs: [{name: x, shape: [64]}]
  layers:
    - {name: a, type: Dense, units: 4, inputs: [x]}
    - {name: b, type: Dense, units: 4, inputs: [x]}
    - {name: s, type: Add, inputs: [a, b]}
    - {name: out, type: Dense, units: 10, activation: softmax, inputs: [s]}
  outputs: [out]
compile: {loss: sparse_categorical_crossentropy}
"""


def test_functional_form():
    spec = resolve_text(FUNCTIONAL)
    assert not spec.model.sequential
    assert spec.model.layers[2]["inputs"] == ["a", "b"]
    assert spec.to_dict()["model"]["outputs"] == ["out"]


@pytest.mark.parametrize("mutate,needle", [
    (lambda t: t.replace("inputs: [a, b]", "inputs: [a, c]"), "'c' is not an input or an earlier layer"),
    (lambda t: t.replace("name: b,", "name: a,"), "duplicate name 'a'"),
    (lambda t: t.replace("outputs: [out]", "outputs: [nope]"), "'nope' is not a layer of this model"),
    (lambda t: t.replace(", inputs: [x]}", "}", 1), "missing required key 'inputs'"),
    (lambda t: t.replace("name: a,", "name: ../a,"), "layer name '../a' must start with a letter"),
])
def test_functional_errors(mutate, needle):
    assert needle in error_of(mutate(FUNCTIONAL))


def test_run_name_must_be_plain():
    assert "run name '../../x'" in error_of("name: ../../x\n" + SMALL_MLP.replace("name: small\n", ""))


def test_line_lookup_falls_back_to_the_nearest_parent():
    loaded = LoadedConfig(data={}, source="f.yaml", lines={("a",): 3})
    assert loaded.where(("a", "b", 0)) == "f.yaml:3"


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config_file(str(tmp_path / "nope.yaml"))


# ------------------------------------------------------------------ YAML: numbers, duplicates, size limits
@pytest.mark.parametrize("spelling,value", [
    ("1e-3", 1e-3), ("1E-3", 1e-3), ("5e4", 5e4), ("2e+2", 200.0), ("+1.5e2", 150.0), (".5e1", 5.0),
    ("1.0e3", 1000.0), ("1.e-2", 0.01), ("0.001", 0.001), (".001", 0.001), ("1_000.5", 1000.5), ("3", 3),
])
def test_numbers_in_every_yaml_spelling_are_numbers(spelling, value):
    text = SMALL_MLP.replace("optimizer: adam", f"optimizer: {{type: adam, learning_rate: {spelling}}}")
    via_set = resolve_text(SMALL_MLP, [f"compile.optimizer={{type: adam, learning_rate: {spelling}}}"])
    for spec in (resolve_text(text), via_set, resolve_text(text, [f"compile.optimizer.learning_rate={spelling}"])):
        assert spec.compile["optimizer"]["learning_rate"] == pytest.approx(value)


def test_strings_that_only_look_numeric_stay_strings():
    from kerascli.config.yamlsafe import load_yaml

    assert load_yaml("[e5, 1e, 1e-, 1.2.3, 0x1G, '1e-3']")[0] == ["e5", "1e", "1e-", "1.2.3", "0x1G", "1e-3"]
    assert load_yaml("[-2e+2, -1E3, +3e0, 10, -7, .inf]")[0] == [-200.0, -1000.0, 3.0, 10, -7, float("inf")]
    assert load_yaml("[0o17, 0x1F, 0b101, 1_000, '0o17']")[0] == [15, 31, 5, 1000, "0o17"]


@pytest.mark.parametrize("text,lines", [
    (SMALL_MLP + "seed: 4\n", (3, 16)),  # top level
    (SMALL_MLP.replace("train: {epochs: 2, batch_size: 16}", "train: {epochs: 2, batch_size: 16, epochs: 3}"),
     (15, 15)),  # flow mapping on one line
    (SMALL_MLP.replace("  metrics: [accuracy]\n", "  metrics: [accuracy]\n  loss: mse\n"), (13, 15)),  # nested
])
def test_duplicate_keys_are_refused_naming_both_lines(text, lines):
    msg = error_of(text)
    assert "duplicate key" in msg and f"(lines {lines[0]} and {lines[1]})" in msg, msg
    assert msg.startswith(f"cfg.yaml:{lines[1]}: ")
    assert "duplicate key 'a'" in error_of(SMALL_MLP, ["train={a: 1, a: 2}"])


def test_merge_keys_may_override_what_they_bring():
    text = SMALL_MLP.replace("train: {epochs: 2, batch_size: 16}",
                             "base: &base {epochs: 2, batch_size: 16}\ntrain: {<<: *base, epochs: 3}")
    assert "unknown key 'base'" in error_of(text)  # the merge itself was accepted
    loaded = parse_yaml_text("a: &b {x: 1, y: 2}\nc: {<<: *b, y: 3}\n", "m.yaml")
    assert loaded.data["c"] == {"x": 1, "y": 3}


def billion_laughs(levels=9):
    lines = ['l0: &l0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_alias_bombs_are_refused_before_expanding():
    import resource
    import time

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    msg = error_of(billion_laughs())  # 10**9 strings once expanded
    assert "expands to more than 100,000 values (through aliases)" in msg and msg.startswith("cfg.yaml:")
    assert time.process_time() - started < 5  # generous: expanding would take hours
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing was expanded
    bomb = "{" + ", ".join(line.replace(": ", ": ", 1) for line in billion_laughs().splitlines()) + "}"
    assert "expands to more than" in error_of(SMALL_MLP, ["train=" + bomb])


def test_small_aliases_are_fine():
    text = SMALL_MLP.replace("    - {type: Dense, units: 8, activation: relu}",
                             "    - &hidden {type: Dense, units: 8, activation: relu}\n    - *hidden")
    assert [layer["units"] for layer in resolve_text(text).model.layers[:2]] == [8, 8]


@pytest.mark.parametrize("text,needle", [
    ("a: " + "[" * 1000 + "]" * 1000 + "\n", "nested more than 64 levels deep"),
    ("a: " + "{b: " * 300 + "1" + "}" * 300 + "\n", "nested more than 64 levels deep"),
    ("a: &a [1, *a]\n", "refers to a node that contains it"),
    ("deep: &d " + "[" * 40 + "1" + "]" * 40 + "\nmore: &e " + "[" * 30 + "*d" + "]" * 30 + "\n",
     "nested more than 64 levels deep (through aliases)"),
])
def test_deep_and_recursive_yaml_is_refused(text, needle):
    msg = error_of(text)
    assert needle in msg and msg.startswith("cfg.yaml:"), msg


def test_huge_config_text_is_refused():
    assert "larger than 4 MiB" in error_of("a: [" + "1, " * 2_000_000 + "1]\n")


def test_set_errors_are_one_line_and_name_the_set():
    msg = error_of(SMALL_MLP, ["train={epochs: [1, 2"])
    assert "\n" not in msg and msg.startswith("--set train={epochs: [1, 2: the value is not valid YAML")
    # an error inside a value the --set replaced is the --set's, not the file line that held the old value
    msg = error_of(SMALL_MLP, ["train={epochs: x}"])
    assert msg.startswith("--set train={epochs: x}: train.epochs: expected an integer"), msg
    # an error about a node the --set changed something inside of names both
    msg = error_of(SMALL_MLP, ["model.layers[1].type=Dense"])
    assert msg.startswith("cfg.yaml:9 (with --set model.layers[1].type=Dense): model.layers[1].rate: unknown"), msg
    msg = error_of(SMALL_MLP, ["model.layers[1]={type: Dense}"])
    assert msg.startswith("--set model.layers[1]={type: Dense}: model.layers[1]: missing required key 'units'"), msg
    assert error_of(SMALL_MLP, [("train.threads=100000", "--threads 100000")]).startswith(
        "--threads 100000: train.threads: must be <= 1024")


@pytest.mark.parametrize("file_name,run_name", [
    ("2024-exp.yaml", "2024-exp"), ("my config.yaml", "my_config"), ("é+x.yml", "x"), ("_.yaml", "run"),
    ("v1.2.yaml", "v1.2"),
])
def test_run_name_is_derived_from_any_file_name(tmp_path, file_name, run_name):
    path = tmp_path / file_name
    path.write_text(SMALL_MLP.replace("name: small\n", ""))
    assert resolve_config(load_config_file(str(path))).name == run_name


def test_an_empty_string_is_a_value_only_where_it_is_the_default():
    from kerascli.config.loader import LoadedConfig
    from kerascli.config.params import Checker, Param

    check = Checker(LoadedConfig(data={}, source="c.yaml"))
    optional, required = Param("str", ""), Param("str", "label")
    assert check.value("", optional, ("data", "log")) == ""  # what a resolved config holds is read back
    with pytest.raises(ConfigError, match="data.label_column: expected a non-empty string, got ''"):
        check.value("", required, ("data", "label_column"))
