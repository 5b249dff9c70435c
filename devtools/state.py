"""The development state of one blueprint, kept in a JSON file so a new session picks it up.

The file lives outside the blueprint (in the local stack's state directory, or under
``$NEUROCAAS_HOME/dev/aws``), so it is never committed with it.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field


class ImageRecord(BaseModel):
    """An image made from a development instance (NeuroCAAS's ``ami_hist`` entries)."""

    ImageId: str
    name: str
    instance_id: str
    created: datetime


class RunRecord(BaseModel):
    """One dataset of a development job and how to ask its backend about it."""

    label: str
    status_key: str
    handle: dict[str, str]


class DevJob(BaseModel):
    """A job sent to a development instance by ``submit_job_log``."""

    job_id: str
    instance_id: str
    bucket: str
    prefix: str
    submitted: datetime
    runs: list[RunRecord] = Field(default_factory=list)


class DevState(BaseModel):
    """What NeuroCAAS kept on its ``NeuroCaaSAMI`` object, kept across sessions."""

    blueprint: str
    target: str
    instance_id: str | None = None
    address: str = ""
    ami: str = ""
    instance_type: str = ""
    instance_saved: bool = False
    instance_hist: list[str] = Field(default_factory=list)
    ami_hist: list[ImageRecord] = Field(default_factory=list)
    commands: list[DevJob] = Field(default_factory=list)


def state_file(root: Path, blueprint: Path, name: str) -> Path:
    """Where one blueprint's state is kept: one file per blueprint folder and target."""
    digest = hashlib.sha256(str(blueprint.resolve()).encode()).hexdigest()[:10]
    return root / f"{name}-{digest}.json"


def load(path: Path, blueprint: Path, target: str) -> DevState:
    if path.exists():
        return DevState.model_validate_json(path.read_text())
    return DevState(blueprint=str(blueprint.resolve()), target=target)


def save(path: Path, state: DevState) -> None:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(state.model_dump_json(indent=2))
    os.replace(temporary, path)
