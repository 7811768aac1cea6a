"""The flat gradient's buckets (kerascli.train.buckets): where they are cut, that each is final when it is
sent, and the settings. The sums themselves run under MPI in test_distributed.py."""

import os

import numpy as np
import pytest

from kerascli.config.loader import load_config_file
from kerascli.config.schema import resolve_config
from kerascli.train import buckets
from kerascli.train.buckets import bucket_plan
from kerascli.train.session import build_session

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


def model_of(name: str):
    spec = resolve_config(load_config_file(os.path.join(CONFIGS, name)))
    return build_session(spec).model


def batch(model, rows: int, rng):
    """Random inputs of every model input (integers below 10 where the model takes token ids)."""
    x = {}
    for name, shape in model.input_shapes.items():
        x[name] = rng.integers(0, 10, (rows, *shape)).astype(model.dtype) if "token" in name or \
            model.nodes[0].layer.type_name == "Embedding" else rng.standard_normal((rows, *shape)).astype(model.dtype)
    return x if len(x) > 1 else next(iter(x.values()))


# a plain stack, a functional model whose branches meet twice (a layer's gradient comes from two places),
# a CNN whose first convolution absorbs its pooling (fusion), attention and recurrent layers
@pytest.mark.parametrize("config", ["digits_mlp.yaml", "functional_branches.yaml", "digits_cnn.yaml",
                                    "transformer_block.yaml", "sequence_gru.yaml"])
@pytest.mark.parametrize("cap", [1, 4096, 2**40])
def test_each_bucket_is_final_when_it_is_sent(config, cap):
    model = model_of(config)
    plan = bucket_plan(model, cap)
    # the buckets tile the buffer from its end, each at least the cap but the last, sent in backward order
    assert plan[0][2] == model.grad_buffer.size and plan[-1][1] == 0
    for (node, lo, hi), (next_node, next_lo, next_hi) in zip(plan, plan[1:]):
        assert next_hi == lo and next_node < node and (hi - lo) * model.grad_buffer.itemsize >= cap
    if cap == 2**40:
        assert len(plan) == 1
    if cap == 1:  # a bucket per layer with trainable weights
        assert len(plan) == sum(1 for layer in model.layers if any(s.trainable for s in layer.weight_specs))
    rng = np.random.default_rng(0)
    x = batch(model, 3, rng)
    out = model.forward(x, training=True)
    model.grad_buffer[...] = np.nan  # a part sent before its backward wrote it would hold NaN
    at = {node: (lo, hi) for node, lo, hi in plan}
    sent = {}

    def after_node(i):
        if i in at:
            lo, hi = at[i]
            sent[lo] = model.grad_buffer[lo:hi].copy()

    model.backward(rng.standard_normal(out.shape).astype(out.dtype), after_node=after_node)
    assert np.isfinite(model.grad_buffer).all()
    assert sorted(sent) == sorted(lo for _, lo, _ in plan)
    for lo, values in sent.items():
        np.testing.assert_array_equal(values, model.grad_buffer[lo : lo + len(values)])


def test_a_layer_absorbed_by_another_is_final_with_its_absorber():
    model = model_of("functional_branches.yaml")
    narrow_up = next(n.layer for n in model.nodes if n.layer.name == "narrow_up")
    wide = next(n.layer for n in model.nodes if n.layer.name == "wide")
    narrow_up.absorbed_by = wide  # as if wide's backward ran narrow_up's too
    plan = bucket_plan(model, 1)
    start = model.slices["narrow_up/kernel"].start
    node = next(node for node, lo, hi in plan if lo <= start < hi)
    assert node <= [n.layer.name for n in model.nodes].index("wide")


@pytest.mark.parametrize("env, expected", [
    ({}, ("auto", 0.25 * 2**20, None)),
    ({"KERASCLI_MPI_OVERLAP": "on", "KERASCLI_MPI_BUCKET_MB": "4"}, ("on", 4 * 2**20, None)),
    ({"KERASCLI_MPI_OVERLAP": "off"}, ("off", 0.25 * 2**20, None)),
])
def test_settings(env, expected):
    assert buckets.parse_settings(env) == expected


@pytest.mark.parametrize("env, says", [
    ({"KERASCLI_MPI_OVERLAP": "yes"}, "KERASCLI_MPI_OVERLAP must be auto, on or off, got 'yes'"),
    ({"KERASCLI_MPI_BUCKET_MB": "0"}, "KERASCLI_MPI_BUCKET_MB must be a positive number of MiB, got '0'"),
    ({"KERASCLI_MPI_BUCKET_MB": "nan"}, "KERASCLI_MPI_BUCKET_MB must be a positive number of MiB, got 'nan'"),
    ({"KERASCLI_MPI_BUCKET_MB": "big"}, "KERASCLI_MPI_BUCKET_MB must be a positive number of MiB, got 'big'"),
])
def test_bad_settings_are_named(env, says):
    assert buckets.parse_settings(env)[2] == says


class OneRank:
    """Enough of a World for OverlappedSums' choice (no MPI: one rank, whose sums are its own values)."""

    deterministic, size, buckets_comm, MPI = False, 1, None, None

    class comm:
        @staticmethod
        def Get_size():
            return 1

    def sum(self, buf):
        pass


@pytest.mark.parametrize("overlapped_ms, chosen", [(9.5, True), (9.9, False), (10.5, False)])
def test_auto_times_both_ways_then_keeps_the_faster_by_two_percent(overlapped_ms, chosen):
    sums = buckets.OverlappedSums(OneRank(), model_of("functional_branches.yaml"), "auto", 1)
    seen = []
    for _ in range(buckets.WARMUP + 2 * buckets.TRIALS + 3):
        seen.append(sums.active)
        sums.record(1e-3 * (overlapped_ms if sums.active else 10.0))
    # after the warm-up steps (sums after the backward pass), the two ways alternate until each ran TRIALS steps
    trials = buckets.WARMUP + 2 * buckets.TRIALS
    assert seen[:buckets.WARMUP] == [False] * buckets.WARMUP
    assert seen[buckets.WARMUP:trials] == [True, False] * buckets.TRIALS
    assert seen[trials:] == [chosen] * 3
    assert sums.describe()["overlapped"] is chosen
    assert sums.describe()["ms_per_step"] == pytest.approx({"overlapped": overlapped_ms, "after_backward": 10.0})


def test_a_model_of_one_bucket_is_not_timed():
    sums = buckets.OverlappedSums(OneRank(), model_of("functional_branches.yaml"), "auto", 2**40)
    assert len(sums.plan) == 1 and sums.active is False and sums.describe()["overlapped"] is False
    for _ in range(40):
        sums.record(0.01)
    assert "ms_per_step" not in sums.describe()
