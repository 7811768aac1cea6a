"""Image folders (``dataset: images``), as Keras' ``image_dataset_from_directory`` reads them: one
sub-folder per class (class names and ids in sorted order), PNG/JPEG/BMP/GIF files, each decoded by
Pillow (the optional extra ``kerascli[images]``), converted to the colour mode and resized to
``image_size`` with the chosen interpolation. Pixels stay 0..255 (Keras gives them as floats of that
range: add ``rescale`` or a Rescaling layer). The class names are stored with the run, so ``predict``
names its classes.
"""

from __future__ import annotations

import os

import numpy as np

from kerascli.config.params import Param
from kerascli.errors import DataError

EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # Keras' ALLOWLIST_FORMATS
MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise DataError("dataset images needs Pillow to decode the files: pip install 'kerascli[images]'") from None
    return Image


def class_folders(path: str) -> list[str]:
    if not os.path.isdir(path):
        raise DataError(f"image folder not found: {path}")
    classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith("."))
    if not classes:
        raise DataError(f"{path}: no class folders (dataset images takes one sub-folder of images per class)")
    return classes


def image_files(folder: str) -> list[str]:
    """The image files under ``folder`` (its sub-folders too), in sorted order."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(EXTENSIONS)]
    return found


class ImageFolder:
    """One sub-folder of images per class."""

    PARAMS = {
        "path": Param("path", doc="a folder with one sub-folder of images per class"),
        "image_size": Param("int_list", [256, 256], doc="[height, width] every image is resized to"),
        "color_mode": Param("str", "rgb", choices=tuple(MODES)),
        "interpolation": Param("str", "bilinear", choices=INTERPOLATIONS),
    }

    @staticmethod
    def check(params: dict) -> str | None:
        size = params["image_size"]
        if not isinstance(size, list) or len(size) != 2 or min(size) < 1:
            return f"image_size: [height, width] of positive integers, got {size}"
        return None

    @staticmethod
    def load(params):
        image = _pillow()
        path = params["path"]
        classes = class_folders(path)
        height, width = params["image_size"]
        mode = MODES[params["color_mode"]]
        resample = getattr(image.Resampling, params["interpolation"].upper())
        files = [(k, f) for k, name in enumerate(classes) for f in image_files(os.path.join(path, name))]
        if not files:
            raise DataError(f"{path}: no images ({', '.join(EXTENSIONS)}) in its class folders "
                            f"({', '.join(classes)})")
        x = np.empty((len(files), height, width, len(mode)), np.uint8)
        for i, (_, file) in enumerate(files):
            try:
                with image.open(file) as img:
                    img = img.convert(mode)
                    if img.size != (width, height):
                        img = img.resize((width, height), resample)
                    x[i] = np.asarray(img, dtype=np.uint8).reshape(height, width, len(mode))
            except (OSError, ValueError, image.DecompressionBombError) as exc:
                raise DataError(f"{file}: not a readable image ({exc})") from None
        return x, np.array([k for k, _ in files], np.int64)

    @staticmethod
    def encoding(params):
        """The class names (sorted folder names), stored with the run."""
        from kerascli.data.table import Encoding

        return Encoding(features=[], categories={}, classes=class_folders(params["path"]))
