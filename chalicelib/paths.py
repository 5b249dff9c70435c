"""Where things live in S3: the bucket layout of CONTRACT section 1, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from posixpath import basename

SUBMISSIONS = "/submissions/"


@dataclass(frozen=True)
class ObjectRef:
    """One S3 object, or a folder when ``key`` ends in ``/``."""

    bucket: str
    key: str

    @property
    def is_folder(self) -> bool:
        return self.key.endswith("/")

    @property
    def basename(self) -> str:
        """The dataset's name: the last path part (a folder's own name for a folder)."""
        return basename(self.key.rstrip("/"))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def argument(self, home_bucket: str) -> str:
        """How the analysis receives it: a plain key in the analysis bucket, else an s3:// URI."""
        return self.key if self.bucket == home_bucket else self.uri


def group_of(submit_key: str) -> str | None:
    """The group is the part of the submit key before the first ``/submissions/``; a group never
    holds ``/``, so a key deeper in the bucket (``grp/results/job.../submissions/x_submit.json``,
    written by an analysis) is no submission."""
    group, found, _ = submit_key.partition(SUBMISSIONS)
    if not found or not group or "/" in group:
        return None
    return group


def job_name(analysis: str, job_id: str) -> str:
    return f"job__{analysis}_{job_id}"


def status_file_name(dataset_label: str) -> str:
    return f"DATASET_NAME:{dataset_label}_STATUS.txt"


@dataclass(frozen=True)
class JobLocation:
    """The job folder: ``{group}/results/job__{analysis}_{id}/`` or its storage-bypass twin."""

    bucket: str
    prefix: str
    result_argument: str

    @classmethod
    def in_group(cls, bucket: str, group: str, name: str) -> "JobLocation":
        return cls(bucket=bucket, prefix=f"{group}/results/{name}", result_argument=f"results/{name}")

    @classmethod
    def bypass(cls, bucket: str, base_prefix: str, name: str) -> "JobLocation":
        prefix = f"{base_prefix.strip('/')}/{name}" if base_prefix.strip("/") else name
        return cls(bucket=bucket, prefix=prefix, result_argument=f"s3://{bucket}/{prefix}")

    def key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    @property
    def certificate(self) -> str:
        return self.key("logs", "certificate.txt")

    @property
    def job_record(self) -> str:
        return self.key("logs", "job.json")

    def status(self, dataset_label: str) -> str:
        return self.key("logs", status_file_name(dataset_label))

    @property
    def ec2_logs(self) -> str:
        return self.key("internal_ec2_logs")


def refusal_job_name(analysis: str, submit_key: str) -> str:
    """A job folder name for a submission without a usable job id, named after its submit key.

    It starts with an underscore, which no job id can, so it never shares a real job's folder.
    """
    stem = submit_key.partition(SUBMISSIONS)[2] or submit_key
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem)
    return job_name(analysis, f"_refused-{safe}"[:200])
