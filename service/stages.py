"""Chalice stages: one per analysis, its environment written from the blueprint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chalicelib.blueprint import Blueprint

CHALICE_CONFIG = Path(".chalice") / "config.json"


def stage_config(blueprint: Blueprint) -> dict[str, Any]:
    """The Chalice stage for an analysis: its settings as Lambda environment variables."""
    return {
        "environment_variables": blueprint.settings.to_environ(),
        "tags": {"neurocaas:analysis": blueprint.name},
    }


def write_stage(blueprint: Blueprint, project: Path) -> tuple[Path, bool]:
    """Add or update the analysis's stage in ``.chalice/config.json``; returns (path, changed)."""
    path = project / CHALICE_CONFIG
    config = json.loads(path.read_text())
    stages = config.setdefault("stages", {})
    wanted = {**stages.get(blueprint.name, {}), **stage_config(blueprint)}
    if stages.get(blueprint.name) == wanted:
        return path, False
    stages[blueprint.name] = wanted
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path, True
