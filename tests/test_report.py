"""What a run leaves to look at: curves.png and confusion_matrix.png (matplotlib), report.html (self-contained,
checked in headless Chromium where installed), and kerascli plot over several runs."""

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from conftest import SMALL_MLP

from kerascli.cli import cli

PNG = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"
REGRESSION = """
name: reg
seed: 1
data: {dataset: synthetic_regression, samples: 120, features: 4, validation_split: 0.2}
model:
  input_shape: [4]
  layers:
    - {type: Dense, units: 8, activation: relu}
    - {type: Dense, units: 1}
compile: {optimizer: adam, loss: mse, metrics: [mae]}
train: {epochs: 3, batch_size: 16}
"""


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    config = folder / "small.yaml"
    config.write_text(SMALL_MLP.replace("test_split: 0.2}", "test_split: 0.2}").replace("epochs: 2", "epochs: 4"))
    result = invoke("train", config, "--runs-dir", folder, "-q")
    assert result.exit_code == 0, result.output
    return folder / "small"


def test_a_classifier_run_leaves_curves_confusion_matrix_and_report(classifier_run):
    pytest.importorskip("matplotlib")
    sizes = {}
    for name in ("curves.png", "confusion_matrix.png"):
        data = (classifier_run / name).read_bytes()
        assert data.startswith(PNG) and data[12:16] == b"IHDR"
        sizes[name] = (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
    # loss, accuracy and the learning rate side by side (4.6 x 3.4 inches each at 100 dpi); 3 classes
    assert sizes == {"curves.png": (1380, 340), "confusion_matrix.png": (385, 385)}
    assert (classifier_run / "report.html").exists()
    # summary.json is still the last word (a run without it did not finish)
    last = max((n for n in os.listdir(classifier_run) if not n.startswith(".")),
               key=lambda n: os.path.getmtime(classifier_run / n))
    assert last in ("summary.json", "checkpoints")


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.refs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


def test_the_report_is_one_self_contained_page(classifier_run):
    html = (classifier_run / "report.html").read_text()
    parser = _Parser()
    parser.feed(html)
    assert "script" not in parser.tags and "link" not in parser.tags and not parser.refs  # nothing fetched
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)
    summary = json.loads((classifier_run / "summary.json").read_text())
    for split, values in summary["evaluation"].items():
        if isinstance(values, dict):
            assert f"<td>{split}</td><td>{values['loss']:.4f}</td>" in html
    svgs = re.findall(r"<svg .*?</svg>", html, re.S)
    charts = [ET.fromstring(s) for s in svgs]
    titles = [c.find(f"{SVG}text").text for c in charts]
    assert titles == ["loss", "accuracy", "learning rate", "confusion matrix"]
    loss = charts[0]
    assert sorted(p.get("data-label") for p in loss.iter(f"{SVG}polyline")) == ["train loss", "val loss"]
    assert len(next(loss.iter(f"{SVG}polyline")).get("points").split()) == 4  # one point per epoch
    cells = [r for r in charts[3].iter(f"{SVG}rect") if r.get("class") == "cell"]
    assert len(cells) == 9  # 3 classes
    assert "<td>macro avg</td>" in html and "model_summary" not in html and "dense_1 (Dense)" in html
    assert "name: small" in html  # the config


def test_the_report_renders_in_a_headless_browser(classifier_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium installed")

    def render(page):
        shot = tmp_path / (page.stem + ".png")
        done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                               "--v=0", "--host-resolver-rules=MAP * ~NOTFOUND", f"--screenshot={shot}",
                               "--window-size=1100,1800", page.as_uri()], capture_output=True, text=True, timeout=120)
        return shot, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]

    broken = tmp_path / "broken.html"  # the check itself sees a console error
    broken.write_text("<html><body><script>console.error('deliberate')</script></body></html>")
    assert any("deliberate" in line for line in render(broken)[1])
    shot, console = render(classifier_run / "report.html")
    assert console == []
    assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 20_000  # something was drawn


def test_a_regression_run_has_curves_and_no_confusion_matrix(write_config, tmp_path):
    result = invoke("train", write_config(REGRESSION), "--runs-dir", tmp_path, "-q")
    assert result.exit_code == 0, result.output
    run = tmp_path / "reg"
    assert not (run / "confusion_matrix.png").exists()
    html = (run / "report.html").read_text()
    assert "Confusion matrix" not in html and ">mean_absolute_error</text>" in html


def test_without_matplotlib_one_note_and_the_report(small_config, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = invoke("train", small_config, "--runs-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.count("need matplotlib: pip install 'kerascli[plots]'") == 1
    run = tmp_path / "small"
    assert not (run / "curves.png").exists() and (run / "report.html").exists()
    png = invoke("plot", run, "-o", tmp_path / "c.png")
    assert png.exit_code == 2 and "a PNG needs matplotlib" in png.output


def test_plot_overlays_runs(classifier_run, small_config, tmp_path):
    other = invoke("train", small_config, "--runs-dir", tmp_path, "-q", "--set", "compile.optimizer=sgd")
    assert other.exit_code == 0, other.output
    out = tmp_path / "both.svg"
    result = invoke("plot", classifier_run, tmp_path / "small", "-o", out)
    assert result.exit_code == 0, result.output
    root = ET.parse(out).getroot()
    panels = root.findall(f"{SVG}svg")
    assert [p.find(f"{SVG}text").text for p in panels] == ["loss", "accuracy", "learning rate"]
    labels = [p.get("data-label") for p in panels[0].iter(f"{SVG}polyline")]
    assert labels == ["train small", "val small", f"train {tmp_path / 'small'}", f"val {tmp_path / 'small'}"]
    chosen = invoke("plot", classifier_run, "-o", tmp_path / "one.svg", "--metrics", "accuracy")
    assert chosen.exit_code == 0
    assert [p.find(f"{SVG}text").text for p in ET.parse(tmp_path / "one.svg").getroot().findall(f"{SVG}svg")] == \
        ["accuracy"]
    bad = invoke("plot", classifier_run, "-o", tmp_path / "x.svg", "--metrics", "recall")
    assert bad.exit_code == 2 and "no 'recall' in these runs" in bad.output
    assert invoke("plot", tmp_path, "-o", tmp_path / "y.svg").exit_code == 2  # not a run directory
    if pytest.importorskip("matplotlib"):
        assert invoke("plot", classifier_run, tmp_path / "small", "-o", tmp_path / "both.png").exit_code == 0
        assert (tmp_path / "both.png").read_bytes().startswith(PNG)
