"""YAML config: loading with source positions, overrides, validation into a resolved spec."""

from kerascli.config.loader import LoadedConfig, load_config_file
from kerascli.config.overrides import apply_overrides
from kerascli.config.schema import resolve_config

__all__ = ["LoadedConfig", "load_config_file", "apply_overrides", "resolve_config"]
