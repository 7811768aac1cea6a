"""Custom datasets: interleaved spirals, one per class, in 2-D. ``spirals`` gives arrays (used by
custom_layers.yaml); ``spiral_batches`` gives batches one at a time, with its own validation split, as a
dataset too large for memory or generated on the fly would (used by streamed.yaml)."""

import numpy as np

from kerascli.api import Dataset, Param, PyDataset, register_dataset


def spiral_points(rng, n: int, classes: int, noise: float):
    y = rng.integers(0, classes, n)
    r = rng.random(n)
    angle = 4 * r + 2 * np.pi * y / classes + rng.normal(0, noise, n)
    x = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
    return x.astype(np.float32), y.astype(np.int64)


@register_dataset("spirals")
class Spirals(Dataset):
    PARAMS = {
        "samples": Param("int", 600, min=3),
        "classes": Param("int", 3, min=2),
        "noise": Param("float", 0.1, min=0.0),
        "data_seed": Param("int", 0, min=0),
    }

    @staticmethod
    def load(params):
        rng = np.random.default_rng(params["data_seed"])
        return spiral_points(rng, params["samples"], params["classes"], params["noise"])


class SpiralSequence(PyDataset):
    """``batches`` batches of ``batch_size`` points; batch ``i`` is drawn from its own seed, so it is the
    same whenever it is asked for (in any order, after a resume)."""

    def __init__(self, params, stream: int, batches: int):
        self.params, self.stream, self.batches = params, stream, batches

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        p = self.params
        rng = np.random.default_rng([p["data_seed"], self.stream, index])
        return spiral_points(rng, p["batch_size"], p["classes"], p["noise"])


@register_dataset("spiral_batches")
class SpiralBatches(Dataset):
    PARAMS = {
        "batches": Param("int", 20, min=1, doc="training batches per epoch"),
        "val_batches": Param("int", 4, min=1),
        "batch_size": Param("int", 32, min=1),
        "classes": Param("int", 3, min=2),
        "noise": Param("float", 0.1, min=0.0),
        "data_seed": Param("int", 0, min=0),
    }
    SPLITS = ("train", "val")

    @staticmethod
    def load(params):
        return {"train": SpiralSequence(params, 0, params["batches"]),
                "val": SpiralSequence(params, 1, params["val_batches"])}
