"""Keeping records true when an instance changes state (EventBridge, or the local runner).

The instance's job is found from the analysis's open-job markers (one listing; bodies cached by
ETag across warm invocations), so an event for another analysis's instance costs one S3 listing
and no EC2 call. Times come from the event, not the handler's clock. Every write is conditional
or derived, so duplicated, late and reordered events converge on the same records.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.awsclient import AWSClient, ObjectMissing, PreconditionFailed
from chalicelib.jobstate.markers import InstanceEnd, OpenJob, OpenJobs, record_end
from chalicelib.jobstate.reconcile import EndHook, Reconciler, RelaunchHook
from chalicelib.monitor.costs import CostRecord, active_key, add_to_ledger, end_id, history_key
from chalicelib.monitor.postprocess import JobEnded, run_postprocess
from chalicelib.paths import ObjectRef
from chalicelib.records import JobRecord

ENDED = ("stopped", "terminated")
OPEN_JOBS = OpenJobs()  # shared by the invocations of a warm Lambda


def _load(aws: AWSClient, bucket: str, key: str) -> CostRecord | None:
    try:
        return CostRecord.model_validate_json(aws.get_object(ObjectRef(bucket, key)).body)
    except ObjectMissing:
        return None


def close_instance(aws: AWSClient, analysis_bucket: str, job: OpenJob, instance_id: str, at: datetime,
                   how: str) -> bool:
    """Record that one of the job's instances ended at ``at``: its cost record (CONTRACT section 1)
    and the job's end marker, from one cost figure. Returns whether this call recorded it."""
    bucket, prefix = job.location
    active = _load(aws, analysis_bucket, active_key(instance_id))
    opened = active or CostRecord.opened(
        instance_id=instance_id, group=job.group, analysis=analysis_bucket, job=job.job,
        instance_type=job.instance_type or "", start=job.launched_at.get(instance_id) or job.launched or at,
        hourly=job.prices.get(instance_id), spot=instance_id in job.spot_ids)
    history: CostRecord | None = opened.closed(at)
    try:
        aws.put(analysis_bucket, history_key(job.group, instance_id), history.to_bytes(), "application/json",
                if_none_match=True)
    except PreconditionFailed:
        # Recorded before (a duplicate or late event): the end marker gets that record's figures.
        history = _load(aws, analysis_bucket, history_key(job.group, instance_id))
        if history is None:
            return False
    if active is not None:
        aws.delete(analysis_bucket, active_key(instance_id))
    # Written after the cost record (and again when a crash came between the two): same figures.
    return record_end(aws, bucket, prefix, InstanceEnd(
        instance_id=instance_id, ended=history.end or at, start=history.start, instance_type=history.instance_type,
        hourly_price=history.hourly_price, cost=history.cost, how=how))


def end_hook(aws: AWSClient, logger: Any, postprocess: str = "") -> EndHook:
    """What the writer of a job's end.txt does, once: post-processing, then the group's ledger."""
    def ended(record: JobRecord, bucket: str, prefix: str, cost: float) -> None:
        if postprocess:
            run_postprocess(postprocess, JobEnded(aws.s3, bucket, prefix, cost), logger)
        add_to_ledger(aws, record.analysis, record.group, cost, end_id(record, prefix))

    return ended


def settle_hook(aws: AWSClient, logger: Any, postprocess: str = "") -> EndHook:
    """For the reaper: an ended job still holding its open marker (its end.txt writer may have died
    part way) gets what that writer owed: the post-processing, unless the certificate already
    reports it for this end (so it runs at least once), and its cost in the ledger, unless the
    ledger already counts this end (so it is added exactly once)."""
    def settle(record: JobRecord, bucket: str, prefix: str, cost: float) -> None:
        if postprocess:
            try:
                certificate = aws.get_object(ObjectRef(bucket, f"{prefix}/logs/certificate.txt")).body.decode()
            except ObjectMissing:
                certificate = ""
            if certificate.count(f"POSTPROCESSING ({postprocess})") < record.retries + 1:
                run_postprocess(postprocess, JobEnded(aws.s3, bucket, prefix, cost), logger)
        add_to_ledger(aws, record.analysis, record.group, cost, end_id(record, prefix))

    return settle


class InstanceMonitor:
    """Applies instance state changes to one analysis's cost records and jobs."""

    def __init__(self, aws: AWSClient, bucket: str, clock: Callable[[], datetime], logger: Any,
                 postprocess: str = "", open_jobs: OpenJobs = OPEN_JOBS, relauncher: Any = None) -> None:
        """``relauncher`` (a :class:`chalicelib.recovery.relaunch.Relauncher`) starts again the
        dataset of an instance that ended without a final report; without one it fails."""
        self.aws, self.bucket, self.clock, self.logger = aws, bucket, clock, logger
        self.open_jobs, self.relauncher = open_jobs, relauncher
        hook: RelaunchHook | None = relauncher.lost if relauncher is not None else None
        self.reconciler = Reconciler(aws, clock, end_hook(aws, logger, postprocess), hook)

    def handle(self, instance_id: str, state: str, at: datetime | None = None) -> str:
        """Bring the records of ``instance_id`` up to date; returns what was done (for logs)."""
        job = self.open_jobs.holding(self.aws, self.bucket, instance_id)
        if job is None:
            return "ignored: not an instance of an open job of this analysis"
        at = at or self.clock()
        if state == "running":
            return self._opened(job, instance_id, at)
        if state not in ENDED:
            return f"nothing to do in state {state}"
        closed = close_instance(self.aws, self.bucket, job, instance_id, at, f"{state} event")
        relaunched = f"; {self.relauncher.if_lost(job.folder, instance_id)}" if self.relauncher is not None else ""
        outcome = self.reconciler.reconcile(job.folder, instance_ids=job.instance_ids)
        return f"{'recorded as stopped' if closed else 'already recorded as stopped'}{relaunched}; {outcome.detail}"

    def _opened(self, job: OpenJob, instance_id: str, at: datetime) -> str:
        if _load(self.aws, self.bucket, history_key(job.group, instance_id)) is not None:
            return "already recorded as stopped"  # the running event came after the end
        record = CostRecord.opened(instance_id=instance_id, group=job.group, analysis=self.bucket, job=job.job,
                                   instance_type=job.instance_type or "", start=at,
                                   hourly=job.prices.get(instance_id), spot=instance_id in job.spot_ids)
        try:
            self.aws.put(self.bucket, active_key(instance_id), record.to_bytes(), "application/json",
                         if_none_match=True)
        except PreconditionFailed:
            return "already recorded as running"
        return "recorded as running"
