"""The datasets kerascli downloads (kerascli.data.datasets.KerasDataset): what they are, whether cached."""

from __future__ import annotations

from kerascli.data.datasets import KerasDataset
from kerascli.data.download import fetch
from kerascli.errors import ConfigError
from kerascli.registry import DATASETS


def downloadable() -> dict:
    """{name: dataset class} of the registered datasets fetched from the web."""
    found = {name: DATASETS.get(name) for name in DATASETS.names()}
    return {name: d for name, d in found.items() if isinstance(d, type) and issubclass(d, KerasDataset)}


def catalog() -> list[dict]:
    """One row per downloadable dataset: name, bytes, cached (yes / partly / no), its files' cache paths and
    URLs."""
    rows = []
    for name, dataset in downloadable().items():
        cached = sum(f.cached() for f in dataset.FILES)
        rows.append({"name": name, "bytes": sum(f.size for f in dataset.FILES),
                     "cached": "yes" if cached == len(dataset.FILES) else ("partly" if cached else "no"),
                     "files": [f.path for f in dataset.FILES], "urls": [f.url for f in dataset.FILES]})
    return rows


def download(names: list[str]):
    """(name, cached path) of each file of each named dataset, fetched where not validly cached; every name
    is checked before anything is fetched."""
    known = downloadable()
    for name in names:
        if name not in known:
            raise ConfigError(f"no downloadable dataset {name!r} (valid: {', '.join(known)})")
    for name in names:
        for file in known[name].FILES:
            yield name, fetch(file)
