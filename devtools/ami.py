"""``NeuroCAASAMI``: from a bare machine to a saved image and an updated blueprint, from Python.

Compatible with NeuroCAAS's ``NeuroCaaSAMI`` (its method names, attributes and aliases), on AWS or
on the local stack. Everything it knows is kept in a state file, so a new session picks up the
current instance.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.blueprint import Blueprint, load_blueprint
from chalicelib.blueprint.loader import BLUEPRINT_FILE
from chalicelib.exceptions import BlueprintError
from devtools import gitops, jobs
from devtools import state as store
from devtools.backends import DevBackend, InstanceView, LaunchRequest
from devtools.exceptions import DevToolsError, NoInstance, UnsavedWork
from devtools.state import DevJob, DevState, ImageRecord

if TYPE_CHECKING:
    from service.local.stack import LocalStack

IMAGE_NAME = re.compile(r"^[A-Za-z0-9()\[\] ./'@_-]{3,128}$")


@dataclass(frozen=True)
class Lifetime:
    """How long the instance has been up since its last start, and how long it has left."""

    instance_id: str
    state: str
    minutes: float
    elapsed_minutes: float
    remaining_minutes: float

    def __str__(self) -> str:
        if self.state not in ("pending", "running"):
            return f"Instance {self.instance_id} is {self.state}; start it to give it a new lifetime."
        return (f"Instance {self.instance_id} has been up {self.elapsed_minutes:.1f} of its {self.minutes:g} minutes; "
                f"it stops itself in {max(self.remaining_minutes, 0):.1f} minutes unless you extend its lifetime.")


def choose_backend(target: str | None, stack: LocalStack | None, region: str) -> DevBackend:
    """The local stack by default (the one in this process, else the running one), or AWS when asked."""
    from devtools.backends.aws import AwsBackend
    from devtools.backends.local import LocalBackend

    if stack is not None:
        return LocalBackend.for_stack(stack)
    chosen = target or os.environ.get("NEUROCAAS_TARGET") or "local"
    if chosen == "aws":
        return AwsBackend(region)
    if chosen == "local":
        return LocalBackend.connect()
    raise DevToolsError(f"Unknown target {chosen!r}: use 'local' or 'aws'.")


class NeuroCAASAMI:
    """Develop an analysis's machine image: launch, test with real submissions, save, update the blueprint."""

    def __init__(self, path: str | Path, *, target: str | None = None, stack: LocalStack | None = None,
                 backend: DevBackend | None = None, say: Callable[[str], None] = print) -> None:
        folder = Path(path)
        folder = folder.parent if folder.name == BLUEPRINT_FILE else folder
        self.blueprint = _load(folder)
        self.config_filepath, self.config_fullpath = BLUEPRINT_FILE, str(folder / BLUEPRINT_FILE)
        self.backend = backend or choose_backend(target, stack, self.blueprint.settings.region)
        self.say = say
        self.state_path = store.state_file(self.backend.state_root, folder, self.blueprint.name)
        self.state = store.load(self.state_path, folder, self.backend.target)

    # --- NeuroCAAS's attributes ----------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return self.blueprint.document

    @property
    def instance(self) -> InstanceView | None:
        """The current development instance as it is now (None when there is none)."""
        self._load()
        return self.backend.describe(self.state.instance_id) if self.state.instance_id else None

    @property
    def ip(self) -> str:
        return self._load().address

    @property
    def instance_saved(self) -> bool:
        return self._load().instance_saved

    @property
    def instance_hist(self) -> list[str]:
        return list(self._load().instance_hist)

    @property
    def ami_hist(self) -> list[dict[str, Any]]:
        return [record.model_dump() for record in self._load().ami_hist]

    @property
    def commands(self) -> list[dict[str, Any]]:
        return [job.model_dump() for job in self._load().commands]

    # --- the instance ---------------------------------------------------------------------------
    def launch_ami(self, ami: str | None = None, instance_type: str | None = None, volume_size: int | None = None,
                   lifetime: int = 60, *, another: bool = False) -> InstanceView:
        """Launch a development instance from the blueprint's AMI, an AMI id or a code (``ubuntu22``...)."""
        if lifetime <= 0:
            raise DevToolsError(f"The lifetime must be a positive number of minutes, not {lifetime}.")
        state = self._load()
        live = self.backend.live_instances(self.blueprint.name)
        if live and not another:
            raise DevToolsError(
                f"{self.blueprint.name} already has a development instance up ({', '.join(i.instance_id for i in live)}); "
                "use it, stop or terminate it, or ask for another (another=True, --another).")
        resolved = self.backend.resolve_ami(ami, self.blueprint)
        if resolved.note:
            self.say(f"Warning: {resolved.note}")
        previous = self.backend.describe(state.instance_id) if state.instance_id else None
        launched = self.backend.launch(LaunchRequest(
            blueprint=self.blueprint, ami=resolved.ami, instance_type=instance_type or self.blueprint.settings.instance_type,
            volume_size=volume_size, lifetime_minutes=lifetime))
        if previous is not None and previous.state not in ("terminated", "shutting-down") and not state.instance_saved:
            self.say(f"Note: {previous.instance_id} ({previous.state}) was never saved as an image; it is still there.")
        state.instance_hist.append(launched.instance_id)
        state.instance_id, state.address, state.ami = launched.instance_id, launched.address, launched.image_id
        state.instance_type, state.instance_saved = launched.instance_type, False
        self._save()
        self.say(f"Instance {launched.instance_id} is {launched.state} at {launched.address} "
                 f"(from {launched.image_id}, lifetime {lifetime} minutes).")
        return launched

    def launch_devinstance(self, ami: str | None = None, volume_size: int | None = None, timeout: int = 60,
                           DryRun: bool = False) -> InstanceView | None:
        """NeuroCAAS's name for :meth:`launch_ami`."""
        return None if DryRun else self.launch_ami(ami, volume_size=volume_size, lifetime=timeout)

    def assign_instance(self, instance_id: str) -> InstanceView:
        """Make an existing instance the current development instance."""
        found = self.backend.describe(instance_id)
        if found is None:
            raise NoInstance(f"Instance {instance_id} does not exist here.")
        state = self._load()
        if state.instance_id != instance_id:
            state.instance_hist.append(instance_id)
            state.instance_id, state.address, state.ami = instance_id, found.address, found.image_id
            state.instance_type, state.instance_saved = found.instance_type, False
            self._save()
        return found

    def start_devinstance(self, lifetime: int = 60) -> InstanceView:
        """Start the stopped instance again, with a fresh lifetime."""
        current = self.current()
        if current.state in ("pending", "running"):
            self.say(f"Instance {current.instance_id} is already {current.state}.")
            return current
        started = self.backend.start(current.instance_id, lifetime)
        self._load().address = started.address
        self._save()
        self.say(f"Instance {started.instance_id} is {started.state} at {started.address} (lifetime {lifetime} minutes).")
        return started

    def stop_devinstance(self) -> InstanceView:
        """Stop the instance; what it holds is kept, anything running on it ends."""
        current = self.current()
        if current.state in ("stopping", "stopped"):
            self.say(f"Instance {current.instance_id} is already {current.state}.")
            return current
        stopped = self.backend.stop(current.instance_id)
        self.say(f"Instance {stopped.instance_id} is {stopped.state}.")
        return stopped

    def terminate_devinstance(self, force: bool = False) -> None:
        """End the instance for good; refused while its work was never saved as an image, unless forced."""
        current = self.current()
        state = self._load()
        if not force:
            if not state.instance_saved:
                raise UnsavedWork(f"The work on {current.instance_id} was never saved as an image: save it with "
                                  "create_image(name) first, or terminate with force=True (--force) to discard it.")
            mine = [r.ImageId for r in state.ami_hist if r.instance_id == current.instance_id]
            pending = [ami for ami in mine[-1:] if self.backend.image_state(ami) not in ("available", None)]
            if pending:
                raise DevToolsError(f"Image {pending[0]} is still being created; terminate when it is available "
                                    "(or force it, which may lose the image).")
        self.backend.terminate(current.instance_id)
        state.instance_id, state.address, state.instance_saved = None, "", False
        self._save()
        self.say(f"Instance {current.instance_id} is terminating.")

    def get_lifetime(self) -> Lifetime:
        current = self.current()
        if current.since is None or current.timeout_minutes is None:
            raise DevToolsError(f"Instance {current.instance_id} has no lifetime tags; it is not a development instance.")
        elapsed = (datetime.now(timezone.utc) - current.since).total_seconds() / self.backend.minute_seconds
        return Lifetime(current.instance_id, current.state, current.timeout_minutes, elapsed,
                        current.timeout_minutes - elapsed)

    def extend_lifetime(self, minutes: float) -> Lifetime:
        """Give the running instance ``minutes`` more before it stops itself."""
        if minutes <= 0:
            raise DevToolsError(f"Extend the lifetime by a positive number of minutes, not {minutes}.")
        lifetime = self.get_lifetime()
        if lifetime.state not in ("pending", "running"):
            raise DevToolsError(f"Instance {lifetime.instance_id} is {lifetime.state}; start it (start_devinstance) "
                                "to give it a new lifetime.")
        self.backend.set_lifetime(lifetime.instance_id, lifetime.minutes + minutes)
        return self.get_lifetime()

    # --- images and the blueprint ----------------------------------------------------------------
    def create_image(self, name: str) -> str:
        """Save the instance as an image; returns its AMI id (the instance counts as saved)."""
        if not IMAGE_NAME.match(name):
            raise DevToolsError(f"{name!r} cannot name an image: use 3 to 128 letters, digits, spaces or ()[]./'@_-.")
        current = self.current()
        ami = self.backend.create_image(current, name, self.blueprint)
        state = self._load()
        state.ami_hist.append(ImageRecord(ImageId=ami, name=name, instance_id=current.instance_id,
                                          created=datetime.now(timezone.utc)))
        state.instance_saved = True
        self._save()
        self.say(f"Image {ami} ({name}) saved from {current.instance_id}; write it into the blueprint with "
                 "update_blueprint().")
        return ami

    def create_devami(self, name: str) -> str:
        """NeuroCAAS's name for :meth:`create_image`."""
        return self.create_image(name)

    def update_blueprint(self, ami_id: str | None = None, message: str | None = None) -> gitops.BlueprintUpdate:
        """Write the AMI (default: the last image saved) into the blueprint, with a git commit before and after."""
        state = self._load()
        if ami_id is None:
            if not state.ami_hist:
                raise DevToolsError("No image has been saved yet: create one with create_image(name), or pass ami_id.")
            ami_id = state.ami_hist[-1].ImageId
        if self.backend.image_state(ami_id) is None:
            raise DevToolsError(f"Image {ami_id} does not exist on the {self.backend.target} target.")
        update = gitops.update_blueprint(Path(self.config_fullpath), ami_id, message or "No message given.",
                                         write_back=lambda: self.backend.write_back_image(self.blueprint, ami_id))
        self.blueprint = _load(Path(self.config_fullpath).parent)
        self.say(f"Blueprint updated: {update.old_ami} -> {update.new_ami} (commits {update.before[:8]}, "
                 f"{update.after[:8]}).")
        return update

    # --- jobs ----------------------------------------------------------------------------------
    def submit_job_log(self, submitpath: str | Path, group: str | None = None) -> DevJob:
        """Run a local submit.json through the job manager's planning, on the development instance."""
        current = self.current()
        if current.state != "running":
            raise DevToolsError(f"Instance {current.instance_id} is {current.state}; start it first.")
        job, plan = jobs.submit(self.blueprint, self.backend, current, Path(submitpath), group)
        self._load().commands.append(job)
        self._save()
        self.say(plan.describe())
        self.say(f"Job {job.job_id} is running on {current.instance_id}; follow it with "
                 f"`neurocaas develop status {self.blueprint.path.parent if self.blueprint.path else 'BLUEPRINT'}` "
                 "(job_status() in Python).")
        return job

    def submit_job(self, submitpath: str | Path) -> DevJob:
        """NeuroCAAS's name for :meth:`submit_job_log`."""
        return self.submit_job_log(submitpath)

    def job_status(self, index: int = -1) -> jobs.JobReport:
        return jobs.report(self.backend, self._job(index))

    def job_output(self, index: int = -1) -> dict[str, dict[str, str]]:
        """Each dataset's command output (``stdout``, ``stderr``) so far."""
        job = self._job(index)
        return {run.label: self.backend.run_output(run.handle) for run in job.runs}

    # --- NeuroCAAS's checks ----------------------------------------------------------------------
    def get_instance_state(self) -> dict[str, str]:
        return {"Name": self.current().state}

    def check_running(self) -> bool:
        current = self.instance
        return current is not None and current.state == "running"

    def check_clear(self) -> bool:
        return not self.backend.live_instances(self.blueprint.name)

    # --- state ---------------------------------------------------------------------------------
    def _load(self) -> DevState:
        self.state = store.load(self.state_path, Path(self.config_fullpath).parent, self.backend.target)
        return self.state

    def _save(self) -> None:
        store.save(self.state_path, self.state)

    def current(self) -> InstanceView:
        """The current development instance as it is now; refuses when there is none."""
        state = self._load()
        if state.instance_id is None:
            raise NoInstance(f"{self.blueprint.name} has no development instance: launch one with launch_ami().")
        found = self.backend.describe(state.instance_id)
        if found is None or found.state == "terminated":
            raise NoInstance(f"Instance {state.instance_id} no longer exists: launch a new one with launch_ami().")
        return found

    def _job(self, index: int) -> DevJob:
        commands = self._load().commands
        try:
            return commands[index]
        except IndexError:
            raise DevToolsError(f"There is no job {index}: {len(commands)} job(s) were submitted.") from None


def _load(folder: Path) -> Blueprint:
    try:
        return load_blueprint(folder)
    except BlueprintError as error:
        problems = "; ".join(error.problems)
        raise DevToolsError(f"{error.message}{' ' + problems if problems else ''}") from error
