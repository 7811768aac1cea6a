"""kerascli plot-model: DOT, the SVG drawn here (every layer and connection, no overlaps, ranks in order),
PNG through Graphviz's dot; and summary of a run directory."""

import os
import stat
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner
from conftest import CONFIGS

from kerascli.cli import cli

BRANCHES = os.path.join(CONFIGS, "functional_branches.yaml")
SVG = "{http://www.w3.org/2000/svg}"


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def connections(config):
    from kerascli.commands import load_spec
    from kerascli.graph.builder import build_model

    spec = load_spec(config, [])
    model = build_model(spec.model, spec.source)
    return model, {(src, n.layer.name) for n in model.nodes for src in n.inputs}


def svg_of(tmp_path, *options, config=BRANCHES):
    out = tmp_path / "model.svg"
    result = invoke("plot-model", config, "-o", out, *options)
    assert result.exit_code == 0, result.output
    return ET.parse(out).getroot()


def boxes(root):
    out = {}
    for g in root.iter(f"{SVG}g"):
        rect = g.find(f"{SVG}rect")
        x, y, w, h = (float(rect.get(k)) for k in ("x", "y", "width", "height"))
        out[g.get("data-name")] = (x, y, w, h, [t.text for t in g.iter(f"{SVG}text")])
    return out


def edges(root):
    out = []
    for line in root.iter(f"{SVG}polyline"):
        points = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
        out.append((line.get("data-from"), line.get("data-to"), points))
    return out


@pytest.mark.parametrize("rankdir", ["TB", "LR"])
def test_the_svg_draws_every_layer_and_connection_without_overlaps(tmp_path, rankdir):
    model, links = connections(BRANCHES)
    root = svg_of(tmp_path, "--rankdir", rankdir)
    drawn = boxes(root)
    assert set(drawn) == set(model.input_shapes) | {n.layer.name for n in model.nodes}
    assert {(a, b) for a, b, _ in edges(root)} == links and len(edges(root)) == len(links)
    items = list(drawn.values())
    for i, (x, y, w, h, _) in enumerate(items):
        for x2, y2, w2, h2, _ in items[i + 1:]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y  # no two boxes overlap
    axis = 1 if rankdir == "TB" else 0
    for src, dst, points in edges(root):  # every connection runs down (or right), from a box into a box
        assert all(b[axis] > a[axis] for a, b in zip(points, points[1:])), (src, dst)
        x, y, w, h, _ = drawn[dst]
        end = points[-1]
        assert x - 0.1 <= end[0] <= x + w + 0.1 and y - 0.1 <= end[1] <= y + h + 0.1


def test_the_options_add_keras_lines(tmp_path):
    plain = boxes(svg_of(tmp_path))
    assert plain["wide"][4] == ["wide (Dense)"]
    full = boxes(svg_of(tmp_path, "--show-shapes", "--show-dtype", "--show-layer-activations", "--show-trainable"))
    assert full["wide"][4] == ["wide (Dense)", "activation: relu", "trainable: yes", "dtype: float32",
                               "input: (None, 64)", "output: (None, 64)"]
    assert "input: (None, 64), (None, 32)" in full["joined"][4]
    assert full["pixels"][4] == ["pixels (InputLayer)", "dtype: float32", "output: (None, 64)"]


def test_dot_text(tmp_path):
    _, links = connections(BRANCHES)
    out = tmp_path / "model.dot"
    result = invoke("plot-model", BRANCHES, "-o", out, "--rankdir", "LR", "--show-shapes")
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith('digraph "digits-branches" {') and "rankdir=LR;" in text
    for src, dst in links:
        assert f'"{src}" -> "{dst}";' in text
    assert '"joined" [label="joined (Concatenate)\\ninput: (None, 64), (None, 32)\\noutput: (None, 96)"];' in text


def test_png_without_graphviz_is_one_line(tmp_path):
    out = tmp_path / "model.png"
    result = invoke("plot-model", BRANCHES, "-o", out, env={"PATH": str(tmp_path)})
    assert result.exit_code == 2
    assert "a PNG needs Graphviz's dot program" in result.output
    assert not out.exists()


def test_png_through_graphviz(tmp_path):
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    # a stand-in for Graphviz: keeps its arguments and input, answers with a PNG signature
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\ncat > {tmp_path}/input\n"
                    "printf '\\211PNG\\r\\n\\032\\nrest'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "model.png"
    result = invoke("plot-model", BRANCHES, "-o", out, env={"PATH": f"{fake.parent}:{os.environ['PATH']}"})
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b"\x89PNG\r\n\x1a\nrest"
    assert (tmp_path / "args").read_text().strip() == "-Tpng"
    assert (tmp_path / "input").read_text().startswith('digraph "digits-branches"')


def test_a_sequential_model_is_one_column(tmp_path):
    drawn = boxes(svg_of(tmp_path, config=os.path.join(CONFIGS, "digits_mlp.yaml")))
    centres = {round(x + w / 2, 1) for x, y, w, h, _ in drawn.values()}
    assert len(centres) == 1 and len(drawn) == 5


def test_plot_and_summary_of_a_run_directory(tmp_path, small_config):
    assert invoke("train", small_config, "--runs-dir", tmp_path, "-q", "--set", "train.epochs=1").exit_code == 0
    run = tmp_path / "small"
    result = invoke("plot-model", run, "-o", tmp_path / "m.svg")
    assert result.exit_code == 0, result.output
    assert "dense_1" in boxes(ET.parse(tmp_path / "m.svg").getroot())
    summary = invoke("summary", run)
    assert summary.exit_code == 0 and "dense_1 (Dense)" in summary.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("summary", empty)
    assert result.exit_code == 2 and "is not a run directory (no config.yaml)" in result.output


def test_a_bad_output_name(tmp_path):
    result = invoke("plot-model", BRANCHES, "-o", tmp_path / "model.jpg")
    assert result.exit_code == 2 and "-o must end in .svg, .png or .dot" in result.output
