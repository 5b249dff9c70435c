"""Blueprints: NeuroCAAS ``stack_config_template.json`` files, validated and typed.

The loader (and jsonschema with it) is imported on first use: the Lambda handler only needs
:class:`AnalysisSettings`, and its cold start should not pay for schema validation.
"""

from typing import Any

from chalicelib.blueprint.settings import AnalysisSettings

__all__ = ["AnalysisSettings", "Blueprint", "load_blueprint", "schema_path", "validate_blueprint"]
_LOADER_NAMES = {"Blueprint", "load_blueprint", "schema_path", "validate_blueprint"}


def __getattr__(name: str) -> Any:
    if name in _LOADER_NAMES:
        from chalicelib.blueprint import loader

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
