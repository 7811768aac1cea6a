"""``--set a.b.c=value`` overrides; the value is parsed as YAML (``--set train.epochs=3``)."""

from __future__ import annotations

import re

import yaml

from kerascli.config.loader import LoadedConfig
from kerascli.config.yamlsafe import describe_error, load_yaml
from kerascli.errors import ConfigError

_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")


def parse_key(key: str, where: str) -> tuple:
    path: list = []
    for part in key.split("."):
        m = _PART.match(part)
        if not m:
            raise ConfigError(f"bad key {key!r}: use dotted names with optional [index], e.g. model.layers[0].units",
                              where=where)
        path.append(m.group(1))
        path.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return tuple(path)


def parse_value(raw: str, where: str):
    """A --set value as YAML, with the config file's rules (1e-3 is a float, no duplicate keys, size limits)."""
    if not raw.strip():
        return None
    try:
        value, _ = load_yaml(raw)
    except yaml.YAMLError as exc:
        problem, _ = describe_error(exc)
        raise ConfigError(f"the value is not valid YAML: {problem}", where=where) from None
    return value


def apply_overrides(loaded: LoadedConfig, overrides: list) -> LoadedConfig:
    """Apply each ``KEY=VALUE`` text, or ``(KEY=VALUE, origin)`` where an option other than --set
    made it (``("train.threads=4", "--threads 4")``): messages name what the user typed."""
    for item in overrides:
        text, where = (item, f"--set {item}") if isinstance(item, str) else item
        if "=" not in text:
            raise ConfigError("expected KEY=VALUE, e.g. train.epochs=3", where=where)
        key, raw = text.split("=", 1)
        path = parse_key(key.strip(), where)
        value = parse_value(raw, where)
        node = loaded.data
        for i, part in enumerate(path[:-1]):
            nxt = path[i + 1]
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    raise ConfigError(f"no list item [{part}] to set", where=where)
                node = node[part]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"cannot set {part!r} inside a non-mapping value", where=where)
            if part not in node or node[part] is None:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
        last = path[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last >= len(node):
                raise ConfigError(f"no list item [{last}] to set", where=where)
        elif not isinstance(node, dict):
            raise ConfigError(f"cannot set {last!r} inside a non-mapping value", where=where)
        node[last] = value
        loaded.overridden[path] = where
    return loaded
