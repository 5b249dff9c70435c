"""The analysis's open-job markers and each job's instance end markers.

``logs/open/{group}/{job}.json`` (analysis bucket) says a job is open and where its folder is;
from launch on it also lists the job's instance ids, so the monitor finds an instance's job with
one listing and no EC2 call. ``{job}/logs/instances/{id}.json`` says an instance has ended: written
once (``IfNoneMatch``) with the time and cost the cost records got.
"""

from __future__ import annotations

import bisect
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from pydantic import BaseModel, Field, ValidationError

from chalicelib.awsclient import AWSClient, ObjectMissing, PreconditionFailed
from chalicelib.paths import ObjectRef
from chalicelib.records import Capacity, JobRecord

OPEN_PREFIX = "logs/open/"
READ_CONCURRENCY = 16
PROBE_PAGE = 50  # keys per page when looking for the first instance that has not ended
# (bucket, job prefix) -> the last instance id (in key order) up to which every one has ended
_verified: dict[tuple[str, str], str] = {}
_verified_lock = threading.Lock()


def split_folder(folder: str) -> tuple[str, str]:
    """(bucket, prefix) of an ``s3://bucket/prefix`` job folder."""
    bucket, _, prefix = folder.removeprefix("s3://").partition("/")
    return bucket, prefix.rstrip("/")


class OpenJob(BaseModel):
    """An open-job marker: a job that is queued or running, and where to find it."""

    folder: str
    submit_key: str
    group: str
    job: str
    instance_ids: list[str] = Field(default_factory=list)
    instance_type: str | None = None
    launched: datetime | None = None
    prices: dict[str, float] = Field(default_factory=dict)  # hourly price of each instance, as launched
    spot_ids: list[str] = Field(default_factory=list)
    launched_at: dict[str, datetime] = Field(default_factory=dict)  # relaunched instances' own launches

    @classmethod
    def for_record(cls, record: JobRecord, folder: str, launched: datetime | None) -> "OpenJob":
        """The marker of a job as its record stands (every attempt's instance, at its own price)."""
        attempts = record.attempts()
        return cls(folder=folder, submit_key=record.submit_key, group=record.group,
                   job=folder.rstrip("/").rsplit("/", 1)[-1], instance_ids=record.instance_ids,
                   instance_type=record.instance_type, launched=launched,
                   prices={i: a.hourly_price for i, a in attempts.items() if a.hourly_price is not None},
                   spot_ids=[i for i, a in attempts.items() if a.capacity is Capacity.SPOT],
                   launched_at={i: a.launched for i, a in attempts.items() if a.launched is not None})

    @property
    def key(self) -> str:
        return open_key(self.group, self.job)

    @property
    def location(self) -> tuple[str, str]:
        return split_folder(self.folder)


def open_key(group: str, job: str) -> str:
    return f"{OPEN_PREFIX}{group}/{job}.json"


def write_open(aws: AWSClient, analysis_bucket: str, marker: OpenJob, *, only_if_absent: bool = False) -> None:
    aws.put(analysis_bucket, marker.key, marker.model_dump_json().encode(), "application/json",
            if_none_match=only_if_absent)


def delete_open(aws: AWSClient, analysis_bucket: str, group: str, job: str) -> None:
    aws.delete(analysis_bucket, open_key(group, job))


class OpenJobs:
    """The open-job markers of analyses, their bodies cached by ETag (a warm Lambda keeps them):
    each look-up is one listing plus one GET per marker that changed since the last."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[str, OpenJob | None]] = {}
        self._lock = threading.Lock()

    def load(self, aws: AWSClient, analysis_bucket: str) -> list[OpenJob]:
        listed, _ = aws.list_objects(analysis_bucket, OPEN_PREFIX)
        with self._lock:
            stale = [o for o in listed if self._cache.get((analysis_bucket, o.key), ("",))[0] != o.etag]
        with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as pool:
            fresh = list(pool.map(lambda o: self._read(aws, analysis_bucket, o.key), stale))
        with self._lock:
            for item, (etag, marker) in zip(stale, fresh):
                self._cache[(analysis_bucket, item.key)] = (etag or item.etag, marker)
            keys = {o.key for o in listed}
            for cached in [k for k in self._cache if k[0] == analysis_bucket and k[1] not in keys]:
                del self._cache[cached]
            return [m for o in listed if (m := self._cache[(analysis_bucket, o.key)][1]) is not None]

    @staticmethod
    def _read(aws: AWSClient, bucket: str, key: str) -> tuple[str, OpenJob | None]:
        try:
            stored = aws.get_object(ObjectRef(bucket, key))
            return stored.etag, OpenJob.model_validate_json(stored.body)
        except (ObjectMissing, ValidationError, ValueError):
            return "", None  # deleted meanwhile, or not a marker: skipped

    def holding(self, aws: AWSClient, analysis_bucket: str, instance_id: str) -> OpenJob | None:
        """The open job one of whose instances is ``instance_id``, if any."""
        return next((m for m in self.load(aws, analysis_bucket) if instance_id in m.instance_ids), None)


class InstanceEnd(BaseModel):
    """An instance of the job has ended: when, and what it cost (as its cost record says)."""

    instance_id: str
    ended: datetime
    start: datetime
    instance_type: str
    hourly_price: float
    cost: float
    how: str = ""


def end_prefix(job_prefix: str) -> str:
    return f"{job_prefix}/logs/instances/"


def end_key(job_prefix: str, instance_id: str) -> str:
    return f"{end_prefix(job_prefix)}{instance_id}.json"


def record_end(aws: AWSClient, bucket: str, job_prefix: str, end: InstanceEnd) -> bool:
    """Write the end marker once; False when it already existed (a duplicate or later event)."""
    try:
        aws.put(bucket, end_key(job_prefix, end.instance_id), end.model_dump_json().encode(), "application/json",
                if_none_match=True)
    except PreconditionFailed:
        return False
    return True


def ended_instances(aws: AWSClient, bucket: str, job_prefix: str) -> set[str]:
    """The ids of the job's instances that have an end marker (one listing)."""
    listed, _ = aws.list_objects(bucket, end_prefix(job_prefix))
    return {o.key.rsplit("/", 1)[-1].removesuffix(".json") for o in listed}


def first_running(aws: AWSClient, bucket: str, job_prefix: str, instance_ids: list[str]) -> str | None:
    """The first of the job's instances (in key order) without an end marker, None when all have one.

    End markers are listed in key order in small pages from the last instance known ended (end
    markers are never deleted, so a warm Lambda's knowledge stays true): while instances end in
    any order, each event costs about one small listing instead of reading every marker so far.
    """
    ordered = sorted(set(instance_ids))
    with _verified_lock:
        last = _verified.get((bucket, job_prefix))
    done = bisect.bisect_right(ordered, last) if last is not None else 0
    if done and ordered[done - 1] != last:
        done = 0  # a different job in the same folder (a refusal's folder reused): start over
    prefix = end_prefix(job_prefix)
    while done < len(ordered):
        page = aws.list_page(bucket, prefix, end_key(job_prefix, ordered[done - 1]) if done else "", PROBE_PAGE)
        present = {k.removeprefix(prefix).removesuffix(".json") for k in page}
        start = done
        while done < len(ordered) and ordered[done] in present:
            done += 1
        if done:
            with _verified_lock:
                _verified[(bucket, job_prefix)] = ordered[done - 1]
        if done < len(ordered) and (done - start < len(page) or len(page) < PROBE_PAGE):
            return ordered[done]  # a key after the gap, or the listing ran out: this one has no marker
    return None
