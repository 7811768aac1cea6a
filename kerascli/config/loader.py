"""Read a YAML config (``yaml.safe_load`` semantics, see yamlsafe) and remember where each key stands.

Every error about a config value names the file and line it came from, so the
loader keeps a map from key path (a tuple of str keys and int list indices) to
the line number of that value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml

from kerascli.config.yamlsafe import YAMLLimitError, describe_error, load_yaml
from kerascli.errors import ConfigError

KeyPath = tuple  # of str | int


@dataclass
class LoadedConfig:
    data: dict
    source: str  # file name shown in messages
    lines: dict = field(default_factory=dict)  # KeyPath -> 1-based line number
    overridden: dict = field(default_factory=dict)  # KeyPath -> what set it ("--set k=v", "--threads 4")

    def where(self, path: KeyPath) -> str:
        """The best known location of ``path``: the option that set it or a key above it; else its file
        line, naming any --set that changed the mapping it sits in (the problem may come from there,
        as an argument left over from the layer type a --set replaced)."""
        path = tuple(path)
        for n in range(len(path), -1, -1):
            if path[:n] in self.overridden:
                return self.overridden[path[:n]]
        scope = path[:-1] if path else path
        nearby = [text for p, text in self.overridden.items() if p[: len(scope)] == scope]
        note = f" (with {nearby[-1]})" if nearby else ""
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return f"{self.source}:{self.lines[path[:n]]}{note}"
        return self.source + note


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
        data, node = load_yaml(text)
    except yaml.YAMLError as exc:
        problem, line = describe_error(exc)
        what = "YAML syntax error: " if not isinstance(exc, YAMLLimitError) else ""
        raise ConfigError(what + problem, where=f"{source}:{line}" if line else source) from None
    if data is None:
        raise ConfigError("the config is empty", where=source)
    if not isinstance(data, dict):
        raise ConfigError(
            f"the config must be a mapping of keys (name, data, model, ...), got {type(data).__name__}",
            where=source,
        )
    lines: dict = {}
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
