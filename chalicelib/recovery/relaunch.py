"""Starting one dataset again on a new instance, into the same job folder.

Used after a Spot interruption warning, for an instance that ended without a final report, and by
retries. Safe under duplicate and concurrent triggers: the launch's client token is derived from
(job, dataset, attempt number), so every trigger of the same relaunch gets the same instance, and
job.json gains the attempt only if the dataset still runs on the instance being replaced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib import bootscript, capacity
from chalicelib.awsclient import AWSClient, ObjectMissing
from chalicelib.blueprint import AnalysisSettings
from chalicelib.certificate import format_time
from chalicelib.exceptions import AWSFailure
from chalicelib.jobstate.conditional import rewrite
from chalicelib.jobstate.markers import OpenJob, OpenJobs, open_key, split_folder
from chalicelib.jobstate.reconcile import ENDED_JOB, LOST_WHY
from chalicelib.jobstate.errors import NoJobRecord
from chalicelib.jobstate.statusfile import FINAL, belongs, load_record, parse, state_of
from chalicelib.paths import ObjectRef
from chalicelib.plan import LaunchBatch, LaunchSpec, RootVolume, launch_request
from chalicelib.records import Attempt, Capacity, DatasetRecord, DatasetState, JobRecord


@dataclass(frozen=True)
class Launch:
    """A new instance for a dataset."""

    instance_id: str
    capacity: Capacity
    why: str
    hourly_price: float


def read_record(aws: AWSClient, bucket: str, prefix: str) -> JobRecord | None:
    """The job's record, or None when the folder has none."""
    try:
        return load_record(aws, bucket, prefix)
    except NoJobRecord:
        return None


class Relauncher:
    """Relaunches datasets of one analysis's jobs, as its blueprint allows."""

    def __init__(self, settings: AnalysisSettings, aws: AWSClient, clock: Callable[[], datetime],
                 logger: Any = None) -> None:
        self.settings, self.aws, self.clock, self.logger = settings, aws, clock, logger

    # --- triggers -----------------------------------------------------------------------------
    def lost(self, folder: str, label: str, instance_id: str, why: str) -> bool:
        """The reconciler's hook: relaunch within ``MAX_RELAUNCHES``."""
        return self.relaunch(folder, label, instance_id, why) is not None

    def if_lost(self, folder: str, instance_id: str) -> str:
        """An instance has ended: relaunch its dataset if the dataset has no final report from it."""
        bucket, prefix = split_folder(folder)
        record = read_record(self.aws, bucket, prefix)
        label = _label_of(record, instance_id)
        if record is None or label is None:
            return "not a dataset's current instance"
        dataset = record.datasets[label]
        try:
            document = parse(self.aws.get_object(ObjectRef(bucket, dataset.status_key)).body)
        except ObjectMissing:
            document = {}
        if state_of(document) in FINAL and belongs(document, instance_id, dataset.earlier_instances):
            return "its dataset has reported"
        launched = self.relaunch(folder, label, instance_id, LOST_WHY, record=record)
        return f"relaunched {label} on {launched.instance_id}" if launched else f"{label} not relaunched"

    def interrupted(self, instance_id: str, at: datetime, open_jobs: OpenJobs) -> str:
        """A Spot interruption warning (two minutes before the reclaim): relaunch now."""
        job = open_jobs.holding(self.aws, self.settings.bucket_name, instance_id)
        if job is None:
            return "ignored: not an instance of an open job of this analysis"
        bucket, prefix = job.location
        record = read_record(self.aws, bucket, prefix)
        label = _label_of(record, instance_id)
        if record is None or label is None:
            return "ignored: its dataset has already been relaunched"
        launched = self.relaunch(job.folder, label, instance_id, f"Spot interruption warning at {format_time(at)}",
                                 record=record)
        if launched is None:
            return f"{label} not relaunched (ended, cancelled, or MAX_RELAUNCHES reached)"
        return f"relaunched {label} on {launched.instance_id} ({launched.why})"

    # --- the relaunch -------------------------------------------------------------------------
    def relaunch(self, folder: str, label: str, from_instance: str, why: str, *, record: JobRecord | None = None,
                 retry: bool = False) -> Launch | None:
        """Start ``label`` again in place of ``from_instance``; None when it may not be (the job has
        ended and this is not a retry, it was cancelled, the limit is reached, AWS refused)."""
        bucket, prefix = split_folder(folder)
        record = record or read_record(self.aws, bucket, prefix)
        if record is None or record.relaunch is None or label not in record.datasets:
            return None
        dataset = record.datasets[label]
        if dataset.instance_id != from_instance or not dataset.arguments:
            return None
        if not retry and (record.state in ENDED_JOB or len(dataset.attempts) > self.settings.max_relaunches):
            return None
        if self.aws.exists(ObjectRef(bucket, f"{prefix}/logs/cancel.json")) and not retry:
            return None
        number = len(dataset.attempts) + 1
        try:
            launched = self._launch(folder, record, label, dataset, number, why)
        except AWSFailure as error:
            if self.logger:
                self.logger.warning("relaunch refused", extra={"dataset": label, "reason": error.message})
            return None
        now = self.clock()
        attempt = Attempt(instance_id=launched.instance_id, capacity=launched.capacity, hourly_price=launched.hourly_price,
                          launched=now, why=f"{'retry' if retry else 'relaunch'} after {why}: {launched.why}")
        self._add_to_marker(record, folder, attempt)
        if not self._add_to_record(bucket, prefix, label, from_instance, attempt, why, retry):
            # Another trigger relaunched the dataset first with a different instance (a Spot refusal
            # in one and not the other; or moto, which ignores client tokens): this one is nobody's.
            self.aws.terminate([launched.instance_id])
            return None
        self._announce(bucket, dataset, attempt, number, why)
        if not retry and self.aws.exists(ObjectRef(bucket, f"{prefix}/logs/cancel.json")):
            self.aws.terminate([launched.instance_id])  # a cancel came in meanwhile
        return launched

    def _launch(self, folder: str, record: JobRecord, label: str, dataset: DatasetRecord, number: int,
                why: str) -> Launch:
        """One instance for the dataset: Spot or on-demand as the blueprint says, falling back
        from Spot to on-demand in the same step when AWS refuses Spot capacity."""
        assert record.relaunch is not None
        settings, relaunch = self.settings, record.relaunch
        job = folder.rstrip("/").rsplit("/", 1)[-1]
        root = RootVolume(*relaunch.root_volume) if relaunch.root_volume else None
        spec = LaunchSpec(ami=record.ami or settings.ami, tags={**relaunch.tags, "neurocaas:batch": f"relaunch-{number}"},
                          iam_role=settings.iam_role, key_name=settings.key_name,
                          security_groups=settings.security_groups, root_volume=root)
        key_head, _, key_tail = dataset.status_key.rpartition(label)
        earlier = [{"instance": a.instance_id, "capacity": a.capacity.value, "why": a.why, "ended": a.ended or why}
                   for a in dataset.attempts]
        instance_type = record.instance_type or settings.instance_type
        options = capacity.markets(settings.spot)
        refused = ""
        for position, market in enumerate(options):
            # The instance's reports carry every attempt (its own last), so its status file shows them.
            current = {"capacity": market.value,
                       "why": f"started again after {why}: {capacity.reason(market, settings.spot, refused)}"}
            user_data = bootscript.render(
                command=settings.command, bucket=settings.bucket_name, result_argument=relaunch.result_argument,
                rows=[(dataset.arguments[0], dataset.arguments[1], label)], job=job, log_uri=relaunch.log_uri,
                lifetime_minutes=record.lifetime_minutes or int(settings.default_duration),
                status_key=lambda name: f"{key_head}{name}{key_tail}",
                environment={"NEUROCAAS_ATTEMPTS": json.dumps([*earlier, current])})
            token = hashlib.sha256(f"{folder}|{label}|{number}|{market.value}".encode()).hexdigest()[:64]
            batch = LaunchBatch(number=0, instance_type=instance_type, count=1, user_data=user_data, client_token=token)
            try:
                instance = self.aws.run_instances(launch_request(spec, batch, market is Capacity.SPOT))[0]
            except AWSFailure as error:
                if market is Capacity.SPOT and error.code in capacity.SPOT_REFUSED and position < len(options) - 1:
                    refused = error.code
                    continue
                raise
            return Launch(instance.instance_id, market, capacity.reason(market, settings.spot, refused),
                          capacity.hourly_price(self.aws, instance_type, market))
        raise AssertionError("unreachable")

    def _add_to_marker(self, record: JobRecord, folder: str, attempt: Attempt) -> None:
        """The open-job marker gains the instance before any of its events can arrive (merged, so
        concurrent relaunches of other datasets keep theirs); a retried job's marker is recreated."""
        def change(body: bytes | None) -> bytes:
            marker = OpenJob.model_validate_json(body) if body else OpenJob.for_record(record, folder, record.started)
            if attempt.instance_id not in marker.instance_ids:
                marker.instance_ids.append(attempt.instance_id)
            marker.prices[attempt.instance_id] = attempt.hourly_price or 0.0
            if attempt.capacity is Capacity.SPOT and attempt.instance_id not in marker.spot_ids:
                marker.spot_ids.append(attempt.instance_id)
            if attempt.launched is not None:
                marker.launched_at[attempt.instance_id] = attempt.launched
            return marker.model_dump_json().encode()

        rewrite(self.aws, record.analysis, open_key(record.group, folder.rstrip("/").rsplit("/", 1)[-1]), change,
                "application/json")

    def _add_to_record(self, bucket: str, prefix: str, label: str, from_instance: str, attempt: Attempt,
                       why: str, retry: bool) -> bool:
        """job.json gains the attempt if the dataset still runs on ``from_instance`` (True also when a
        concurrent trigger of the same relaunch recorded it first)."""
        outcome = {"ok": False}

        def change(body: bytes | None) -> bytes | None:
            if body is None:
                return None
            current = JobRecord.model_validate_json(body)
            dataset = current.datasets.get(label)
            if dataset is None:
                return None
            if dataset.instance_id == attempt.instance_id:
                outcome["ok"] = True  # recorded by a concurrent trigger of the same relaunch
                return None
            if dataset.instance_id != from_instance:
                return None
            if dataset.attempts:
                dataset.attempts[-1].ended = dataset.attempts[-1].ended or why
            dataset.attempts.append(attempt)
            dataset.instance_id, dataset.state = attempt.instance_id, DatasetState.INITIALIZING
            current.instance_ids.append(attempt.instance_id)
            current.updated = self.clock()
            outcome["ok"] = True
            return current.to_bytes()

        rewrite(self.aws, bucket, f"{prefix}/logs/job.json", change, "application/json")
        return outcome["ok"]

    def _announce(self, bucket: str, dataset: DatasetRecord, attempt: Attempt, number: int, why: str) -> None:
        """The dataset's status file says it was started again (until the new instance reports)."""
        history = [*({"instance": a.instance_id, "capacity": a.capacity.value, "why": a.why, "ended": a.ended}
                     for a in dataset.attempts), {"instance": attempt.instance_id, "capacity": attempt.capacity.value,
                                                  "why": attempt.why, "ended": ""}]

        def change(body: bytes | None) -> bytes | None:
            document = parse(body) if body else {}
            if document.get("instance") == attempt.instance_id:
                return None  # the new instance has reported already
            return json.dumps({
                "status": DatasetState.INITIALIZING.value, "input": dataset.input, "instance": attempt.instance_id,
                "reason": f"Attempt {number}: started again after {why} on {attempt.capacity.value} capacity.",
                "command": f"instance {attempt.instance_id} launched; waiting for it to boot",
                "job_start": None, "job_finish": None, "std": {}, "attempts": history,
            }, indent=2).encode()

        rewrite(self.aws, bucket, dataset.status_key, change, "application/json")


def _label_of(record: JobRecord | None, instance_id: str) -> str | None:
    """The dataset whose last attempt runs on ``instance_id``."""
    if record is None:
        return None
    return next((label for label, d in record.datasets.items() if d.instance_id == instance_id), None)
