"""Plugins: user code that registers layers, losses, metrics, optimizers, callbacks and datasets.

Two ways in: a ``plugins:`` list in the config (paths of .py files, or names of
importable modules) and the ``kerascli.plugins`` entry-point group of installed
packages. A plugin registers through ``kerascli.api`` (``@register_layer`` ...)
while it is imported; each entry it adds records the plugin as its source, so
a name already taken by kerascli or by another plugin is refused naming both.

A run records every plugin it used (file or module, and the SHA-256 of its
source) in each checkpoint and in summary.json; ``evaluate``, ``predict`` and a
resume import them again and refuse when one is missing or changed.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import os
import sys
import traceback
from dataclasses import asdict, dataclass

from kerascli.data.fingerprint import sha256_file
from kerascli.errors import ConfigError

ENTRY_POINT_GROUP = "kerascli.plugins"


@dataclass(frozen=True)
class Plugin:
    spec: str  # an absolute .py path, a module name, or "entry point NAME"
    kind: str  # "file", "module" or "entry point"
    path: str  # the source file
    sha256: str

    def to_dict(self) -> dict:
        return asdict(self)


class PluginError(ConfigError):
    """A plugin that cannot be used (missing, failing to import, clashing, changed); exit code 2."""


_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("kerascli_plugin", default=None)
_loaded: dict[str, Plugin] = {}  # spec -> the plugin as last imported in this process
_entry_points: list[Plugin] | None = None


def current_source(module: str | None = None) -> str:
    """What a registration made now is attributed to: the plugin being imported, else the module."""
    source = _current.get()
    if source:
        return source
    return f"module {module}" if module else "user code"


def file_sha256(path: str) -> str:
    return sha256_file(path)[1]


@contextlib.contextmanager
def _importing(description: str):
    token = _current.set(description)
    try:
        yield
    finally:
        _current.reset(token)


def _failure(description: str, exc: BaseException) -> PluginError:
    if isinstance(exc, ConfigError):  # a registration problem: already one clear message
        return PluginError(f"{description}: {exc}")
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "kerascli" not in os.path.dirname(f.filename)
              or "examples" in f.filename]
    where = f" (line {frames[-1].lineno} of {frames[-1].filename})" if frames else ""
    if isinstance(exc, SyntaxError):
        where = f" (line {exc.lineno} of {exc.filename})"
        return PluginError(f"{description} failed to import: SyntaxError: {exc.msg}{where}")
    return PluginError(f"{description} failed to import: {type(exc).__name__}: {exc}{where}")


def resolve_spec(item: str) -> tuple[str, str]:
    """(spec, kind): a path (ending in .py, or an existing file) made absolute, or a module name."""
    if item.endswith(".py") or os.sep in item or os.path.isfile(item):
        return os.path.abspath(item), "file"
    return item, "module"


def load(item: str) -> Plugin:
    """Import the plugin ``item`` (again if its source changed since it was imported in this process)."""
    spec, kind = resolve_spec(item)
    description = f"plugin {spec}"
    if kind == "file":
        if not os.path.isfile(spec):
            raise PluginError(f"{description}: file not found")
        sha = file_sha256(spec)
        known = _loaded.get(spec)
        if known is not None and known.sha256 == sha:
            return known
        module_name = f"kerascli_plugin_{os.path.splitext(os.path.basename(spec))[0]}_{sha[:12]}"
        try:
            with _importing(description):
                module_spec = importlib.util.spec_from_file_location(module_name, spec)
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[module_name] = module
                module_spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - any failure of user code becomes one message
            sys.modules.pop(module_name, None)
            raise _failure(description, exc) from None
        plugin = Plugin(spec, kind, spec, sha)
    else:
        known = _loaded.get(spec)
        if known is not None and os.path.isfile(known.path) and file_sha256(known.path) == known.sha256:
            return known
        try:
            with _importing(description):
                if spec in sys.modules:
                    module = importlib.reload(sys.modules[spec])
                else:
                    module = importlib.import_module(spec)
        except ModuleNotFoundError as exc:
            if exc.name == spec or spec.startswith(f"{exc.name}."):
                raise PluginError(f"{description}: no module named {spec!r} (a plugin is a .py path or an "
                                  "importable module name)") from None
            raise _failure(description, exc) from None
        except Exception as exc:  # noqa: BLE001
            raise _failure(description, exc) from None
        path = getattr(module, "__file__", None) or ""
        plugin = Plugin(spec, kind, path, file_sha256(path) if os.path.isfile(path) else "")
    _loaded[spec] = plugin
    return plugin


def load_entry_points() -> list[Plugin]:
    """Import the ``kerascli.plugins`` entry points of installed packages (once per process)."""
    global _entry_points
    if _entry_points is not None:
        return _entry_points
    from importlib.metadata import entry_points

    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        description = f"plugin entry point {ep.name} ({ep.value})"
        try:
            with _importing(description):
                module = ep.load()
        except Exception as exc:  # noqa: BLE001
            raise _failure(description, exc) from None
        path = getattr(module, "__file__", None) or ""
        found.append(Plugin(f"entry point {ep.name}", "entry point", path,
                            file_sha256(path) if os.path.isfile(path) else ""))
    _entry_points = found
    return found


def check_unchanged(recorded: list[dict] | None, current: list[Plugin], what: str) -> None:
    """Refuse when a plugin a run used is gone or its source changed (its layers would compute otherwise)."""
    now = {p.spec: p for p in current}
    for record in recorded or []:
        plugin = now.get(record["spec"])
        if plugin is None:
            raise PluginError(f"the run used plugin {record['spec']}, which is not loaded now; {what}")
        if record.get("sha256") and plugin.sha256 != record["sha256"]:
            raise PluginError(f"plugin {record['spec']} changed since the run used it (sha256 "
                              f"{record['sha256'][:12]}... then, {plugin.sha256[:12]}... now); {what}")
