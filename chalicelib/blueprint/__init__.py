"""Blueprints: NeuroCAAS ``stack_config_template.json`` files, validated and typed."""

from chalicelib.blueprint.loader import Blueprint, load_blueprint, schema_path, validate_blueprint
from chalicelib.blueprint.settings import AnalysisSettings

__all__ = ["AnalysisSettings", "Blueprint", "load_blueprint", "schema_path", "validate_blueprint"]
