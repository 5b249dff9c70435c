"""The analyses this identity can use: names from the connection and the blueprints at hand,
descriptions and instance types from the blueprints, groups from what S3 lets this identity list."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.blueprint import AnalysisSettings, Blueprint, load_blueprint
from chalicelib.exceptions import BlueprintError
from service.client import NeuroCAASClient, UserError

BLUEPRINT_FILE = "stack_config_template.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Analysis:
    """One analysis as the page shows it."""

    name: str
    description: str
    groups: tuple[str, ...]
    settings: AnalysisSettings | None
    parameters_schema: dict[str, Any] | None = None

    @property
    def instance_types(self) -> tuple[str, ...]:
        return self.settings.instance_types_allowed if self.settings else ()


def load_blueprints(paths: list[Path]) -> dict[str, Blueprint]:
    """Blueprints from folders (or folders of blueprint folders); unreadable ones are skipped."""
    found: dict[str, Blueprint] = {}
    for path in paths:
        candidates = [path] if (path / BLUEPRINT_FILE).exists() or path.is_file() else \
            sorted(p.parent for p in path.glob(f"*/{BLUEPRINT_FILE}"))
        for candidate in candidates:
            try:
                blueprint = load_blueprint(candidate)
            except BlueprintError:
                continue
            found[blueprint.name] = blueprint
    return found


def describe(blueprint: Blueprint) -> str:
    """The first paragraph of the blueprint folder's README (after its title), if it has one."""
    if blueprint.path is None:
        return ""
    readme = blueprint.path.parent / "README.md"
    try:
        text = readme.read_text()
    except OSError:
        return ""
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if paragraph and not paragraph.startswith("#"):
            return " ".join(paragraph.split())
    return ""


class Catalog:
    """Answers which analyses and groups the identity behind ``client`` may use."""

    def __init__(self, blueprints: dict[str, Blueprint]) -> None:
        self.blueprints = blueprints

    def analyses(self, client: NeuroCAASClient) -> list[Analysis]:
        names = sorted(set(client.connection.analyses) | set(self.blueprints))
        found = []
        for name in names:
            try:
                found.append(self.analysis(client, name))
            except UserError:
                continue
        return [a for a in found if a.groups]

    def analysis(self, client: NeuroCAASClient, name: str) -> Analysis:
        if not NAME.match(name):
            raise UserError(f"There is no analysis called {name!r}.")
        client.check_analysis(name)
        blueprint = self.blueprints.get(name)
        if blueprint is not None:
            candidates = [a.name for a in blueprint.affiliates]
        else:
            candidates = _top_folders(client, name)
        groups = tuple(g for g in candidates if _can_list(client, name, g))
        if blueprint is not None:
            schema = blueprint.parameters_schema
        else:  # the analysis card the job manager checks against, as the CLI reads it
            card = client.card(name)
            schema = card.parameters if card else None
        return Analysis(name, describe(blueprint) if blueprint else "", groups,
                        blueprint.settings if blueprint else None, schema)

    def group(self, client: NeuroCAASClient, analysis: str, group: str) -> Analysis:
        """The analysis, if ``group`` is one of the groups this identity may use in it."""
        found = self.analysis(client, analysis)
        if group not in found.groups:
            raise UserError(f"You cannot use analysis {analysis!r} as group {group!r}.")
        return found


def _can_list(client: NeuroCAASClient, bucket: str, group: str) -> bool:
    if not NAME.match(group):
        return False
    try:
        listing = client.s3.list_objects_v2(Bucket=bucket, Prefix=f"{group}/", MaxKeys=1)
    except ClientError:
        return False
    return bool(listing.get("KeyCount"))


def _top_folders(client: NeuroCAASClient, bucket: str) -> list[str]:
    try:
        listing = client.s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    except ClientError:
        return []
    return [p["Prefix"].rstrip("/") for p in listing.get("CommonPrefixes", ()) if p["Prefix"] != "logs/"]
