"""dataset: images, one sub-folder of images per class (image_dataset_from_directory's layout): decoding,
colour modes and resizing as Pillow does them, class names stored with the run, and the errors."""

from __future__ import annotations

import builtins
import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from kerascli.cli import cli
from kerascli.errors import DataError

Image = pytest.importorskip("PIL.Image")

from kerascli.data.images import ImageFolder  # noqa: E402

PARAMS = {"image_size": [6, 5], "color_mode": "rgb", "interpolation": "bilinear"}


def make_folder(root, rng, per_class=12):
    """Classes 'blue' and 'red' (sorted: ids 0 and 1): noisy images of that colour in several sizes, formats
    and modes, some in a nested folder."""
    for name, channel in (("red", 0), ("blue", 2)):
        for i in range(per_class):
            folder = root / name / ("more" if i % 4 == 3 else "")
            folder.mkdir(parents=True, exist_ok=True)
            h, w = 6 + i % 3, 5 + i % 2
            pixels = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
            pixels[..., channel] = rng.integers(180, 255, (h, w))
            img = Image.fromarray(pixels, "RGB")
            kind = i % 3
            if kind == 0:
                img.save(folder / f"{i}.png")
            elif kind == 1:
                img.save(folder / f"{i}.bmp")
            else:
                img.convert("RGBA").save(folder / f"{i}.PNG")
    (root / "red" / "notes.txt").write_text("not an image")
    return root


def test_images_are_decoded_converted_and_resized_as_pillow_does(tmp_path, rng):
    root = make_folder(tmp_path / "pics", rng)
    x, y = ImageFolder.load({"path": str(root), **PARAMS})
    assert x.shape == (24, 6, 5, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, [0] * 12 + [1] * 12)  # blue, then red (sorted class names)
    first_red = sorted((root / "red").glob("*.png"))[0]
    with Image.open(first_red) as img:
        expected = np.asarray(img.convert("RGB").resize((5, 6), Image.Resampling.BILINEAR))
    names = [p for p in sorted((root / "red").iterdir()) if p.is_file() and p.suffix.lower() in (".png", ".bmp")]
    np.testing.assert_array_equal(x[12 + names.index(first_red)], expected)
    assert (x[:12, ..., 2].mean() > 150) and (x[12:, ..., 0].mean() > 150)
    grey, _ = ImageFolder.load({"path": str(root), **PARAMS, "color_mode": "grayscale", "interpolation": "nearest"})
    assert grey.shape == (24, 6, 5, 1)
    rgba, _ = ImageFolder.load({"path": str(root), **PARAMS, "color_mode": "rgba"})
    assert rgba.shape == (24, 6, 5, 4) and (rgba[..., 3] == 255).all()
    assert ImageFolder.encoding({"path": str(root)}).classes == ["blue", "red"]


def test_bad_folders_and_files_are_named(tmp_path, rng, monkeypatch):
    with pytest.raises(DataError, match="image folder not found"):
        ImageFolder.load({"path": str(tmp_path / "nowhere"), **PARAMS})
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match="no class folders"):
        ImageFolder.load({"path": str(tmp_path / "flat"), **PARAMS})
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no images \(.*\) in its class folders \(cats\)"):
        ImageFolder.load({"path": str(tmp_path / "empty"), **PARAMS})
    root = make_folder(tmp_path / "pics", rng, per_class=2)
    (root / "red" / "broken.jpg").write_bytes(b"\xff\xd8 this is no jpeg")
    with pytest.raises(DataError, match="broken.jpg: not a readable image"):
        ImageFolder.load({"path": str(root), **PARAMS})
    real_import = builtins.__import__

    def no_pillow(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pillow)
    with pytest.raises(DataError, match=r"pip install 'kerascli\[images\]'"):
        ImageFolder.load({"path": str(root), **PARAMS})


CONFIG = """
name: pics
seed: 4
data: {{dataset: images, path: {path}, image_size: [6, 5], validation_split: 0.25,
       augmentation: {{rescale: 0.00392156862745098}}}}
model:
  input_shape: [6, 5, 3]
  layers:
    - {{type: Flatten}}
    - {{type: Dense, units: 8, activation: relu}}
    - {{type: Dense, units: 2, activation: softmax}}
compile: {{optimizer: {{type: adam, learning_rate: 0.05}}, loss: sparse_categorical_crossentropy,
          metrics: [accuracy, classification_report]}}
train: {{epochs: 8, batch_size: 8, threads: 1}}
"""


def test_a_run_on_an_image_folder_names_its_classes_and_notices_changed_images(tmp_path, rng):
    root = make_folder(tmp_path / "pics", rng, per_class=16)
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(path=root))
    runner = CliRunner()
    result = runner.invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "pics"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["encoding"]["classes"] == ["blue", "red"]
    assert summary["evaluation"]["val"]["accuracy"] == 1.0
    assert str(root) in summary["data_files"]
    report = list(csv.reader((run / "reports" / "val_classification_report.csv").open()))
    assert [r[0] for r in report[1:3]] == ["blue", "red"] and report[1][2] == "1.0"
    matrix = list(csv.reader((run / "reports" / "val_confusion_matrix.csv").open()))
    assert matrix[0] == ["true \\ predicted", "blue", "red"] and matrix[1][0] == "blue"
    x, _ = ImageFolder.load({"path": str(root), **PARAMS})
    np.save(tmp_path / "in.npy", x[[0, 20]])
    out = tmp_path / "p.csv"
    result = runner.invoke(cli, ["predict", str(run), str(tmp_path / "in.npy"), "-o", str(out), "--classes"])
    assert result.exit_code == 0, result.output
    assert list(csv.reader(out.open())) == [["class", "class_name"], ["0", "blue"], ["1", "red"]]
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(root / "red" / "new.png")
    result = runner.invoke(cli, ["evaluate", str(run)])
    assert result.exit_code != 0 and "changed since the run trained on it" in result.output
