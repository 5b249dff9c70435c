"""``submit_job_log``: a local submit.json through the job manager's own code, run on the development instance.

The submission is read, claimed, validated and planned exactly as the Lambda handler does it (the
same refusals, certificate, status files and job.json); only the launch differs: each dataset's
boot script goes to the development instance instead of a new one, and nothing terminates it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.awsclient import AWSClient, LaunchedInstance, StoredObject
from chalicelib.blueprint import Blueprint
from chalicelib.certificate import Certificate
from chalicelib.exceptions import AWSFailure, Step, SubmissionRefused
from chalicelib.executor import JobExecutor
from chalicelib.jobmanager import JobManager, Outcome, utcnow
from chalicelib.jobstore import JobStore
from chalicelib.plan import JobPlan, LaunchBatch
from chalicelib.jobstate.reconcile import Reconciler
from chalicelib.jobstate.statusfile import FINAL, finish_from_outside
from chalicelib.records import Capacity, DatasetState, JobRecord
from chalicelib.submission import decode
from devtools.backends import DevBackend, InstanceView, RunRequest
from devtools.exceptions import DevToolsError
from devtools.state import DevJob, RunRecord

logger = logging.getLogger("devtools.jobs")
ENDED_COMMANDS = {"Success", "Failed", "TimedOut", "Cancelled"}


class DevExecutor(JobExecutor):
    """The job manager's executor, sending each dataset to the development instance."""

    def __init__(self, aws: AWSClient, store: JobStore, clock: Callable[[], datetime], log: Any, *,
                 backend: DevBackend, instance: InstanceView) -> None:
        super().__init__(aws, store, clock, log)
        self.backend, self.instance = backend, instance
        self.pending: list[tuple[LaunchBatch, int]] = []
        self.runs: list[RunRecord] = []

    def execute(self, plan: JobPlan, record: JobRecord, certificate: Certificate, resumed: bool) -> JobRecord:
        certificate.note(f"Development run: every dataset runs on development instance {self.instance.instance_id} "
                         "instead of a new instance.")
        record.ami = self.instance.image_id
        record = super().execute(plan, record, certificate, resumed)
        # Started only once the job's records exist, so the instance's first report is never overwritten.
        by_slot = {(d.batch, d.launch_index): d for d in plan.datasets}
        try:
            for batch, index in self.pending:
                dataset = by_slot[(batch.number, index)]
                handle = self.backend.run(RunRequest(
                    instance=self.instance, user_data=batch.user_data, launch_index=index,
                    name=f"{plan.tags['job']}-{batch.number}-{index}", label=dataset.label,
                    lifetime_minutes=plan.lifetime_minutes, bucket=plan.submission.location.bucket,
                    prefix=plan.submission.location.prefix, status_key=dataset.status_key,
                    input_key=dataset.input.key))
                self.runs.append(RunRecord(label=dataset.label, status_key=dataset.status_key, handle=handle))
        except DevToolsError as error:
            self._abort(plan, record, certificate, [], AWSFailure(error.message), Step.PROCESSING)
            raise
        return record

    def job_instances(self, instance_of: dict[tuple[int, int], str]) -> list[str]:
        """None: the development instance outlives the job, which ends when its datasets have."""
        return []

    def _launch(self, plan: JobPlan, batch: LaunchBatch, record: JobRecord,
                certificate: Certificate) -> tuple[list[LaunchedInstance], Capacity, str, str]:
        self.pending.extend((batch, index) for index in range(batch.count))
        instances = [LaunchedInstance(self.instance.instance_id, index) for index in range(batch.count)]
        return instances, Capacity.ON_DEMAND, "the development instance", batch.instance_type

    def _abort(self, plan: JobPlan, record: JobRecord, certificate: Certificate, launched: list[str],
               error: Exception, step: Step) -> None:
        super()._abort(plan, record, certificate, [], error, step)  # the development instance stays


class _Executors:
    """Builds the job's executor for the job manager and keeps it, to read what it started."""

    def __init__(self, backend: DevBackend, instance: InstanceView) -> None:
        self.backend, self.instance = backend, instance
        self.built: DevExecutor | None = None

    def __call__(self, aws: AWSClient, store: JobStore, clock: Callable[[], datetime], log: Any) -> DevExecutor:
        self.built = DevExecutor(aws, store, clock, log, backend=self.backend, instance=self.instance)
        return self.built


def default_group(body: bytes, blueprint: Blueprint) -> str:
    """The group a local submit file speaks for: its first dataset's top folder, else the first group."""
    try:
        names = decode(body).get("dataname")
    except SubmissionRefused:
        names = None
    first = names if isinstance(names, str) else (names[0] if isinstance(names, list) and names else None)
    if isinstance(first, str) and "/" in first and not first.startswith("s3://"):
        return first.split("/", 1)[0]
    if blueprint.affiliates:
        return blueprint.affiliates[0].name
    raise DevToolsError("Cannot tell which group this submission is for: pass group=... (--group).")


def submit(blueprint: Blueprint, backend: DevBackend, instance: InstanceView, submit_path: Path,
           group: str | None = None) -> tuple[DevJob, JobPlan]:
    """Plan the submission like the job manager and start it on ``instance``; refusals raise."""
    try:
        body = submit_path.read_bytes()
    except OSError as error:
        raise DevToolsError(f"Cannot read the submit file {submit_path}: {error.strerror or error}.") from error
    settings = blueprint.settings.model_copy(update={"region": backend.region})
    aws = backend.aws()
    try:
        aws.s3.head_bucket(Bucket=settings.bucket_name)
    except ClientError as error:
        raise DevToolsError(f"The analysis bucket {settings.bucket_name} does not exist on the {backend.target} "
                            "target; deploy the blueprint first.") from error
    except BotoCoreError as error:
        raise DevToolsError(f"Could not reach the {backend.target} target ({error}); check it is running.") from error
    key = f"{group or default_group(body, blueprint)}/submissions/{submit_path.name}"
    executors = _Executors(backend, instance)
    manager = JobManager(settings, aws, logger=logger, executor=executors,
                         analysis_version=f"development instance {instance.instance_id} ({instance.image_id})")
    etag = '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'
    result = manager.handle_stored(settings.bucket_name, key, StoredObject(body, etag), Certificate(started=utcnow()))
    where = f"s3://{result.location.bucket}/{result.location.certificate}" if result.location else "no certificate"
    if result.outcome is Outcome.DUPLICATE:
        raise DevToolsError(f"This submit file already ran as a job ({where}); give it a new timestamp to run it again.")
    if result.outcome is not Outcome.STARTED or result.plan is None or executors.built is None:
        raise DevToolsError(f"{result.message.rstrip('.')}. (certificate: {where})")
    location = result.plan.submission.location
    job = DevJob(job_id=result.plan.job_id, instance_id=instance.instance_id, bucket=location.bucket,
                 prefix=location.prefix, submitted=datetime.now(timezone.utc), runs=executors.built.runs)
    return job, result.plan


def _read_json(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    try:
        document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except (ClientError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def finish_run(s3: Any, bucket: str, prefix: str, run: RunRecord, instance_id: str, state: DatasetState,
               reason: str) -> bool:
    """Give one dataset of a development job a final state, unless it already reported one; the
    job's record follows through the reconciler."""
    aws = AWSClient(s3, None, None)
    dataset = _read_json(s3, bucket, f"{prefix}/logs/job.json").get("datasets", {}).get(run.label, {})
    wrote, _ = finish_from_outside(aws, bucket, run.status_key, state, reason,
                                   input_key=str(dataset.get("input", "")), instance=instance_id,
                                   at=datetime.now(timezone.utc))
    Reconciler(aws, utcnow).reconcile(f"s3://{bucket}/{prefix}", refresh=True)
    return wrote


@dataclass
class JobReport:
    """How a development job is doing: the job, each dataset's status and each command's state."""

    job_id: str
    folder: str
    state: str
    datasets: dict[str, str] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """The datasets' status in one word: SUCCESS when all succeeded, else the first problem or progress."""
        values = list(self.datasets.values()) or ["INITIALIZING"]
        if all(v == DatasetState.SUCCESS.value for v in values):
            return DatasetState.SUCCESS.value
        finals = {s.value for s in FINAL}
        if all(v in finals for v in values):
            return next(v for v in values if v != DatasetState.SUCCESS.value)
        return DatasetState.IN_PROGRESS.value if any(v != DatasetState.INITIALIZING.value for v in values) \
            else DatasetState.INITIALIZING.value

    @property
    def done(self) -> bool:
        """Whether every command on the instance has ended."""
        return all(c in ENDED_COMMANDS for c in self.commands.values())

    def __str__(self) -> str:
        lines = [f"job {self.job_id}: {self.status} (job {self.state}) in {self.folder}"]
        lines += [f"  {label}: {status} (command {self.commands.get(label, '?')})"
                  for label, status in self.datasets.items()]
        return "\n".join(lines)


def report(backend: DevBackend, job: DevJob) -> JobReport:
    """Read the job's records; a command that ended without reporting gets its dataset FAILED."""
    s3 = backend.aws().s3
    result = JobReport(job.job_id, f"s3://{job.bucket}/{job.prefix}/", "")
    for run in job.runs:
        command = backend.run_state(run.handle)
        status = str(_read_json(s3, job.bucket, run.status_key).get("status", "INITIALIZING"))
        if command in ENDED_COMMANDS and status not in {s.value for s in FINAL}:
            state = DatasetState.TIMED_OUT if command == "TimedOut" else DatasetState.FAILED
            reason = f"The command on the development instance ended ({command}) without reporting a result."
            if finish_run(s3, job.bucket, job.prefix, run, job.instance_id, state, reason):
                status = state.value
        result.commands[run.label], result.datasets[run.label] = command, status
    Reconciler(AWSClient(s3, None, None), utcnow).reconcile(f"s3://{job.bucket}/{job.prefix}", refresh=True)
    result.state = str(_read_json(s3, job.bucket, f"{job.prefix}/logs/job.json").get("state", "UNKNOWN"))
    return result
