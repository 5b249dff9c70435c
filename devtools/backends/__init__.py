"""Where a development instance lives: AWS (an EC2 instance) or the local stack (a workspace).

Both backends keep the instance in EC2 (real, or the local stack's), tagged ``neurocaas-dev`` with
the blueprint's name, so its state and lifetime are read the same way; they differ in how the
instance is laid out, how commands reach it and how an image is made from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from chalicelib.awsclient import AWSClient
from chalicelib.blueprint import Blueprint
from devtools.images import ResolvedImage


@dataclass(frozen=True)
class InstanceView:
    """A development instance as EC2 (or the local stack) sees it now."""

    instance_id: str
    state: str
    address: str
    image_id: str
    instance_type: str
    timeout_minutes: float | None
    since: datetime | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def public_ip_address(self) -> str:
        """NeuroCAAS's name for the address (on the local stack, the workspace folder)."""
        return self.address


@dataclass(frozen=True)
class LaunchRequest:
    """What to launch: the image, the machine, its disk and its lifetime."""

    blueprint: Blueprint
    ami: str
    instance_type: str
    volume_size: int | None
    lifetime_minutes: int


@dataclass(frozen=True)
class RunRequest:
    """One dataset of a development job: a boot script and the launch index that picks its row."""

    instance: InstanceView
    user_data: str
    launch_index: int
    name: str
    label: str
    lifetime_minutes: int
    bucket: str
    prefix: str
    status_key: str
    input_key: str


class DevBackend(Protocol):
    """What :class:`devtools.NeuroCAASAMI` needs from where its instance lives."""

    target: str
    region: str
    minute_seconds: float
    state_root: Path

    def aws(self) -> AWSClient:
        """Clients for the job manager's own planning code (S3, EC2, SSM of this target)."""

    def resolve_ami(self, ami: str | None, blueprint: Blueprint) -> ResolvedImage:
        """The blueprint's AMI (None), an AMI id, or a code such as ``ubuntu22``, as an AMI id."""

    def launch(self, request: LaunchRequest) -> InstanceView:
        """Start a development instance and return it once it can be used."""

    def describe(self, instance_id: str) -> InstanceView | None:
        """The instance now, or None when it no longer exists."""

    def live_instances(self, blueprint: str) -> list[InstanceView]:
        """Development instances of a blueprint that are pending or running."""

    def start(self, instance_id: str, lifetime_minutes: int) -> InstanceView:
        """Start a stopped instance with a fresh lifetime."""

    def stop(self, instance_id: str) -> InstanceView:
        """Stop a running instance (its disk, or workspace, is kept)."""

    def terminate(self, instance_id: str) -> None:
        """End an instance for good."""

    def set_lifetime(self, instance_id: str, minutes: float) -> None:
        """Set the lifetime (minutes from its last start) after which the instance stops itself."""

    def create_image(self, instance: InstanceView, name: str, blueprint: Blueprint) -> str:
        """Save the instance as a machine image; returns its AMI id."""

    def image_state(self, ami: str) -> str | None:
        """``available``, ``pending``, ``failed``..., or None when the image does not exist."""

    def write_back_image(self, blueprint: Blueprint, ami: str) -> list[Path]:
        """Make the repository hold what ``ami`` holds where the target allows it (the local stack: the
        blueprint's image folder); returns the files changed, committed with the blueprint."""

    def run(self, request: RunRequest) -> dict[str, str]:
        """Start one dataset's boot script on the instance, in the background; returns a handle."""

    def run_state(self, handle: dict[str, str]) -> str:
        """How the command is doing: ``Pending``, ``InProgress``, ``Success``, ``Failed``, ``TimedOut``..."""

    def run_output(self, handle: dict[str, str]) -> dict[str, str]:
        """The command's ``stdout`` and ``stderr`` so far."""
