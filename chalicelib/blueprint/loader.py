"""Load a blueprint and validate it against the published JSON Schema, key by key."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from pydantic import BaseModel, ConfigDict

from chalicelib.blueprint.settings import AnalysisSettings
from chalicelib.exceptions import BlueprintError
from chalicelib.parameters import SCHEMA_FILE, check_schema

BLUEPRINT_FILE = "stack_config_template.json"


def schema_path() -> Path:
    """Where the published JSON Schema for blueprints lives."""
    return Path(__file__).with_name("schema.json")


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_path().read_text()))


def _describe(error: ValidationError) -> str:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        missing = error.message.split("'")[1] if error.message.count("'") >= 2 else error.message
        return f"{'.'.join([*path, missing])}: is missing (required)"
    where = ".".join(path) or "(top level)"
    if error.validator == "additionalProperties":
        return f"{where}: {error.message}"
    hint = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if hint is None and error.parent is not None and isinstance(error.parent.schema, dict):
        hint = error.parent.schema.get("errorMessage")
    return f"{where}: {hint or error.message} (found {json.dumps(error.instance)[:80]})"


def validate_blueprint(document: Any) -> list[str]:
    """Every problem with a blueprint document, one line per invalid key; empty when valid."""
    problems = []
    for error in sorted(_validator().iter_errors(document), key=lambda e: list(map(str, e.path))):
        # anyOf failures report each branch as context; the branch hint is on the parent schema.
        problems.append(_describe(error))
    return sorted(set(problems))


class Affiliate(BaseModel):
    """A user group: its folder in the bucket and its members."""

    model_config = ConfigDict(frozen=True)

    name: str
    usernames: tuple[str, ...] = ()
    contact_email: str = ""


class Blueprint(BaseModel):
    """A validated blueprint: the analysis settings, its groups and where it was read from."""

    model_config = ConfigDict(frozen=True)

    path: Path | None
    settings: AnalysisSettings
    affiliates: tuple[Affiliate, ...]
    stage: str
    local_image: Path | None
    document: dict[str, Any]
    parameters_schema: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.settings.bucket_name

    @classmethod
    def from_document(cls, document: Any, path: Path | None = None,
                      parameters_schema: dict[str, Any] | None = None) -> "Blueprint":
        problems = validate_blueprint(document)
        if problems:
            where = f" {path}" if path else ""
            raise BlueprintError(f"The blueprint{where} is not valid; fix these keys:", problems)
        affiliates = tuple(
            Affiliate(
                name=a["AffiliateName"],
                usernames=tuple(a.get("UserNames", ())),
                contact_email=a.get("ContactEmail", ""),
            )
            for a in document["UXData"]["Affiliates"]
        )
        local_image = None
        if "LocalImage" in document and path is not None:
            local_image = (path.parent / document["LocalImage"]).resolve()
        return cls(
            path=path,
            settings=AnalysisSettings.from_blueprint_document(document),
            affiliates=affiliates,
            stage=document.get("STAGE", "websubstack"),
            local_image=local_image,
            document=document,
            parameters_schema=parameters_schema,
        )


def load_blueprint(location: str | Path) -> Blueprint:
    """Read and validate a blueprint from its folder or its ``stack_config_template.json``."""
    path = Path(location)
    if path.is_dir():
        path = path / BLUEPRINT_FILE
    try:
        text = path.read_text()
    except OSError as exc:
        raise BlueprintError(f"Cannot read the blueprint {path}: {exc.strerror or exc}.") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BlueprintError(
            f"The blueprint {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from exc
    return Blueprint.from_document(document, path=path.resolve(), parameters_schema=_parameters_schema(path))


def _parameters_schema(blueprint_file: Path) -> dict[str, Any] | None:
    """The analysis's declared parameters (``parameters.schema.json`` beside the blueprint), if any."""
    path = blueprint_file.parent / SCHEMA_FILE
    if not path.exists():
        return None
    try:
        schema = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BlueprintError(f"The parameter schema {path} is not valid JSON ({exc}).") from exc
    problems = check_schema(schema)
    if problems:
        raise BlueprintError(f"The parameter schema {path} is not usable; fix these keys:", problems)
    return schema
