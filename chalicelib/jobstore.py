"""The job folder in S3: claiming a job id once, and writing its certificate, statuses and record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.awsclient import AWSClient, ObjectMissing, PreconditionFailed
from chalicelib.certificate import Certificate
from chalicelib.exceptions import JobExists
from chalicelib.jobstate.markers import OpenJob, delete_open, write_open
from chalicelib.paths import JobLocation, ObjectRef
from chalicelib.records import JobRecord, JobState


@dataclass
class Claim:
    """This invocation owns the job: ``resumed`` when an earlier attempt died part way."""

    record: JobRecord
    resumed: bool


class JobStore:
    """Reads and writes one job folder."""

    def __init__(self, aws: AWSClient, location: JobLocation) -> None:
        self.aws = aws
        self.location = location

    def claim(self, fresh: JobRecord, now: datetime, lease: timedelta) -> Claim | None:
        """Take the job id for this submission, exactly once across duplicate deliveries.

        Returns None when another delivery of the same submission owns (or finished) the job;
        raises :class:`JobExists` when a different submission does.
        """
        fresh.lease_expires = now + lease
        try:
            self.aws.put(self.location.bucket, self.location.job_record, fresh.to_bytes(),
                         "application/json", if_none_match=True)
            return Claim(fresh, resumed=False)
        except PreconditionFailed:
            pass
        try:
            stored = self.aws.get_object(ObjectRef(self.location.bucket, self.location.job_record))
        except ObjectMissing:
            return None  # deleted between the two calls: leave it to the next delivery
        existing = JobRecord.model_validate_json(stored.body)
        if existing.same_submission(fresh.submit_key, fresh.submit_etag):
            stale = existing.state is JobState.QUEUED and (existing.lease_expires or now) <= now
            if not stale:
                if existing.state is JobState.QUEUED:
                    self._keep_open(existing)
                return None
            existing.lease_expires = now + lease
            resumed = True
            takeover = existing
        elif existing.refused:
            resumed, takeover = False, fresh
        else:
            raise JobExists(
                f"Job {existing.job_id} already exists (submitted as {existing.submit_key}). "
                "Give this submission a new timestamp and submit again."
            )
        try:
            self.aws.put(self.location.bucket, self.location.job_record, takeover.to_bytes(),
                         "application/json", if_match=stored.etag)
        except PreconditionFailed:
            return None  # another delivery took it first
        return Claim(takeover, resumed=resumed)

    def save_record(self, record: JobRecord, now: datetime) -> None:
        record.updated = now
        self.aws.put(self.location.bucket, self.location.job_record, record.to_bytes(), "application/json")

    def save_certificate(self, certificate: Certificate) -> None:
        self.aws.put(self.location.bucket, self.location.certificate, certificate.render().encode())

    def save_open_marker(self, record: JobRecord, launched: datetime | None = None) -> None:
        """Say in the analysis bucket that this job is open (and, once launched, its instances)."""
        write_open(self.aws, record.analysis, OpenJob.for_record(
            record, f"s3://{self.location.bucket}/{self.location.prefix}", launched))

    def _keep_open(self, queued: JobRecord) -> None:
        """Make sure a queued job has its open marker, so that the reaper resumes it once its lease
        expires even if the delivery that claimed it died before writing one. Only created when
        absent: the claimant's own marker (which may already list instances) is never replaced."""
        try:
            write_open(self.aws, queued.analysis, OpenJob.for_record(
                queued, f"s3://{self.location.bucket}/{self.location.prefix}", None), only_if_absent=True)
        except PreconditionFailed:
            pass

    def delete_open_marker(self, record: JobRecord) -> None:
        delete_open(self.aws, record.analysis, record.group, self.location.prefix.rsplit("/", 1)[-1])

    def save_object(self, ref: ObjectRef, body: bytes) -> None:
        self.aws.put(ref.bucket, ref.key, body)
