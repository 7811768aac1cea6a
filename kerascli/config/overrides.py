"""``--set a.b.c=value`` overrides; the value is parsed as YAML (``--set train.epochs=3``)."""

from __future__ import annotations

import re

import yaml

from kerascli.config.loader import LoadedConfig
from kerascli.errors import ConfigError

_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")


def parse_key(key: str, text: str) -> tuple:
    path: list = []
    for part in key.split("."):
        m = _PART.match(part)
        if not m:
            raise ConfigError(
                f"bad key {key!r}: use dotted names with optional [index], e.g. model.layers[0].units",
                where=f"--set {text}",
            )
        path.append(m.group(1))
        path.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return tuple(path)


def apply_overrides(loaded: LoadedConfig, overrides: list[str]) -> LoadedConfig:
    for text in overrides:
        if "=" not in text:
            raise ConfigError("expected KEY=VALUE, e.g. train.epochs=3", where=f"--set {text}")
        key, raw = text.split("=", 1)
        path = parse_key(key.strip(), text)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"value is not valid YAML: {exc}", where=f"--set {text}") from None
        node = loaded.data
        for i, part in enumerate(path[:-1]):
            nxt = path[i + 1]
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    raise ConfigError(f"no list item [{part}] to set", where=f"--set {text}")
                node = node[part]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"cannot set {part!r} inside a non-mapping value", where=f"--set {text}")
            if part not in node or node[part] is None:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
        last = path[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last >= len(node):
                raise ConfigError(f"no list item [{last}] to set", where=f"--set {text}")
        elif not isinstance(node, dict):
            raise ConfigError(f"cannot set {last!r} inside a non-mapping value", where=f"--set {text}")
        node[last] = value
        loaded.overridden[path] = text
    return loaded
