"""What anyone may know about an analysis before submitting: instance types, the cap, its parameters.

Deploying an analysis writes this card to ``analysis.json`` at its bucket's root. The CLI and the
web page check a submission against it before uploading anything; the job manager reads the
declared parameters from it at step 2, so the same rules refuse the same mistakes everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalicelib.blueprint import AnalysisSettings
from chalicelib.exceptions import BudgetExceeded, SubmissionRefused

CARD_KEY = "analysis.json"


@dataclass(frozen=True)
class AnalysisCard:
    """The public facts of an analysis."""

    instance_types: tuple[str, ...]
    deploy_limit: int
    parameters: dict[str, Any] | None = None

    def to_bytes(self) -> bytes:
        return json.dumps({"instance_types": list(self.instance_types), "deploy_limit": self.deploy_limit,
                           "parameters": self.parameters}, indent=1).encode()

    @classmethod
    def of(cls, settings: AnalysisSettings, parameters: dict[str, Any] | None) -> "AnalysisCard":
        return cls(settings.instance_types_allowed, settings.deploy_limit, parameters)

    @classmethod
    def from_bytes(cls, body: bytes) -> "AnalysisCard | None":
        """The card, or None when the object is not one (then nothing is checked early)."""
        try:
            document = json.loads(body)
            parameters = document.get("parameters")
            return cls(tuple(document["instance_types"]), int(document["deploy_limit"]),
                       parameters if isinstance(parameters, dict) else None)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def check_instance_type(instance_type: str, allowed: tuple[str, ...]) -> None:
    """Refuse an instance type the analysis does not offer."""
    if instance_type not in allowed:
        raise SubmissionRefused(f"Instance type {instance_type!r} is not offered by this analysis. "
                                f"Choose one of: {', '.join(allowed)}.")


def check_concurrency(limit: int, running: int, needed: int) -> None:
    """Refuse a job that would take the analysis over its cap of instances running at once."""
    if needed > limit:
        raise BudgetExceeded(f"This analysis runs at most {limit} instance(s) at once and this job needs {needed}. "
                             f"Split it into jobs of at most {limit} dataset(s).")
    if running + needed > limit:
        raise BudgetExceeded(f"This analysis may run {limit} instance(s) at once; {running} are running and this "
                             f"job needs {needed}. Try again when running jobs have finished, or submit fewer "
                             "datasets.")
