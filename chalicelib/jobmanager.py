"""From a submit.json in S3 to a running job: read, claim, validate, plan, execute.

This is what the Lambda handler calls; devtools and the local stack reuse it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

from aws_lambda_powertools import Logger

from chalicelib.awsclient import AWSClient, ObjectMissing, StoredObject
from chalicelib.blueprint import AnalysisSettings
from chalicelib.certificate import Certificate, format_time
from chalicelib.exceptions import (
    JobExists,
    NeuroCAASError,
    Step,
    SubmissionRefused,
    UnexpectedFailure,
)
from chalicelib.executor import JobExecutor
from chalicelib.facts import gather_budget, gather_inputs
from chalicelib.jobstore import JobStore
from chalicelib.monitor.control import cancel_requested
from chalicelib.paths import (
    JobLocation,
    ObjectRef,
    group_of,
    job_name,
    refusal_job_name,
)
from chalicelib.plan import JobPlan
from chalicelib.planner import plan_job
from chalicelib.records import JobRecord, JobState
from chalicelib.submission import Submission, decode, parse_submission, readable_job_id

DEFAULT_LEASE = timedelta(seconds=int(os.environ.get("NEUROCAAS_LEASE_SECONDS", "330")))
# Builds the executor of a job (devtools substitute one that runs on a development instance).
ExecutorFactory = Callable[[AWSClient, JobStore, Callable[[], datetime], Any], JobExecutor]


class Outcome(str, Enum):
    STARTED = "started"
    REFUSED = "refused"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


@dataclass
class Result:
    """What happened to one submit event (for logs, tests and devtools)."""

    outcome: Outcome
    location: JobLocation | None = None
    record: JobRecord | None = None
    plan: JobPlan | None = None
    message: str = ""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class JobManager:
    """Turns submit files into jobs for one analysis."""

    def __init__(self, settings: AnalysisSettings, aws: AWSClient, *, clock: Callable[[], datetime] = utcnow,
                 lease: timedelta = DEFAULT_LEASE, logger: Any = None,
                 analysis_version: str | None = None, executor: ExecutorFactory = JobExecutor) -> None:
        self.settings, self.aws, self.clock, self.lease = settings, aws, clock, lease
        self.executor = executor
        self.logger = logger or Logger(service="neurocaas")
        self.analysis_version = analysis_version or os.environ.get("ANALYSIS_VERSION") or settings.ami

    def handle_submit(self, bucket: str, key: str) -> Result:
        """Handle one (possibly duplicate) delivery of a submit file at s3://bucket/key."""
        started = self.clock()
        group = group_of(key)
        if bucket != self.settings.bucket_name or group is None:
            self.logger.warning("ignoring a submit file outside any group's submissions folder",
                                extra={"bucket": bucket, "key": key})
            return Result(Outcome.IGNORED, message="not a submission of this analysis")
        certificate = Certificate(started=started)
        try:
            stored = self.aws.get_object(ObjectRef(bucket, key))
        except ObjectMissing:
            self.logger.info("submit file is gone; nothing to do", extra={"key": key})
            return Result(Outcome.IGNORED, message="submit file no longer exists")
        except NeuroCAASError as error:
            location = JobLocation.in_group(bucket, group, refusal_job_name(bucket, key))
            return self._refuse_unclaimed(location, certificate, error, key)
        return self.handle_stored(bucket, key, stored, certificate)

    def handle_stored(self, bucket: str, key: str, stored: StoredObject, certificate: Certificate) -> Result:
        """Handle a submit file already read (devtools hand in a local one): claim, validate, plan, execute."""
        group = group_of(key)
        if group is None:
            return Result(Outcome.IGNORED, message="not a submission of this analysis")
        started = certificate.started
        try:
            document = decode(stored.body)
        except SubmissionRefused as error:
            location = JobLocation.in_group(bucket, group, refusal_job_name(bucket, key))
            return self._refuse_unclaimed(location, certificate, error, key)
        job_id = readable_job_id(document)
        submission: Submission | None = None
        refusal: SubmissionRefused | None = None
        try:
            submission = parse_submission(document, key, self.settings)
            location = submission.location
        except SubmissionRefused as error:
            refusal = error
            name = job_name(bucket, job_id) if job_id else refusal_job_name(bucket, key)
            location = JobLocation.in_group(bucket, group, name)
        certificate.header = self._header(started, job_id or "(unreadable)", group, key)
        store = JobStore(self.aws, location)
        record = JobRecord(
            job_id=job_id or location.prefix.rsplit("/", 1)[-1], analysis=bucket, group=group,
            submit_key=key, submit_etag=stored.etag, created=started, updated=started,
            analysis_version=self.analysis_version,
        )
        try:
            claim = store.claim(record, started, self.lease)
        except JobExists as error:
            other = JobLocation.in_group(bucket, group, refusal_job_name(bucket, key))
            return self._refuse_unclaimed(other, certificate, error, key)
        except NeuroCAASError as error:
            other = JobLocation.in_group(bucket, group, refusal_job_name(bucket, key))
            return self._refuse_unclaimed(other, certificate, error, key)
        if claim is None:
            self.logger.info("duplicate delivery of a submission already handled", extra={"key": key})
            return Result(Outcome.DUPLICATE, location=location)
        record = claim.record
        certificate.step(Step.INITIALIZATION, self.clock())
        if refusal is not None:
            return self._refuse(store, certificate, record, refusal)
        assert submission is not None
        try:
            store.save_open_marker(record)  # the reaper resumes the job from it if this handler dies
        except NeuroCAASError as error:
            return self._refuse(store, certificate, record, error)
        return self._start(store, certificate, record, submission, stored.etag, claim.resumed)

    def _start(self, store: JobStore, certificate: Certificate, record: JobRecord, submission: Submission,
               etag: str, resumed: bool) -> Result:
        step = Step.VALIDATION
        try:
            facts = gather_inputs(self.aws, self.settings, submission)
            budget = gather_budget(self.aws, self.settings, submission.group, submission.instance_type)
            plan = plan_job(self.settings, submission, etag, facts, budget)
        except SubmissionRefused as error:
            if error.step is Step.ENVIRONMENT:  # a budget or capacity refusal: the submission itself was valid
                certificate.step(Step.VALIDATION, self.clock())
            return self._refuse(store, certificate, record, error)
        except NeuroCAASError as error:
            error.step = step
            return self._refuse(store, certificate, record, error)
        except Exception:  # a defect: the user gets a clean message, the log the traceback
            self.logger.exception("planning failed", extra={"key": submission.submit_key})
            return self._refuse(store, certificate, record, UnexpectedFailure(step, False))
        certificate.step(Step.VALIDATION, self.clock(), f"{len(plan.datasets)} dataset(s) accepted.")
        record.instance_type, record.ami = plan.instance_type, plan.ami
        record.lifetime_minutes, record.estimated_cost = plan.lifetime_minutes, plan.estimated_cost
        cancelled_by = cancel_requested(self.aws, store.location.bucket, store.location.prefix)
        if cancelled_by:  # while the job was queued; a cancel after this look is the reaper's to finish
            return self._cancelled(store, certificate, record, cancelled_by)
        executor = self.executor(self.aws, store, self.clock, self.logger)
        try:
            record = executor.execute(plan, record, certificate, resumed)
        except Exception as error:
            return Result(Outcome.FAILED, location=store.location, record=record, plan=plan,
                          message=getattr(error, "message", "unexpected failure"))
        self.logger.info("job started", extra={"job": plan.job_id, "instances": record.instance_ids})
        return Result(Outcome.STARTED, location=store.location, record=record, plan=plan)

    def _header(self, started: datetime, job_id: str, group: str, key: str) -> list[str]:
        return [
            f"REQUEST START TIME: {format_time(started)} (GMT)",
            f"ANALYSIS: {self.settings.bucket_name} | ANALYSIS VERSION ID: {self.analysis_version}",
            f"JOB ID: {job_id} | GROUP: {group}",
            f"SUBMIT FILE: {key}",
        ]

    def _refuse(self, store: JobStore, certificate: Certificate, record: JobRecord,
                error: NeuroCAASError) -> Result:
        """Record a refusal in a job folder this invocation owns; nothing was started."""
        now = self.clock()
        certificate.fail(error, now)
        record.state, record.reason, record.refused = JobState.FAILED, error.message, True
        record.finished, record.lease_expires = now, None
        self.logger.info("submission refused", extra={"key": record.submit_key, "reason": error.message})
        try:
            store.save_certificate(certificate)
            store.save_record(record, now)
            store.delete_open_marker(record)
        except NeuroCAASError:
            self.logger.exception("could not write the refusal", extra={"key": record.submit_key})
        return Result(Outcome.REFUSED, location=store.location, record=record, message=error.message)

    def _cancelled(self, store: JobStore, certificate: Certificate, record: JobRecord, by: str) -> Result:
        """End a job cancelled while it was queued, before any instance was launched."""
        now = self.clock()
        reason = f"Cancelled by {by}."
        certificate.note(f"{reason} No instance was launched; nothing was charged.")
        record.state, record.reason, record.actual_cost = JobState.CANCELLED, reason, 0.0
        record.finished, record.lease_expires = now, None
        self.logger.info("job cancelled before its launch", extra={"key": record.submit_key, "by": by})
        store.save_certificate(certificate)
        store.save_record(record, now)
        store.delete_open_marker(record)
        return Result(Outcome.REFUSED, location=store.location, record=record, message=reason)

    def _refuse_unclaimed(self, location: JobLocation, certificate: Certificate, error: NeuroCAASError,
                          key: str) -> Result:
        """Refuse a submission that cannot own a job folder: its certificate and a refused job.json
        (named after the submit key), so that `neurocaas jobs` lists every refusal."""
        group = location.prefix.split("/")[0]
        if not certificate.header:
            certificate.header = self._header(certificate.started, "(unreadable)", group, key)
        now = self.clock()
        certificate.fail(error, now)
        self.logger.info("submission refused", extra={"key": key, "reason": error.message})
        record = JobRecord(job_id=location.prefix.rsplit("/", 1)[-1].removeprefix(job_name(self.settings.bucket_name, "")),
                           analysis=self.settings.bucket_name, group=group, submit_key=key, submit_etag="",
                           state=JobState.FAILED, reason=error.message, refused=True, created=certificate.started,
                           updated=now, finished=now, analysis_version=self.analysis_version)
        try:
            store = JobStore(self.aws, location)
            store.save_certificate(certificate)
            store.save_record(record, now)
        except NeuroCAASError:
            self.logger.exception("could not write the refusal", extra={"key": key})
        return Result(Outcome.REFUSED, location=location, message=error.message)
