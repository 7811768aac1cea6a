"""YAML for configs: ``yaml.safe_load`` semantics, measured before it is expanded.

Three differences from plain ``yaml.safe_load``, each closing a way a config
could silently mean something else or exhaust the machine:

* numbers such as ``1e-3`` and ``5E4`` are floats and ``0o17`` is an integer
  (YAML 1.2; PyYAML's YAML 1.1 rules read them as strings);
* a key given twice in one mapping is an error naming both lines (YAML says
  keys are unique; PyYAML keeps the last one);
* the text's nesting depth is read from the event stream before any tree is
  built, and the node count after aliases are expanded is computed on the
  node graph (each shared node counted once per use, without expanding it),
  so "billion laughs" alias bombs and deeply nested files are refused in
  microseconds instead of eating memory or the recursion limit.
"""

from __future__ import annotations

import re

import yaml

MAX_TEXT_BYTES = 4 << 20  # a config is a few kilobytes
MAX_DEPTH = 64  # nested mappings/lists; real configs use 5 or 6
MAX_NODES = 100_000  # after alias expansion; real configs have a few hundred

# YAML 1.2 numbers that YAML 1.1 (PyYAML) reads as strings: floats with an exponent but no dot or no
# sign in it, and 0o octals.
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_OCTAL_12 = re.compile(r"^[-+]?0o[0-7_]+$")


class YAMLLimitError(yaml.YAMLError):
    """A structural problem found before or while building values; ``line`` is 1-based or None."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message, self.line = message, line


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader (no Python objects, ever) that refuses duplicate keys."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<: *base' then overriding keys is how merges are meant to be used
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if first is not None:
                    raise YAMLLimitError(f"duplicate key {key!r} (lines {first} and {line}); "
                                         "a key may appear once per mapping", line)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:int", _OCTAL_12, list("-+0"))


def _check_events(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH from the event stream (the parser is not recursive; the
    composer that builds nodes is)."""
    depth = 0
    for event in yaml.parse(text, Loader=ConfigLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise YAMLLimitError(f"nested more than {MAX_DEPTH} levels deep", event.start_mark.line + 1)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _check_expansion(root: yaml.Node) -> None:
    """Size and depth of the value ``root`` stands for once every alias is expanded, without expanding:
    each node's totals are computed once (iteratively) and reused wherever an alias points at it."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        kids = _children(node)
        if children_done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if size[key] > MAX_NODES:
                raise YAMLLimitError(f"expands to more than {MAX_NODES:,} values (through aliases); "
                                     "a config is a few hundred", node.start_mark.line + 1)
            if depth[key] > MAX_DEPTH + 1:
                raise YAMLLimitError(f"nested more than {MAX_DEPTH} levels deep (through aliases)",
                                     node.start_mark.line + 1)
            continue
        if key in size:
            continue
        on_path.add(key)
        stack.append((node, True))
        for kid in kids:
            if id(kid) in on_path:
                raise YAMLLimitError("an alias refers to a node that contains it (a recursive structure)",
                                     kid.start_mark.line + 1)
            if id(kid) not in size:
                stack.append((kid, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_yaml(text: str) -> tuple[object, yaml.Node | None]:
    """(value, node) of one YAML document; YAMLError (with a mark) or YAMLLimitError on bad input."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        raise YAMLLimitError(f"larger than {MAX_TEXT_BYTES >> 20} MiB; a config is a few kilobytes")
    _check_events(text)
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_expansion(node)
        return loader.construct_document(node), node
    finally:
        loader.dispose()


def describe_error(exc: yaml.YAMLError) -> tuple[str, int | None]:
    """One line for any YAML error, and its 1-based line when known."""
    if isinstance(exc, YAMLLimitError):
        return exc.message, exc.line
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    text = f"{context}: {problem}" if context and problem and context not in problem else problem
    if mark is not None:
        text += f" (column {mark.column + 1})"
    return " ".join(str(text).split()), (mark.line + 1 if mark is not None else None)
