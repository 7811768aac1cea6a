"""``kerascli config``: the fully resolved config, each value with where it came from: the file and line
that gave it, the ``--set`` that changed it, or Keras' default."""

from __future__ import annotations

import json

import yaml

from kerascli.config.loader import LoadedConfig


def origin(loaded: LoadedConfig, path: tuple) -> str:
    """Where the value at ``path`` came from."""
    for n in range(len(path), 0, -1):
        if path[:n] in loaded.overridden:
            return loaded.overridden[path[:n]]
    if path in loaded.lines:
        return f"{loaded.source}:{loaded.lines[path]}"
    return "default"


def _scalar(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def _flat(value) -> bool:
    """Written on one line: scalars, and lists of scalars (shapes, strides)."""
    return not isinstance(value, (dict, list)) or (isinstance(value, list) and
                                                    all(not isinstance(v, (dict, list)) for v in value))


def explained_lines(resolved: dict, loaded: LoadedConfig) -> list[tuple[str, str]]:
    """(YAML line, where its value came from or "") for the whole resolved config."""
    out: list[tuple[str, str]] = []

    def mapping(node: dict, path: tuple, indent: str, first_prefix: str | None = None):
        for i, (key, value) in enumerate(node.items()):
            lead = first_prefix if (first_prefix is not None and i == 0) else indent
            here = path + (key,)
            if _flat(value) or (isinstance(value, dict) and not value) or (isinstance(value, list) and not value):
                out.append((f"{lead}{key}: {_scalar(value)}", origin(loaded, here)))
            elif isinstance(value, dict):
                out.append((f"{lead}{key}:", ""))
                mapping(value, here, indent + "  ")
            else:
                out.append((f"{lead}{key}:", ""))
                for j, item in enumerate(value):
                    if isinstance(item, dict) and item:
                        mapping(item, here + (j,), indent + "    ", first_prefix=indent + "  - ")
                    else:
                        out.append((f"{indent}  - {_scalar(item)}", origin(loaded, here + (j,))))

    mapping(resolved, (), "")
    return out


def explain(resolved: dict, loaded: LoadedConfig) -> str:
    lines = explained_lines(resolved, loaded)
    width = min(max((len(text) for text, _ in lines), default=0), 70)
    return "\n".join(f"{text:<{width}}  # {where}" if where else text for text, where in lines) + "\n"


def explain_json(resolved: dict, loaded: LoadedConfig) -> str:
    """Every value as {key, value, from}, keys as --set writes them."""
    from kerascli.config.loader import format_key

    rows = []

    def walk(value, path):
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(v, path + (k,))
        elif isinstance(value, list) and value and not _flat(value):
            for i, v in enumerate(value):
                walk(v, path + (i,))
        else:
            rows.append({"key": format_key(path), "value": value, "from": origin(loaded, path)})

    walk(resolved, ())
    return json.dumps(rows, indent=1)
