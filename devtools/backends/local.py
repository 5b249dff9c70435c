"""The local stack's development instance: a workspace directory on this machine.

The instance is registered in the stack's EC2 (tagged ``neurocaas-dev``, so the job runner leaves
it alone) and laid out in ``{state_dir}/instances/{id}/home`` from its image, exactly as the runner
lays out job instances; the developer enters that folder and installs into it. Commands run there
in the background; ``create_image`` copies the home to ``{state_dir}/images/{ami}`` and registers
it as an AMI of the stack, so jobs launched from an updated blueprint run on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from chalicelib.awsclient import AWSClient
from chalicelib.blueprint import Blueprint
from devtools.backends import (
    InstanceView,
    LaunchRequest,
    RunRequest,
    localrun,
    watchdog,
)
from devtools.backends.ec2 import DEV_TAG, DevEC2, aws_call, launch_tags, view
from devtools.exceptions import DevToolsError
from devtools.writeback import write_back
from devtools.images import ResolvedImage, image_code, retirement_note
from service.connection import NotConnected, connect, default_state_dir
from service.local.layout import boot_environment, lay_out, localise

if TYPE_CHECKING:
    from service.local.stack import LocalStack

RETRIES = Config(retries={"mode": "standard", "max_attempts": 3})
IMAGES_FILE = "images.json"


class LocalBackend:
    """Development instances on a running local stack (in this process, or reached by its endpoint)."""

    target = "local"

    def __init__(self, *, state_dir: Path, endpoint: str, credentials: dict[str, str], region: str,
                 environment: dict[str, str], stack: LocalStack | None = None, minute_seconds: float = 60.0) -> None:
        self.state_dir, self.endpoint, self.credentials, self.region = state_dir.resolve(), endpoint, credentials, region
        self.environment, self.stack, self.minute_seconds = environment, stack, minute_seconds
        self.state_root = self.state_dir / "dev"
        self.ec2 = DevEC2(self.client("ec2"))

    @classmethod
    def for_stack(cls, stack: LocalStack) -> LocalBackend:
        """The backend of a stack running in this process (tests, notebooks)."""
        from service.local.stack import CREDENTIALS, REGION

        return cls(state_dir=stack.state_dir, endpoint=stack.endpoint, credentials=dict(CREDENTIALS), region=REGION,
                   environment=stack.instance_environment(), stack=stack, minute_seconds=stack.options.minute_seconds)

    @classmethod
    def connect(cls, state_dir: Path | None = None) -> LocalBackend:
        """The backend of the stack ``neurocaas local up`` runs (found through its connection file)."""
        directory = state_dir or default_state_dir()
        try:
            connection = connect(state_dir=directory)
        except NotConnected as error:
            raise DevToolsError(str(error)) from None
        assert connection.endpoint and connection.region
        environment = {**connection.credentials, "AWS_ENDPOINT_URL": connection.endpoint,
                       "AWS_DEFAULT_REGION": connection.region, "AWS_EC2_METADATA_DISABLED": "true",
                       "NEUROCAAS_STATUS_INTERVAL": "5", "LANG": "C.UTF-8"}
        return cls(state_dir=directory, endpoint=connection.endpoint, credentials=connection.credentials,
                   region=connection.region, environment=environment)

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.region, config=RETRIES,
                            aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"])

    def aws(self) -> AWSClient:
        return AWSClient(self.client("s3"), self.ec2.ec2, self.client("ssm"))

    # --- images -------------------------------------------------------------------------------
    def _images(self) -> dict[str, Path]:
        if self.stack is not None:
            return dict(self.stack.images)
        path = self.state_dir / IMAGES_FILE
        return {k: Path(v) for k, v in json.loads(path.read_text()).items()} if path.exists() else {}

    def _register(self, ami: str, folder: Path) -> None:
        """Tell the stack which folder holds what ``ami`` holds (kept in its images.json)."""
        if self.stack is not None:
            self.stack.register_image(ami, folder)
            return
        images = {**{k: str(v) for k, v in self._images().items()}, ami: str(folder.resolve())}
        temporary = self.state_dir / f"{IMAGES_FILE}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(images, indent=1))
        os.replace(temporary, self.state_dir / IMAGES_FILE)

    def _new_ami(self, name: str, description: str, folder: Path, blueprint: str = "") -> str:
        ami = str(aws_call("registering the image", lambda: self.ec2.ec2.register_image(
            Name=name, Description=description[:255], RootDeviceName="/dev/sda1",
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}]))["ImageId"])
        if blueprint:
            aws_call("tagging the image", lambda: self.ec2.ec2.create_tags(
                Resources=[ami], Tags=[{"Key": DEV_TAG, "Value": blueprint}]))
        self._register(ami, folder)
        return ami

    def resolve_ami(self, ami: str | None, blueprint: Blueprint) -> ResolvedImage:
        if ami is None:
            return ResolvedImage(blueprint.settings.ami)
        code = image_code(ami)
        if code is None:
            return ResolvedImage(ami)
        bare = self.state_dir / "images" / "bare"
        bare.mkdir(parents=True, exist_ok=True)
        known = [k for k, v in self._images().items() if v == bare.resolve() and self.image_state(k)]
        found = known[0] if known else self._new_ami(f"neurocaas-local-bare-{code.code}",
                                                    "A bare workspace (the local stand-in for base images)", bare)
        return ResolvedImage(found, retirement_note(code))

    def image_state(self, ami: str) -> str | None:
        return self.ec2.image_state(ami)

    def _folder(self, ami: str, blueprint: Blueprint) -> Path:
        folder = self._images().get(ami)
        if folder is None and ami == blueprint.settings.ami and blueprint.local_image is not None:
            folder = blueprint.local_image
        if folder is None or not folder.is_dir():
            raise DevToolsError(f"{ami} has no image folder on the local stack: launch the blueprint's own image "
                                "(with LocalImage), a code such as ubuntu22, or an image made with create_image.")
        return folder

    # --- instances ----------------------------------------------------------------------------
    def _dir(self, instance_id: str) -> Path:
        return self.state_dir / "instances" / instance_id

    def _view(self, item: dict[str, Any]) -> InstanceView:
        return view(item, address=str(self._dir(item["InstanceId"]) / "home"))

    def launch(self, request: LaunchRequest) -> InstanceView:
        folder = self._folder(request.ami, request.blueprint)
        item = self.ec2.run({"ImageId": request.ami, "InstanceType": request.instance_type, "MinCount": 1,
                             "MaxCount": 1, "InstanceInitiatedShutdownBehavior": "stop",
                             "TagSpecifications": launch_tags(request)})
        try:
            lay_out(self._dir(item["InstanceId"]), folder, develop=True)
            watchdog.spawn(self._dir(item["InstanceId"]), item["InstanceId"], self.minute_seconds, self.environment)
        except OSError as error:
            self.ec2.terminate(item["InstanceId"])
            raise DevToolsError(f"Could not lay out the workspace of {item['InstanceId']}: {error}.") from error
        return self.describe(item["InstanceId"]) or self._view(item)

    def describe(self, instance_id: str) -> InstanceView | None:
        item = self.ec2.item(instance_id)
        return self._view(item) if item else None

    def live_instances(self, blueprint: str) -> list[InstanceView]:
        return [self._view(i) for i in self.ec2.live(blueprint)]

    def start(self, instance_id: str, lifetime_minutes: int) -> InstanceView:
        if not (self._dir(instance_id) / "home").is_dir():
            raise DevToolsError(f"The workspace of {instance_id} is gone; launch a new instance.")
        self.ec2.start(instance_id, lifetime_minutes)
        watchdog.spawn(self._dir(instance_id), instance_id, self.minute_seconds, self.environment)
        return self._described(instance_id)

    def stop(self, instance_id: str) -> InstanceView:
        self.ec2.stop(instance_id)
        watchdog.end(self._dir(instance_id))
        localrun.stop_all(self._dir(instance_id))
        return self._described(instance_id)

    def terminate(self, instance_id: str) -> None:
        self.ec2.terminate(instance_id)
        directory = self._dir(instance_id)
        watchdog.end(directory)
        localrun.stop_all(directory)
        for part in ("home", "bin"):  # the disk goes, as on AWS; the runs' logs stay
            shutil.rmtree(directory / part, ignore_errors=True)

    def _described(self, instance_id: str) -> InstanceView:
        found = self.describe(instance_id)
        if found is None:
            raise DevToolsError(f"The local stack no longer knows {instance_id} (was it restarted?).")
        return found

    def set_lifetime(self, instance_id: str, minutes: float) -> None:
        self.ec2.set_lifetime(instance_id, minutes)

    def create_image(self, instance: InstanceView, name: str, blueprint: Blueprint) -> str:
        home = self._dir(instance.instance_id) / "home"
        if not home.is_dir():
            raise DevToolsError(f"The workspace of {instance.instance_id} is gone; there is nothing to save.")
        snapshot = self.state_dir / "images" / f"snapshot-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
        shutil.copytree(home, snapshot, symlinks=True)
        ami = self._new_ami(name, f"{blueprint.name}: saved from {instance.instance_id}", snapshot, blueprint.name)
        final = snapshot.with_name(ami)
        snapshot.rename(final)
        self._register(ami, final)
        return ami

    def write_back_image(self, blueprint: Blueprint, ami: str) -> list[Path]:
        """The saved workspace is written into the blueprint's image folder (``LocalImage``), so that the
        repository, not this machine's state folder, holds the image."""
        saved = self._images().get(ami)
        if blueprint.local_image is None or saved is None:
            return []
        return [blueprint.local_image] if write_back(saved, blueprint.local_image) else []

    # --- commands -----------------------------------------------------------------------------
    def run(self, request: RunRequest) -> dict[str, str]:
        directory = self._dir(request.instance.instance_id)
        home, run_dir = directory / "home", directory / "runs" / request.name
        if not home.is_dir():
            raise DevToolsError(f"The workspace of {request.instance.instance_id} is gone; launch a new instance.")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "user-data.sh").write_text(localise(request.user_data, home))
        environment = boot_environment(
            self.environment, bin_dir=directory / "bin", home=home, instance_id=request.instance.instance_id,
            instance_dir=run_dir, launch_index=request.launch_index, log_dir=run_dir / localrun.COMMAND_LOG,
            work_dir=run_dir / "work")
        localrun.write_spec(run_dir, {
            "cwd": str(home), "environment": environment, "minute_seconds": self.minute_seconds,
            "timeout_seconds": request.lifetime_minutes * self.minute_seconds, "bucket": request.bucket,
            "prefix": request.prefix, "label": request.label, "status_key": request.status_key,
            "instance_id": request.instance.instance_id})
        with (run_dir / "supervisor.log").open("ab") as log:
            supervisor = subprocess.Popen([sys.executable, "-m", "devtools.backends.localrun", str(run_dir)],
                                          env={**os.environ, **self.environment}, stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        (run_dir / localrun.SUPERVISOR).write_text(str(supervisor.pid))
        return {"run": str(run_dir)}

    def run_state(self, handle: dict[str, str]) -> str:
        return localrun.state(Path(handle["run"]))

    def run_output(self, handle: dict[str, str]) -> dict[str, str]:
        return localrun.output(Path(handle["run"]))
