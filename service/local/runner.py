"""The local instance runner: each launched instance's boot script, run as a subprocess.

Each instance gets its own directory, laid out from its image (the blueprint's ``LocalImage``)
with the remote scripts installed, as an AMI would hold them, and seen at ``/home/ubuntu`` (see
``homemount.py``), so unmodified NeuroCAAS commands and image scripts work. At most ``slots``
instances run at once (the rest stay ``pending``; one terminated meanwhile never starts);
``shutdown``/``poweroff`` end the instance; an instance that outlives its ``Timeout`` tag is
killed and its dataset marked TIMED OUT.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chalicelib.awsclient import AWSClient
from chalicelib.jobstate.statusfile import finish_instance_dataset
from chalicelib.records import DatasetState
from service.local.instances import ENDED, Launched, LocalEC2
from service.local.homemount import HomeMount
from service.local.layout import boot_environment, last_lines, lay_out


class Journal:
    """Which instances the runner has started and how they ended, kept in the state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.entries: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.exists() else {}

    def set(self, instance_id: str, **fields: str) -> None:
        with self._lock:
            self.entries.setdefault(instance_id, {}).update(fields)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self.entries, indent=1))
            os.replace(temporary, self.path)

    def unfinished(self) -> dict[str, dict[str, str]]:
        return {i: e for i, e in self.entries.items() if e.get("state") in ("pending", "running")}


class InstanceRunner:
    """Runs the local stack's instances."""

    def __init__(self, ec2: LocalEC2, s3: Any, *, state_dir: Path, images: Callable[[str], Path | None],
                 analyses: Callable[[], set[str]], environment: dict[str, str], slots: int | None = None,
                 minute_seconds: float = 60.0, poll_seconds: float = 0.2, log: Callable[[str], None] = print,
                 on_state: Callable[[str, str], None] | None = None) -> None:
        self.ec2, self.s3, self.images, self.analyses = ec2, s3, images, analyses
        self.environment, self.minute_seconds, self.poll_seconds, self.log = environment, minute_seconds, poll_seconds, log
        self.on_state = on_state or (lambda instance_id, state: None)
        self.root = state_dir / "instances"
        self.root.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(state_dir / "instances.json")
        self.pool = ThreadPoolExecutor(max_workers=slots or os.cpu_count() or 2, thread_name_prefix="instance")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.home_mount = HomeMount.probe(log)
        self.seen: set[str] = set()
        self.terminated_elsewhere: set[str] = set()
        self.lost: dict[str, str] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="instance-runner", daemon=True)

    def recover(self) -> int:
        """Mark datasets whose instances were running when the stack last stopped as FAILED."""
        lost = self.journal.unfinished()
        for instance_id, entry in lost.items():
            self._finish(entry.get("analysis", ""), instance_id, DatasetState.FAILED,
                         "The local stack stopped while this dataset was running. Submit it again.")
            self.journal.set(instance_id, state="terminated", ended="stack stopped")
            drop_disk(self.root / instance_id)
            # EC2 forgot it with the last stop: its end is reported once its analysis is served again.
            self.lost[instance_id] = entry.get("analysis", "")
        return len(lost)

    def _finish(self, analysis: str, instance_id: str, state: DatasetState, reason: str) -> None:
        """Give the instance's dataset a final state unless it reported one (found via the open-job markers)."""
        if analysis:
            finish_instance_dataset(AWSClient(self.s3, None, None), analysis, instance_id, state, reason,
                                    datetime.now(timezone.utc))

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop discovering instances and end the running ones (they are failed on the next start)."""
        self.stopping.set()
        self.thread.join(timeout=5)
        for process in list(self.processes.values()):
            _kill_group(process)
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _poll(self) -> None:
        while not self.stopping.wait(self.poll_seconds):
            try:
                served = self.analyses()
                for instance_id in [i for i, analysis in self.lost.items() if analysis in served]:
                    del self.lost[instance_id]
                    self.on_state(instance_id, "terminated")
                self._end_terminated()
                for launched in self.ec2.launched(self.analyses()):
                    if launched.instance_id not in self.seen:
                        self.seen.add(launched.instance_id)
                        if not self.ec2.set_state(launched.instance_id, "pending"):
                            continue  # terminated before the runner saw it
                        self.journal.set(launched.instance_id, state="pending",
                                         analysis=launched.tags.get("analysis", ""))
                        self.pool.submit(self._run_safely, launched)
            except Exception as error:  # the endpoint going away while stopping, for one
                if not self.stopping.is_set():
                    self.log(f"instance runner: {error}")

    def _end_terminated(self) -> None:
        """Stop the processes of instances someone terminated (a cancel, a reaper), like EC2 would."""
        for instance_id, state in self.ec2.states(list(self.processes)).items():
            process = self.processes.get(instance_id)
            if process is not None and state in ENDED:
                self.terminated_elsewhere.add(instance_id)
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _run_safely(self, launched: Launched) -> None:
        try:
            self._run(launched)
        except Exception as error:
            self.log(f"instance {launched.instance_id} failed to run: {error}")
            self._end(launched, f"could not run: {error}")
        finally:
            drop_disk(self.root / launched.instance_id)

    def _run(self, launched: Launched) -> None:
        if self.stopping.is_set():
            return
        if self.ec2.states([launched.instance_id]).get(launched.instance_id) in ENDED:  # cancelled while waiting
            self.journal.set(launched.instance_id, state="terminated", ended="terminated before it started")
            self.log(f"instance {launched.instance_id} terminated before it started")
            self.on_state(launched.instance_id, "terminated")
            return
        directory = self.root / launched.instance_id
        home = lay_out(directory, self.images(launched.image_id))
        script = directory / "user-data.sh"
        script.write_text(self.home_mount.user_data(self.ec2.user_data(launched.instance_id), home))
        environment = boot_environment(
            self.environment, bin_dir=directory / "bin", home=self.home_mount.seen_home(home),
            instance_id=launched.instance_id, instance_dir=directory, launch_index=launched.launch_index,
            log_dir=directory / "logs", work_dir=directory / "work")
        lifetime = launched.lifetime_minutes * self.minute_seconds
        with (directory / "console.log").open("wb") as console:
            command, unmount = self.home_mount.command(home, ["bash", str(script)])
            process = subprocess.Popen(command, cwd=home, env=environment, stdout=console,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            self.processes[launched.instance_id] = process
            if self.ec2.set_state(launched.instance_id, "running"):
                self.journal.set(launched.instance_id, state="running")
                self.on_state(launched.instance_id, "running")
            else:  # terminated between the check above and now: it must not run
                self.terminated_elsewhere.add(launched.instance_id)
                _kill_group(process)
            try:
                code = process.wait(timeout=lifetime)
                outcome = "powered off" if (directory / "poweroff").exists() else f"exited with code {code}"
            except subprocess.TimeoutExpired:
                _kill_group(process)
                outcome = "timed out"
                self._finish(launched.tags.get("analysis", ""), launched.instance_id, DatasetState.TIMED_OUT,
                             f"The analysis ran past its lifetime of {launched.lifetime_minutes:g} minutes and "
                             "was stopped. Set a longer __duration__ in the parameter file if it needs more time.")
            finally:
                self.processes.pop(launched.instance_id, None)
                unmount()
        if self.stopping.is_set():
            return  # left 'running' in the journal: failed with a reason on the next start
        if launched.instance_id in self.terminated_elsewhere:
            self.journal.set(launched.instance_id, state="terminated", ended="terminated")
            self.log(f"instance {launched.instance_id} terminated")
            self.on_state(launched.instance_id, "terminated")
            return
        if outcome != "timed out":
            tail = last_lines(directory / "console.log")
            self._finish(launched.tags.get("analysis", ""), launched.instance_id, DatasetState.FAILED,
                         f"The instance ended ({outcome}) without reporting a result. Last output: {tail}")
        self._end(launched, outcome)

    def _end(self, launched: Launched, outcome: str) -> None:
        try:
            self.ec2.terminate(launched.instance_id)
        finally:
            self.journal.set(launched.instance_id, state="terminated", ended=outcome)
            self.log(f"instance {launched.instance_id} {outcome}")
        self.on_state(launched.instance_id, "terminated")


def drop_disk(directory: Path) -> None:
    """An ended instance's disk goes, as on EC2: its home (image copy, downloaded inputs), work
    folder and shims. Its logs, console output and boot script stay for inspection."""
    for part in ("home", "work", "bin"):
        shutil.rmtree(directory / part, ignore_errors=True)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
