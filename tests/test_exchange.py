"""Keras exchange: kerascli export writes what keras.saving.load_model opens and predicts the same with (Keras
as the oracle, where installed), for every layer kerascli has; kerascli import brings a Keras model back with its
weights; a layer one side lacks is refused by name."""

import json
import os
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import CONFIGS, ROOT

from kerascli.cli import cli
from kerascli.config import resolve_config
from kerascli.config.loader import LoadedConfig
from kerascli.train.session import build_session

pytest.importorskip("h5py")
os.environ.setdefault("KERAS_BACKEND", "torch")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def keras_or_skip():
    return pytest.importorskip("keras")


CASES = {
    "dense": ([6], [{"type": "Dense", "units": 5, "activation": "tanh",
                     "kernel_regularizer": {"type": "l2", "l2": 0.01}, "kernel_constraint": "non_neg"},
                    {"type": "Dense", "units": 3, "use_bias": False, "kernel_initializer": "he_normal"}]),
    "conv": ([9, 8, 2], [{"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
                         {"type": "Conv2D", "filters": 3, "kernel_size": [2, 3], "strides": 2, "dilation_rate": 1},
                         {"type": "MaxPooling2D", "pool_size": 2, "padding": "same"},
                         {"type": "Conv2DTranspose", "filters": 2, "kernel_size": 3, "strides": 2},
                         {"type": "DepthwiseConv2D", "kernel_size": 3, "depth_multiplier": 2},
                         {"type": "SeparableConv2D", "filters": 3, "kernel_size": 2},
                         {"type": "GlobalAveragePooling2D"}]),
    "sequence": ([7, 3], [{"type": "Conv1D", "filters": 4, "kernel_size": 2, "padding": "causal"},
                          {"type": "AveragePooling1D", "pool_size": 2},
                          {"type": "ZeroPadding1D", "padding": 1}, {"type": "UpSampling1D", "size": 2},
                          {"type": "Cropping1D", "cropping": [1, 2]}, {"type": "LayerNormalization"},
                          {"type": "GlobalMaxPooling1D"}]),
    "normalization": ([8], [{"type": "Dense", "units": 6}, {"type": "BatchNormalization", "momentum": 0.9},
                            {"type": "GroupNormalization", "groups": 3}, {"type": "UnitNormalization"},
                            {"type": "PReLU"}, {"type": "LeakyReLU", "negative_slope": 0.2}, {"type": "ELU"},
                            {"type": "ReLU", "max_value": 6.0}, {"type": "Rescaling", "scale": 2.0, "offset": 1.0},
                            {"type": "Dropout", "rate": 0.3}, {"type": "Dense", "units": 4},
                            {"type": "Softmax"}]),
    "shapes": ([4, 6], [{"type": "Permute", "dims": [2, 1]}, {"type": "Reshape", "target_shape": [24]},
                        {"type": "RepeatVector", "n": 2}, {"type": "Flatten"},
                        {"type": "EinsumDense", "equation": "ab,bc->ac", "output_shape": 5, "bias_axes": "c"}]),
    "embedding": ([5], [{"type": "Embedding", "input_dim": 11, "output_dim": 4},
                        {"type": "GlobalAveragePooling1D"}, {"type": "Dense", "units": 2}]),
    "recurrent": ([6, 3], [{"type": "SimpleRNN", "units": 4, "return_sequences": True},
                           {"type": "LSTM", "units": 5, "return_sequences": True, "go_backwards": True},
                           {"type": "GRU", "units": 3, "reset_after": True, "return_sequences": True},
                           {"type": "GRU", "units": 2, "reset_after": False}]),
    "wrappers": ([6, 3], [{"type": "Bidirectional", "layer": {"type": "LSTM", "units": 4, "return_sequences": True}},
                          {"type": "Bidirectional", "merge_mode": "sum",
                           "layer": {"type": "GRU", "units": 3, "return_sequences": True, "go_backwards": True}},
                          {"type": "TimeDistributed", "layer": {"type": "Dense", "units": 2, "activation": "relu"}},
                          {"type": "Normalization"},
                          {"type": "Bidirectional", "merge_mode": "ave", "layer": {"type": "SimpleRNN", "units": 2}}]),
    "attention": ([5, 4], [{"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 3, "use_causal_mask": True},
                           {"type": "Normalization", "axis": None, "mean": 0.5, "variance": 2.0},
                           {"type": "MultiHeadAttention", "num_heads": 1, "key_dim": 2, "value_dim": 3,
                            "output_shape": 6, "use_bias": False},
                           {"type": "Flatten"}]),
    "images": ([8, 8, 2], [{"type": "ZeroPadding2D", "padding": 1}, {"type": "Cropping2D", "cropping": [[1, 0], [0, 1]]},
                           {"type": "UpSampling2D", "size": 2}, {"type": "AveragePooling2D", "pool_size": 2},
                           {"type": "SpatialDropout2D", "rate": 0.2}, {"type": "GaussianNoise", "stddev": 0.1},
                           {"type": "GaussianDropout", "rate": 0.1}, {"type": "AlphaDropout", "rate": 0.1},
                           {"type": "Identity"}, {"type": "GlobalMaxPooling2D"}, {"type": "Activation",
                                                                                  "activation": "selu"}]),
    "sequence_separable": ([8, 3], [{"type": "SeparableConv1D", "filters": 4, "kernel_size": 3, "depth_multiplier": 2},
                                    {"type": "MaxPooling1D", "pool_size": 2}, {"type": "SpatialDropout1D", "rate": 0.1},
                                    {"type": "Flatten"}]),
    "masking": ([6, 3], [{"type": "Masking", "mask_value": 0.0}, {"type": "LSTM", "units": 3}]),  # steps 0 and 3 zero
    # a functional model: its inputs by name, then layers naming theirs; the output is the last layer
    "merges": ([{"name": "left", "shape": [6]}, {"name": "right", "shape": [6]}],
               [{"type": "Dense", "units": 4, "name": "a", "inputs": ["left"]},
                {"type": "Dense", "units": 4, "name": "b", "inputs": ["right"]},
                *({"type": kind, "name": kind.lower(), "inputs": ["a", "b"]}
                  for kind in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")),
                {"type": "Dot", "axes": 1, "name": "dot", "inputs": ["a", "b"]},
                {"type": "Concatenate", "name": "joined",
                 "inputs": ["add", "subtract", "multiply", "average", "maximum", "minimum", "dot"]},
                {"type": "Dense", "units": 2, "name": "out", "inputs": ["joined"]}]),
    # return_state and initial_state: Keras' tensor indices (enc[1], enc[2]) and its initial_state argument
    "recurrent_states": ([{"name": "x", "shape": [5, 3]}], [
        {"name": "enc", "type": "LSTM", "units": 4, "return_state": True, "inputs": ["x"]},
        {"name": "dec", "type": "LSTM", "units": 4, "return_sequences": True, "inputs": ["x", "enc[1]", "enc[2]"]},
        {"name": "back", "type": "GRU", "units": 4, "go_backwards": True, "return_state": True,
         "inputs": ["dec", "enc[1]"]},
        {"name": "rnn", "type": "SimpleRNN", "units": 4, "inputs": ["x", "back[1]"]},
        {"name": "joined", "type": "Concatenate", "inputs": ["enc", "rnn", "enc[2]"]},
        {"name": "out", "type": "Dense", "units": 3, "inputs": ["joined"]}]),
    # Bidirectional's states: the forward half's, then the backward half's (enc[1..4] of an LSTM)
    "bidirectional_states": ([{"name": "x", "shape": [5, 3]}], [
        {"name": "enc", "type": "Bidirectional", "layer": {"type": "LSTM", "units": 3, "return_state": True},
         "inputs": ["x"]},
        {"name": "dec", "type": "Bidirectional", "merge_mode": "sum",
         "layer": {"type": "GRU", "units": 3, "return_sequences": True}, "inputs": ["x", "enc[1]", "enc[3]"]},
        {"name": "flat", "type": "Flatten", "inputs": ["dec"]},
        {"name": "joined", "type": "Concatenate", "inputs": ["flat", "enc[2]", "enc[4]", "enc"]},
        {"name": "out", "type": "Dense", "units": 2, "inputs": ["joined"]}]),
    "dot_attention": ([{"name": "query", "shape": [5, 4]}, {"name": "memory", "shape": [6, 4]}],
                      [{"type": "Attention", "use_scale": True, "score_mode": "concat", "name": "luong",
                        "inputs": ["query", "memory"]},
                       {"type": "AdditiveAttention", "name": "bahdanau", "inputs": ["query", "memory", "memory"]},
                       {"type": "Attention", "use_causal_mask": True, "name": "causal", "inputs": ["query", "query"]},
                       {"type": "Concatenate", "name": "joined", "inputs": ["luong", "bahdanau", "causal"]},
                       {"type": "Flatten", "name": "flat", "inputs": ["joined"]}]),
}


def session_for(inputs, layers, seed=3):
    model = {"input_shape": inputs, "layers": layers} if not isinstance(inputs[0], dict) else \
        {"inputs": inputs, "layers": layers, "outputs": [layers[-1]["name"]]}
    spec = resolve_config(LoadedConfig(data={
        "name": "ex", "seed": seed, "data": {"dataset": "digits"}, "compile": {"loss": "mse"}, "model": model},
        source="test"))
    return spec, build_session(spec)


def test_every_layer_both_have_is_checked_against_keras():
    from kerascli.exchange import EXCHANGED

    tested = {layer["type"] for _, layers in CASES.values() for layer in layers}
    assert EXCHANGED - tested == set(), "add these layers to CASES"


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_opens_the_archive_and_predicts_the_same(case, tmp_path):
    keras = keras_or_skip()
    from kerascli import exchange
    from kerascli.graph.builder import build_model

    input_shape, layers = CASES[case]
    spec, session = session_for(input_shape, layers)
    model = session.model
    rng = np.random.default_rng(1)  # weights away from their initial values (BatchNormalization's statistics too)
    weights = {k: (v + rng.normal(scale=0.1, size=v.shape)).astype(np.float32) if not k.endswith("variance")
               else np.abs(v + rng.normal(scale=0.1, size=v.shape)).astype(np.float32)
               for k, v in model.get_weights().items()}
    from kerascli.runs.checkpoint import apply_weights

    apply_weights(model, weights, "test")
    path = tmp_path / "m.keras"
    path.write_bytes(exchange.keras_archive(spec, build_model(spec.model, spec.source), weights))
    loaded = keras.saving.load_model(path)
    rng = np.random.default_rng(2)
    if case == "embedding":
        x = rng.integers(0, 11, (4,) + tuple(input_shape)).astype(np.float32)
    elif isinstance(input_shape[0], dict):
        x = {i["name"]: rng.normal(size=(4, *i["shape"])).astype(np.float32) for i in input_shape}
    else:
        x = rng.normal(size=(4,) + tuple(input_shape)).astype(np.float32)
        if case == "masking":  # padded steps, which Keras' Masking and kerascli's mask alike
            x[:, ::3] = 0
    ours = session.trainer.predict(x, 16)
    theirs = np.asarray(loaded.predict(x, verbose=0))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    json_text = json.dumps(exchange.keras_config(spec, build_model(spec.model, spec.source)))
    # Keras calls attention layers with query and value: such a model is functional there
    functional = case in ("attention", "merges", "dot_attention", "recurrent_states", "bidirectional_states")
    assert type(keras.models.model_from_json(json_text)).__name__ == ("Functional" if functional else "Sequential")
    # and back from the file Keras itself writes: the imported config and weights predict what Keras does
    loaded.save(tmp_path / "resaved.keras")
    result = invoke("import", tmp_path / "resaved.keras", "-o", tmp_path / "back.yaml", "--set",
                    "data.dataset=digits", "--set", "compile.loss=mse")
    assert result.exit_code == 0, result.output
    import yaml

    from kerascli.runs.checkpoint import load_checkpoint

    back = resolve_config(LoadedConfig(data=yaml.safe_load((tmp_path / "back.yaml").read_text()), source="back"))
    imported = build_session(back)
    if imported.model.get_weights():
        apply_weights(imported.model, load_checkpoint(str(tmp_path / "back.weights.npz")).weights(), "back")
    else:  # a model without weights gets no weights file
        assert not (tmp_path / "back.weights.npz").exists()
        assert "weights" not in yaml.safe_load((tmp_path / "back.yaml").read_text())["model"]
    np.testing.assert_allclose(imported.trainer.predict(x, 16), theirs, rtol=1e-5, atol=1e-5)


def test_a_trained_functional_run_exports_and_imports(tmp_path):
    keras = keras_or_skip()
    config = os.path.join(CONFIGS, "functional_branches.yaml")
    assert invoke("train", config, "--runs-dir", tmp_path, "-q", "--set", "train.epochs=2").exit_code == 0
    run = tmp_path / "digits-branches"
    result = invoke("export", run, "-o", tmp_path / "m.keras")
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        assert sorted(z.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).random((6, 64)).astype(np.float32) * 16
    np.save(tmp_path / "x.npy", x)
    assert invoke("predict", run, tmp_path / "x.npy", "-o", tmp_path / "p.npy").exit_code == 0
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), np.asarray(loaded.predict(x, verbose=0)), rtol=1e-5,
                               atol=1e-6)
    as_json = invoke("export", run, "--format", "keras-json", "-o", tmp_path / "m.json")
    assert as_json.exit_code == 0
    assert json.loads((tmp_path / "m.json").read_text())["class_name"] == "Functional"
    # and back: the config and weights give the same predictions
    back = invoke("import", tmp_path / "m.keras", "-o", tmp_path / "back.yaml", "--set", "data.dataset=digits",
                  "--set", "compile.loss=sparse_categorical_crossentropy")
    assert back.exit_code == 0, back.output
    assert (tmp_path / "back.weights.npz").exists()
    trained = invoke("train", tmp_path / "back.yaml", "--runs-dir", tmp_path / "again", "-q", "--set",
                     "train.epochs=1", "--set", "compile.optimizer={type: sgd, learning_rate: 1.0e-12}")
    assert trained.exit_code == 0, trained.output
    (again,) = os.listdir(tmp_path / "again")
    assert invoke("predict", tmp_path / "again" / again, tmp_path / "x.npy", "-o", tmp_path / "q.npy",
                  "--checkpoint", "last").exit_code == 0
    np.testing.assert_allclose(np.load(tmp_path / "q.npy"), np.load(tmp_path / "p.npy"), rtol=1e-3, atol=1e-5)


def test_import_a_keras_sequential_model(tmp_path):
    keras = keras_or_skip()
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu", name="hidden"),
                              keras.layers.BatchNormalization(), keras.layers.Dense(2, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    model.save(tmp_path / "k.keras")
    result = invoke("import", tmp_path / "k.keras", "-o", tmp_path / "k.yaml")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "k.yaml").read_text()
    assert text.startswith("# imported from k.keras; add data: and compile: sections")
    from kerascli.runs.checkpoint import load_checkpoint

    arrays = load_checkpoint(str(tmp_path / "k.weights.npz")).weights()
    ref = {f"{layer.name}/{w.name}": np.asarray(w.numpy()) for layer in model.layers for w in layer.weights}
    assert sorted(arrays) == sorted(ref)
    for key in ref:
        np.testing.assert_array_equal(arrays[key], ref[key])
    import yaml

    config = yaml.safe_load(text)
    config.update(data={"dataset": "digits"}, compile={"loss": "mse"})
    spec = resolve_config(LoadedConfig(data=config, source="k.yaml"))
    session = build_session(spec)
    np.testing.assert_allclose(session.trainer.predict(x, 8), np.asarray(model.predict(x, verbose=0)), rtol=1e-5,
                               atol=1e-6)


def test_a_layer_keras_lacks_is_refused_by_name(tmp_path, write_config):
    """Out: a plugin's layer (Keras would not know it); in: a Keras layer kerascli lacks. Nothing written."""
    config = write_config(f"""
        name: plugin
        plugins: [{os.path.join(ROOT, "examples", "plugins", "layers.py")}]
        data: {{dataset: synthetic_regression, samples: 10, features: 4, outputs: 2}}
        model:
          input_shape: [4]
          layers:
            - {{type: ScaledDense, units: 2, scale: 1.5}}
        compile: {{loss: mse}}
        train: {{epochs: 1}}
    """)
    assert invoke("train", config, "--runs-dir", tmp_path, "-q").exit_code == 0
    result = invoke("export", tmp_path / "plugin", "-o", tmp_path / "m.keras")
    assert result.exit_code == 2
    assert "layer 'scaled_dense' (ScaledDense) cannot be exported to Keras" in result.output
    assert not (tmp_path / "m.keras").exists()
    keras = keras_or_skip()
    keras.Sequential([keras.Input((4, 4, 4, 1)), keras.layers.Conv3D(2, 3)]).save(tmp_path / "k.keras")
    result = invoke("import", tmp_path / "k.keras", "-o", tmp_path / "k.yaml")
    assert result.exit_code == 2 and "layer 'conv3d' (Conv3D) has no kerascli counterpart" in result.output
    assert not (tmp_path / "k.yaml").exists()


def test_import_keras_wrappers_attention_and_normalization(tmp_path):
    """A functional Keras model with every nested-weight layer: imported, it predicts as Keras does."""
    keras = keras_or_skip()
    layers = keras.layers
    rng = np.random.default_rng(0)
    query, memory = keras.Input((5, 4), name="query"), keras.Input((7, 4), name="memory")
    normalization = layers.Normalization()
    normalization.adapt(rng.normal(2.0, 3.0, (20, 5, 4)).astype(np.float32))
    q = normalization(query)
    q = layers.Bidirectional(layers.LSTM(3, return_sequences=True), merge_mode="concat")(q)
    q = layers.TimeDistributed(layers.Dense(4, activation="tanh"))(q)
    m = layers.Bidirectional(layers.GRU(2, return_sequences=True, go_backwards=True), merge_mode="sum",
                             backward_layer=layers.GRU(2, return_sequences=True))(memory)
    m = layers.Dense(4)(m)
    outs = [layers.MultiHeadAttention(num_heads=2, key_dim=3)(q, m, key=memory),
            layers.MultiHeadAttention(num_heads=1, key_dim=2, value_dim=5, output_shape=4)(q, q, use_causal_mask=True),
            layers.Attention(use_scale=True, score_mode="concat")([q, m]),
            layers.AdditiveAttention()([q, m, memory]),
            layers.Attention()([q, q], use_causal_mask=True)]
    model = keras.Model([query, memory], layers.Dense(2)(layers.Flatten()(layers.Concatenate()(outs))))
    for weight in model.weights:  # away from the initial values (Attention's scales start at 1)
        weight.assign(np.asarray(weight.numpy()) + rng.normal(scale=0.3, size=weight.shape).astype(weight.dtype)
                      if "float" in str(weight.dtype) else weight.numpy())
    model.save(tmp_path / "k.keras")
    result = invoke("import", tmp_path / "k.keras", "-o", tmp_path / "k.yaml", "--set", "data.dataset=digits",
                    "--set", "compile.loss=mse")
    assert result.exit_code == 0, result.output
    import yaml

    spec = resolve_config(LoadedConfig(data=yaml.safe_load((tmp_path / "k.yaml").read_text()), source="k.yaml"))
    session = build_session(spec)
    from kerascli.runs.checkpoint import apply_weights, load_checkpoint

    apply_weights(session.model, load_checkpoint(str(tmp_path / "k.weights.npz")).weights(), "k")
    x = {"query": rng.normal(size=(3, 5, 4)).astype(np.float32), "memory": rng.normal(size=(3, 7, 4)).astype(np.float32)}
    np.testing.assert_allclose(session.trainer.predict(x, 8), np.asarray(model.predict(x, verbose=0)), rtol=1e-5,
                               atol=1e-5)


def test_import_refuses_what_kerascli_cannot_take(tmp_path):
    keras = keras_or_skip()
    layers = keras.layers
    x = keras.Input((5, 4))
    mismatched = layers.Bidirectional(layers.LSTM(3), backward_layer=layers.LSTM(2, go_backwards=True))(x)
    keras.Model(x, mismatched).save(tmp_path / "b.keras")
    result = invoke("import", tmp_path / "b.keras", "-o", tmp_path / "b.yaml")
    assert result.exit_code == 2 and "a backward_layer other than the forward layer reading the other way" in \
        result.output
    mask = keras.Input((5, 5))
    masked = layers.MultiHeadAttention(num_heads=1, key_dim=2)(x, x, attention_mask=mask)
    keras.Model([x, mask], masked).save(tmp_path / "m.keras")
    result = invoke("import", tmp_path / "m.keras", "-o", tmp_path / "m.yaml")
    assert result.exit_code == 2 and "is called with attention_mask=" in result.output
    keras.Sequential([keras.Input((2, 6, 6)), layers.Conv2D(2, 3, data_format="channels_first")]).save(
        tmp_path / "c.keras")
    result = invoke("import", tmp_path / "c.keras", "-o", tmp_path / "c.yaml")
    assert result.exit_code == 2 and "(Conv2D) reads channels first" in result.output


def test_export_names_its_formats(tmp_path):
    result = invoke("export", tmp_path, "-o", tmp_path / "m.h5")
    assert result.exit_code == 2 and "-o must end in .keras" in result.output


def test_import_a_keras_recurrent_model(tmp_path):
    keras = keras_or_skip()
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.GRU(4, return_sequences=True),
                              keras.layers.LSTM(3), keras.layers.Dense(2)])
    model.save(tmp_path / "r.keras")
    result = invoke("import", tmp_path / "r.keras", "-o", tmp_path / "r.yaml", "--set", "data.dataset=digits",
                    "--set", "compile.loss=mse")
    assert result.exit_code == 0, result.output
    import yaml

    spec = resolve_config(LoadedConfig(data=yaml.safe_load((tmp_path / "r.yaml").read_text()), source="r.yaml"))
    x = np.random.default_rng(0).normal(size=(4, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(build_session(spec).trainer.predict(x, 8), np.asarray(model.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)


def test_a_state_as_a_model_output_goes_to_keras_and_back(tmp_path):
    """A model whose outputs include an LSTM's state c (enc[2]): Keras' output_layers name it [enc, 0, 2]."""
    keras = keras_or_skip()
    from kerascli import exchange
    from kerascli.graph.builder import build_model

    spec = resolve_config(LoadedConfig(data={
        "name": "st", "seed": 2, "data": {"dataset": "digits"}, "compile": {"loss": "mse"},
        "model": {"inputs": [{"name": "x", "shape": [4, 3]}],
                  "layers": [{"name": "enc", "type": "LSTM", "units": 3, "return_state": True, "inputs": ["x"]},
                             {"name": "out", "type": "Dense", "units": 2, "inputs": ["enc[1]"]}],
                  "outputs": ["out", "enc[2]"]}}, source="test"))
    session = build_session(spec)
    config = exchange.keras_config(spec, build_model(spec.model, spec.source))
    assert config["config"]["output_layers"] == [["out", 0, 0], ["enc", 0, 2]]
    path = tmp_path / "st.keras"
    path.write_bytes(exchange.keras_archive(spec, build_model(spec.model, spec.source), session.model.get_weights()))
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).normal(size=(3, 4, 3)).astype(np.float32)
    ours = session.trainer.predict(x, 8)
    theirs = loaded.predict(x, verbose=0)
    np.testing.assert_allclose(ours["out"], np.asarray(theirs[0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours["enc[2]"], np.asarray(theirs[1]), rtol=1e-5, atol=1e-6)
    back = exchange.kerascli_config(json.loads(loaded.to_json()), "st.keras")
    assert back["model"]["outputs"] == ["out", "enc[2]"]
    assert back["model"]["layers"][1]["inputs"] == ["enc[1]"]
