"""The parameter file: parsed, checked against the analysis's declared parameters, passed on untouched.

This is the one place the rule lives: the CLI (before uploading), the web page and the job manager
(CONTRACT step 2, before any instance starts) all call :func:`parse_parameters`.

An analysis declares its parameters as a JSON Schema (``parameters.schema.json`` in its blueprint
folder; deployed within its analysis card, see :mod:`chalicelib.analysiscard`). With ``additionalProperties:
false`` an unknown key is refused with a "did you mean"; the special keys below are always allowed.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from posixpath import splitext
from typing import Any

import yaml

from chalicelib.exceptions import SubmissionRefused

CONFIG_EXTENSIONS = (".json", ".yaml", ".yml")
MAX_ENSEMBLE = 100
SCHEMA_FILE = "parameters.schema.json"
# Keys the job manager or the remote side read, allowed whatever the analysis declares.
SPECIAL_KEYS = ("__duration__", "__dataset_size__", "ensemble_size", "jobnb")
MAX_PROBLEMS = 5


@dataclass(frozen=True)
class Parameters:
    """What the job manager reads from a parameter file (CONTRACT section 2, special keys)."""

    document: dict[str, Any]
    extension: str
    duration_minutes: float | None
    dataset_size_gb: float | None
    ensemble_size: int | None

    def with_member(self, member: int) -> bytes:
        """A copy of the parameter file for ensemble member ``member``, carrying ``jobnb``."""
        copy = {**self.document, "jobnb": member}
        if self.extension == ".json":
            return json.dumps(copy, indent=2).encode()
        return yaml.safe_dump(copy, sort_keys=False).encode()


def _number(document: dict[str, Any], key: str, integer: bool, what: str) -> float | int | None:
    value = document.get(key)
    if value is None:
        return None
    valid = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not valid or not math.isfinite(value) or value <= 0:
        kind = "a positive whole number" if integer else "a positive number"
        raise SubmissionRefused(f"`{key}` in the parameter file must be {kind} ({what}); it is {value!r}.")
    return value


def _syntax_error(name: str, error: Exception) -> SubmissionRefused:
    """A parse error with its line and column (1-based), as an editor shows them."""
    where = ""
    if isinstance(error, json.JSONDecodeError):
        where, detail = f" at line {error.lineno}, column {error.colno}", error.msg
    elif isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}"
        detail = " ".join(part for part in (error.context, error.problem) if part) or type(error).__name__
    else:
        detail = (str(error).splitlines() or [type(error).__name__])[0][:200]
    return SubmissionRefused(f"The parameter file {name!r} does not parse{where}: {detail}. Fix it and submit again.")


def parse_parameters(name: str, body: bytes, schema: dict[str, Any] | None = None) -> Parameters:
    """Parse a .json/.yaml/.yml parameter file and check it against ``schema``, or refuse with the reason."""
    extension = splitext(name)[1].lower()
    if extension not in CONFIG_EXTENSIONS:
        raise SubmissionRefused(f"The parameter file {name!r} must end in .json, .yaml or .yml.")
    try:
        text = body.decode("utf-8")
        document = json.loads(text) if extension == ".json" else yaml.safe_load(text)
    except UnicodeDecodeError:
        raise SubmissionRefused(
            f"The parameter file {name!r} does not parse: it is not UTF-8 text. Save it as UTF-8 and submit again.")
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise _syntax_error(name, exc) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise SubmissionRefused(f"The parameter file {name!r} must hold a mapping of parameter names to values.")
    ensemble = _number(document, "ensemble_size", True, "how many times to run the dataset")
    if ensemble is not None and ensemble > MAX_ENSEMBLE:
        raise SubmissionRefused(f"`ensemble_size` is {ensemble}; at most {MAX_ENSEMBLE} members are allowed.")
    parameters = Parameters(
        document=document,
        extension=extension,
        duration_minutes=_number(document, "__duration__", False, "the job's lifetime in minutes"),
        dataset_size_gb=_number(document, "__dataset_size__", False, "GB added to the disk"),
        ensemble_size=ensemble,
    )
    if schema:
        problems = parameter_problems(document, schema)
        if problems:
            shown = "; ".join(problems[:MAX_PROBLEMS])
            more = f" (and {len(problems) - MAX_PROBLEMS} more)" if len(problems) > MAX_PROBLEMS else ""
            raise SubmissionRefused(f"The parameter file {name!r} is not valid for this analysis: {shown}{more}. "
                                    "Fix it and submit again.")
    return parameters


def parameter_problems(document: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Every problem of a parameter mapping against the analysis's schema, one line per key."""
    from jsonschema import Draft202012Validator  # only when an analysis declares its parameters

    declared = schema.get("properties") or {}
    problems = []
    if schema.get("additionalProperties") is False:
        for key in document:
            if key in declared or key in SPECIAL_KEYS:
                continue
            close = difflib.get_close_matches(str(key), list(declared), n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else f" (known: {', '.join(sorted(declared)) or 'none'})"
            problems.append(f"unknown parameter `{key}`{hint}")
    checked = {k: v for k, v in document.items() if k not in SPECIAL_KEYS}
    strict = {**schema, "additionalProperties": True}
    for error in sorted(Draft202012Validator(strict).iter_errors(checked), key=lambda e: list(map(str, e.path))):
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        problems.append(f"`{key}`: {error.message}")
    return problems


def check_schema(schema: Any) -> list[str]:
    """Problems of a declared parameter schema itself (a blueprint check); empty when usable."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        return [f"{SCHEMA_FILE} must hold a JSON object (a JSON Schema)"]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        return [f"{SCHEMA_FILE}: {error.message}"]
    if schema.get("type", "object") != "object":
        return [f"{SCHEMA_FILE}: the parameter file is a mapping, so `type` must be \"object\""]
    return []
