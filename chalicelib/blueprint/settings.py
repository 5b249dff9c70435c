"""The analysis settings the handler runs with.

As in NeuroCAAS, the deployed Lambda carries them as environment variables named after the
blueprint's ``LambdaConfig`` keys plus ``BUCKET_NAME``. ``neurocaas deploy`` writes them into the
Chalice stage from the blueprint; the handler reads them when an event arrives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chalicelib.exceptions import SettingsError

DEFAULT_DURATION_MINUTES = 60
DEFAULT_DEPLOY_LIMIT = 100
DEFAULT_MAX_RELAUNCHES = 2
SpotUse = Literal["never", "prefer", "only"]


def _as_list(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = json.loads(value) if value.startswith("[") else [value]
    return tuple(str(v) for v in value)


class AnalysisSettings(BaseModel):
    """Everything the job manager needs to know about one analysis."""

    model_config = ConfigDict(frozen=True)

    bucket_name: str
    region: str = "us-east-1"
    ami: str
    instance_type: str
    allowed_instance_types: tuple[str, ...] = ()
    fallback_instance_types: tuple[str, ...] = ()
    bypass_buckets: tuple[str, ...] = ()
    command: str
    iam_role: str = ""
    key_name: str = ""
    security_groups: tuple[str, ...] = ()
    default_duration: float = Field(DEFAULT_DURATION_MINUTES, gt=0)
    deploy_limit: int = Field(DEFAULT_DEPLOY_LIMIT, ge=1)
    maxcost: float | None = None
    postprocess: str = ""
    spot: SpotUse = "never"
    max_relaunches: int = Field(DEFAULT_MAX_RELAUNCHES, ge=0, le=10)

    @field_validator(
        "allowed_instance_types", "fallback_instance_types", "bypass_buckets", "security_groups",
        mode="before",
    )
    @classmethod
    def _listify(cls, value: Any) -> tuple[str, ...]:
        return _as_list(value)

    @property
    def instance_types_allowed(self) -> tuple[str, ...]:
        """The blueprint default first, then the rest of the allow-list."""
        rest = tuple(t for t in self.allowed_instance_types if t != self.instance_type)
        return (self.instance_type, *rest)

    @classmethod
    def from_blueprint_document(cls, document: Mapping[str, Any]) -> "AnalysisSettings":
        config = document["Lambda"]["LambdaConfig"]
        return cls.from_environ({**_environment_of(config), "BUCKET_NAME": document["PipelineName"],
                                 "REGION": config.get("REGION", document.get("REGION", "us-east-1"))})

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "AnalysisSettings":
        """Read the settings from the Lambda environment; a missing key is a deployment error."""
        missing = [k for k in ("BUCKET_NAME", "AMI", "INSTANCE_TYPE", "COMMAND") if not environ.get(k)]
        if missing:
            raise SettingsError(
                "This analysis is not fully deployed (missing settings: "
                + ", ".join(missing) + "). Ask the analysis developer to run `neurocaas deploy` again."
            )
        fields = {
            "bucket_name": environ["BUCKET_NAME"],
            "region": environ.get("REGION") or environ.get("AWS_REGION") or "us-east-1",
            "ami": environ["AMI"],
            "instance_type": environ["INSTANCE_TYPE"],
            "allowed_instance_types": environ.get("ALLOWED_INSTANCE_TYPES"),
            "fallback_instance_types": environ.get("FALLBACK_INSTANCE_TYPES"),
            "bypass_buckets": environ.get("BYPASS_BUCKETS"),
            "command": environ["COMMAND"],
            "iam_role": environ.get("IAM_ROLE", ""),
            "key_name": environ.get("KEY_NAME", ""),
            "security_groups": environ.get("SECURITY_GROUPS"),
            "default_duration": environ.get("DEFAULT_DURATION") or DEFAULT_DURATION_MINUTES,
            "deploy_limit": environ.get("DEPLOY_LIMIT") or DEFAULT_DEPLOY_LIMIT,
            "maxcost": environ.get("MAXCOST") or None,
            "postprocess": environ.get("POSTPROCESS", ""),
            "spot": environ.get("SPOT") or "never",
            "max_relaunches": environ.get("MAX_RELAUNCHES") or DEFAULT_MAX_RELAUNCHES,
        }
        try:
            return cls(**fields)
        except ValidationError as exc:
            names = ", ".join(str(e["loc"][0]).upper() for e in exc.errors())
            raise SettingsError(
                f"This analysis's settings are invalid ({names}). Ask the analysis developer to "
                "check the blueprint with `neurocaas blueprint check` and deploy again."
            ) from exc

    def to_environ(self) -> dict[str, str]:
        """The Lambda environment that reproduces these settings (see :meth:`from_environ`)."""
        environ = {
            "BUCKET_NAME": self.bucket_name,
            "REGION": self.region,
            "AMI": self.ami,
            "INSTANCE_TYPE": self.instance_type,
            "COMMAND": self.command,
            "IAM_ROLE": self.iam_role,
            "KEY_NAME": self.key_name,
            "DEFAULT_DURATION": _number(self.default_duration),
            "DEPLOY_LIMIT": str(self.deploy_limit),
            "ALLOWED_INSTANCE_TYPES": json.dumps(list(self.allowed_instance_types)),
            "FALLBACK_INSTANCE_TYPES": json.dumps(list(self.fallback_instance_types)),
            "BYPASS_BUCKETS": json.dumps(list(self.bypass_buckets)),
            "SECURITY_GROUPS": json.dumps(list(self.security_groups)),
            "SPOT": self.spot,
            "MAX_RELAUNCHES": str(self.max_relaunches),
        }
        if self.maxcost is not None:
            environ["MAXCOST"] = _number(self.maxcost)
        if self.postprocess:
            environ["POSTPROCESS"] = self.postprocess
        return environ


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _environment_of(config: Mapping[str, Any]) -> dict[str, str]:
    """LambdaConfig values as environment strings: lists and booleans as JSON."""
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in config.items()
    }
