"""Named registries: the single place where a YAML name becomes a class or value.

Lookups are case-insensitive and ignore underscores, so ``Adam``, ``adam``,
``max_pooling2d`` and ``MaxPooling2D`` all resolve; the canonical spelling is
what the resolved config records. An unknown name gets a did-you-mean.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Iterator


def _fold(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


class UnknownName(LookupError):
    def __init__(self, kind: str, name: str, valid: list[str]):
        self.kind, self.name, self.valid = kind, name, valid
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
        if not close:
            folded = {_fold(v): v for v in valid}
            close = [folded[m] for m in difflib.get_close_matches(_fold(name), list(folded), n=1, cutoff=0.5)]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint} (valid: {', '.join(valid)})")


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Any] = {}  # canonical name -> item
        self._lookup: dict[str, str] = {}  # folded name or alias -> canonical name

    def register(self, name: str, *aliases: str) -> Callable[[Any], Any]:
        def decorator(item: Any) -> Any:
            self.add(name, item, *aliases)
            return item

        return decorator

    def add(self, name: str, item: Any, *aliases: str) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._items[name] = item
        for key in (name, *aliases):
            self._lookup[_fold(key)] = name

    def canonical(self, name: str) -> str:
        if not isinstance(name, str) or _fold(name) not in self._lookup:
            raise UnknownName(self.kind, str(name), self.names())
        return self._lookup[_fold(name)]

    def get(self, name: str) -> Any:
        return self._items[self.canonical(name)]

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self._items.items())

    def __contains__(self, name: str) -> bool:
        return isinstance(name, str) and _fold(name) in self._lookup


LAYERS = Registry("layer type")
ACTIVATIONS = Registry("activation")
LOSSES = Registry("loss")
METRICS = Registry("metric")
OPTIMIZERS = Registry("optimizer")
INITIALIZERS = Registry("initializer")
DATASETS = Registry("dataset")


def load_builtins() -> None:
    """Import the modules whose definitions fill the registries (idempotent)."""
    import kerascli.activations  # noqa: F401
    import kerascli.data.datasets  # noqa: F401
    import kerascli.initializers  # noqa: F401
    import kerascli.layers  # noqa: F401
    import kerascli.losses  # noqa: F401
    import kerascli.metrics  # noqa: F401
    import kerascli.optimizers  # noqa: F401
