"""Read a YAML config with ``yaml.safe_load`` semantics and remember where each key stands.

Every error about a config value names the file and line it came from, so the
loader keeps a map from key path (a tuple of str keys and int list indices) to
the line number of that value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml

from kerascli.errors import ConfigError

KeyPath = tuple  # of str | int


@dataclass
class LoadedConfig:
    data: dict
    source: str  # file name shown in messages
    lines: dict = field(default_factory=dict)  # KeyPath -> 1-based line number
    overridden: dict = field(default_factory=dict)  # KeyPath -> the --set text

    def where(self, path: KeyPath) -> str:
        """The best known location of ``path``: the --set that changed it, or its file line."""
        path = tuple(path)
        for n in range(len(path), -1, -1):
            prefix = path[:n]
            if prefix in self.overridden:
                return f"--set {self.overridden[prefix]}"
            if prefix in self.lines:
                return f"{self.source}:{self.lines[prefix]}"
        return self.source


def format_key(path: KeyPath) -> str:
    """('model', 'layers', 1, 'units') -> 'model.layers[1].units'."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def _record_lines(node: yaml.Node, path: KeyPath, lines: dict) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                child = path + (key_node.value,)
                _record_lines(value_node, child, lines)
                lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record_lines(item, path + (i,), lines)


def parse_yaml_text(text: str, source: str) -> LoadedConfig:
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"YAML syntax error: {problem}", where=where) from None
    if data is None:
        raise ConfigError("the config is empty", where=source)
    if not isinstance(data, dict):
        raise ConfigError(
            f"the config must be a mapping of keys (name, data, model, ...), got {type(data).__name__}",
            where=source,
        )
    lines: dict = {}
    if node is not None:
        _record_lines(node, (), lines)
    return LoadedConfig(data=data, source=source, lines=lines)


def load_config_file(path: str | os.PathLike) -> LoadedConfig:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ConfigError(f"config file not found: {path}")
    if os.path.isdir(path):
        raise ConfigError(f"expected a YAML file, got a directory: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    loaded = parse_yaml_text(text, path)
    return loaded
