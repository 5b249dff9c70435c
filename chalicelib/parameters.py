"""The parameter file: parsed only to read the special keys, and otherwise passed on untouched."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from posixpath import splitext
from typing import Any

import yaml

from chalicelib.exceptions import SubmissionRefused

CONFIG_EXTENSIONS = (".json", ".yaml", ".yml")
MAX_ENSEMBLE = 100


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


def parse_parameters(name: str, body: bytes) -> Parameters:
    """Parse a .json/.yaml/.yml parameter file, or refuse with the reason."""
    extension = splitext(name)[1].lower()
    if extension not in CONFIG_EXTENSIONS:
        raise SubmissionRefused(
            f"The parameter file {name!r} must end in .json, .yaml or .yml."
        )
    try:
        text = body.decode("utf-8")
        document = json.loads(text) if extension == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        detail = str(exc).splitlines()[0][:200]
        raise SubmissionRefused(f"The parameter file {name!r} does not parse: {detail}. Fix it and submit again.")
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise SubmissionRefused(
            f"The parameter file {name!r} must hold a mapping of parameter names to values."
        )
    ensemble = _number(document, "ensemble_size", True, "how many times to run the dataset")
    if ensemble is not None and ensemble > MAX_ENSEMBLE:
        raise SubmissionRefused(f"`ensemble_size` is {ensemble}; at most {MAX_ENSEMBLE} members are allowed.")
    return Parameters(
        document=document,
        extension=extension,
        duration_minutes=_number(document, "__duration__", False, "the job's lifetime in minutes"),
        dataset_size_gb=_number(document, "__dataset_size__", False, "GB added to the disk"),
        ensemble_size=ensemble,
    )
