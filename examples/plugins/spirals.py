"""A custom dataset: interleaved spirals, one per class, in 2-D. Used by custom_layers.yaml."""

import numpy as np

from kerascli.api import Dataset, Param, register_dataset


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
        n, k = params["samples"], params["classes"]
        y = rng.integers(0, k, n)
        r = rng.random(n)
        angle = 4 * r + 2 * np.pi * y / k + rng.normal(0, params["noise"], n)
        x = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
        return x.astype(np.float32), y.astype(np.int64)
