"""kerascli export --format onnx: checked by onnx's checker and run in onnxruntime (where installed), matching
kerascli's predictions within 1e-5 at any batch size, for every exported layer type."""

import sys

import numpy as np
import pytest
from click.testing import CliRunner

from kerascli.cli import cli
from kerascli.config import resolve_config
from kerascli.config.loader import LoadedConfig
from kerascli.runs.checkpoint import apply_weights
from kerascli.train.session import build_session

onnx = pytest.importorskip("onnx")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


CASES = {
    "dense": ([6], [{"type": "Dense", "units": 5, "activation": act} for act in
                    ("relu", "sigmoid", "tanh", "elu", "selu", "softplus", "softsign", "hard_sigmoid", "linear")]
           + [{"type": "Dense", "units": 4, "use_bias": False, "activation": "leaky_relu"},
              {"type": "Activation", "activation": "exponential"}, {"type": "Dense", "units": 3},
              {"type": "Softmax"}]),
    "conv": ([9, 8, 2], [{"type": "Rescaling", "scale": 0.5, "offset": 0.1},
                         {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
                         {"type": "Conv2D", "filters": 3, "kernel_size": [2, 3], "strides": 2, "padding": "same"},
                         {"type": "BatchNormalization"}, {"type": "ReLU"},
                         {"type": "Conv2D", "filters": 3, "kernel_size": 2, "dilation_rate": 2, "use_bias": False},
                         {"type": "MaxPooling2D", "pool_size": 2, "padding": "same"},
                         {"type": "AveragePooling2D", "pool_size": 2, "strides": 1, "padding": "same"},
                         {"type": "Dropout", "rate": 0.5}, {"type": "Flatten"},
                         {"type": "Dense", "units": 3, "activation": "softmax"}]),
    "pools": ([8, 8, 3], [{"type": "AveragePooling2D", "pool_size": 3, "strides": 2},
                          {"type": "LayerNormalization"}, {"type": "GlobalMaxPooling2D", "keepdims": True},
                          {"type": "Reshape", "target_shape": [3]}]),
    "global": ([6, 5, 2], [{"type": "GlobalAveragePooling2D"}, {"type": "Dense", "units": 2}]),
}

BRANCHES = {"inputs": [{"name": "x", "shape": [6]}],
            "layers": [{"name": "a", "type": "Dense", "units": 4, "inputs": ["x"]},
                       {"name": "b", "type": "Dense", "units": 4, "activation": "tanh", "inputs": ["x"]},
                       {"name": "add", "type": "Add", "inputs": ["a", "b"]},
                       {"name": "sub", "type": "Subtract", "inputs": ["a", "b"]},
                       {"name": "mul", "type": "Multiply", "inputs": ["add", "sub"]},
                       {"name": "avg", "type": "Average", "inputs": ["a", "b", "mul"]},
                       {"name": "mx", "type": "Maximum", "inputs": ["avg", "a"]},
                       {"name": "mn", "type": "Minimum", "inputs": ["mx", "b"]},
                       {"name": "cat", "type": "Concatenate", "inputs": ["mn", "x"]},
                       {"name": "out", "type": "Dense", "units": 2, "activation": "softmax", "inputs": ["cat"]}],
            "outputs": ["out"]}


def _session(model_section):
    spec = resolve_config(LoadedConfig(data={"name": "ox", "seed": 5, "data": {"dataset": "digits"},
                                             "compile": {"loss": "mse"}, "model": model_section}, source="test"))
    return spec, build_session(spec)


@pytest.mark.parametrize("case", sorted(CASES) + ["functional"])
def test_onnxruntime_predicts_what_kerascli_does(case):
    ort = pytest.importorskip("onnxruntime")
    from kerascli.graph.builder import build_model
    from kerascli.onnx_export import onnx_model

    if case == "functional":
        spec, session = _session(BRANCHES)
        shape = (6,)
    else:
        shape, layers = CASES[case]
        spec, session = _session({"input_shape": shape, "layers": layers})
    model = session.model
    rng = np.random.default_rng(1)
    weights = {k: np.abs(v + 0.3) if "moving_variance" in k else v + rng.normal(scale=0.2, size=v.shape).astype(v.dtype)
               for k, v in model.get_weights().items()}
    apply_weights(model, weights, "test")
    data = onnx_model(spec, build_model(spec.model, spec.source), weights)
    run = ort.InferenceSession(data)
    for batch in (1, 7):  # the batch axis is dynamic
        x = np.random.default_rng(batch).normal(size=(batch, *shape)).astype(np.float32)
        theirs = run.run(None, {run.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(theirs, session.trainer.predict(x, 16), rtol=1e-5, atol=1e-5)


def test_export_a_run_to_onnx(tmp_path):
    from conftest import CONFIGS

    assert invoke("train", f"{CONFIGS}/digits_cnn.yaml", "--runs-dir", tmp_path, "-q", "--set",
                  "train.epochs=1").exit_code == 0
    result = invoke("export", tmp_path / "digits-cnn", "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.output
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version >= 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_layers_without_onnx_export_are_refused_by_name(tmp_path):
    from kerascli.graph.builder import build_model
    from kerascli.onnx_export import onnx_model

    spec, session = _session({"input_shape": [5, 3], "layers": [{"type": "GRU", "units": 2}]})
    with pytest.raises(Exception, match=r"layer 'gru' \(GRU\) has no ONNX export yet"):
        onnx_model(spec, build_model(spec.model, spec.source), session.model.get_weights())


def test_without_onnx_one_line(tmp_path, monkeypatch):
    from conftest import CONFIGS

    assert invoke("train", f"{CONFIGS}/digits_mlp.yaml", "--runs-dir", tmp_path, "-q", "--set",
                  "train.epochs=1").exit_code == 0
    monkeypatch.setitem(sys.modules, "onnx", None)
    result = invoke("export", tmp_path / "digits-mlp", "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert result.exit_code == 2 and "ONNX export needs the onnx package: pip install 'kerascli[onnx]'" in result.output
    assert not (tmp_path / "m.onnx").exists()
