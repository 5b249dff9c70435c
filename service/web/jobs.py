"""A job as the page shows it: located strictly inside one group's folder, and its results streamed."""

from __future__ import annotations

import io
import mimetypes
import re
import zipfile
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from posixpath import normpath
from typing import Any

from chalicelib.records import JobRecord
from service.client import FINAL_JOB_STATES, JobRef, NeuroCAASClient, UserError
from service.jobview import dataset_views

JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$")
INLINE_IMAGES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
AS_TEXT = {".txt", ".csv", ".json", ".log", ".yaml", ".yml", ".tsv", ".md"}
CHUNK = 1024 * 1024
STATE_CLASSES = {"SUCCEEDED": "ok", "SUCCESS": "ok", "FAILED": "bad", "TIMED OUT": "bad", "CANCELLED": "off",
                 "RUNNING": "busy", "IN PROGRESS": "busy", "QUEUED": "wait", "INITIALIZING": "wait",
                 "SUBMITTED": "wait"}


def state_class(state: str) -> str:
    """How a state is coloured in the page (the same in the server's HTML and the live updates)."""
    return STATE_CLASSES.get(state, "")


def job_ref(analysis: str, group: str, job_id: str) -> JobRef:
    """The job's folder inside ``group``'s results: a job of another group cannot be named."""
    if not JOB_ID.match(job_id):
        raise UserError(f"{job_id!r} is not a job id.")
    return JobRef(analysis, group, job_id, analysis, f"{group}/results/job__{analysis}_{job_id}")


def record_of(client: NeuroCAASClient, ref: JobRef) -> JobRecord | None:
    record = client.record(ref)
    if record is not None and (record.group != ref.group or record.analysis != ref.analysis):
        raise UserError(f"Job {ref.job_id} does not belong to group {ref.group}.")
    return record


def job_summary(client: NeuroCAASClient, ref: JobRef, record: JobRecord) -> dict[str, Any]:
    """The jobs-list row: state, datasets finished/total, started, cost."""
    if record.state.value == "RUNNING":
        rows = dataset_views(record, client.statuses(ref, record))
        finished = sum(row.finished for row in rows)
    else:
        finished = sum(d.state.value in ("SUCCESS", "FAILED", "CANCELLED", "TIMED OUT") for d in record.datasets.values())
    return {"job_id": record.job_id, "state": record.state.value, "finished": finished,
            "total": len(record.datasets), "started": _when(record.started or record.created),
            "cost": _cost(record), "reason": record.reason}


def job_payload(client: NeuroCAASClient, ref: JobRef, base: str) -> dict[str, Any]:
    """Everything the live job page shows, as JSON."""
    record = record_of(client, ref)
    if record is None:
        if not client.certificate(ref):
            return {"found": False, "final": False, "state": "SUBMITTED", "state_class": "wait", "datasets": [],
                    "results": [],
                    "certificate": "", "reason": "Waiting for the job manager to pick the job up…"}
        raise UserError(f"Job {ref.job_id} has a certificate but no record; see its certificate.")
    rows = dataset_views(record, client.statuses(ref, record))
    results = [{"path": path, "size": size, "url": f"{base}/results/{path}",
                "image": _extension(path) in INLINE_IMAGES} for path, size in client.result_files(ref)]
    return {
        "found": True, "final": record.state in FINAL_JOB_STATES, "state": record.state.value,
        "state_class": state_class(record.state.value),
        "reason": record.reason, "instance_type": record.instance_type or "", "cost": _cost(record),
        "created": _when(record.created), "started": _when(record.started), "finished_at": _when(record.finished),
        "finished": sum(row.finished for row in rows), "total": len(rows),
        "datasets": [{**asdict(row), "elapsed": row.elapsed, "finished": row.finished,
                      "state_class": state_class(row.state)} for row in rows],
        "results": results, "certificate": client.certificate(ref),
    }


def dataset_log(client: NeuroCAASClient, ref: JobRef, label: str) -> str:
    record = record_of(client, ref)
    if record is None or label not in record.datasets:
        raise UserError(f"Job {ref.job_id} has no dataset {label!r}.")
    output = client.dataset_output(ref, record, label)
    return output or "(no output yet)"


def result_key(client: NeuroCAASClient, ref: JobRef, path: str) -> tuple[str, int]:
    """The S3 key of one result file, which must be one the job listed."""
    clean = normpath(path)
    if clean != path or path.startswith(("/", "..")):
        raise UserError(f"{path!r} is not a result of job {ref.job_id}.")
    sizes = dict(client.result_files(ref))
    if path not in sizes:
        raise UserError(f"Job {ref.job_id} has no result {path!r}.")
    return f"{ref.prefix}/process_results/{path}", sizes[path]


def media_type(path: str) -> tuple[str, bool]:
    """The content type a result is served with, and whether it may be shown in the page.

    Only pictures and plain text are shown; anything else (HTML, SVG, ...) is a download, so that
    no analysis output can run script in the page's origin."""
    extension = _extension(path)
    if extension in INLINE_IMAGES:
        return mimetypes.types_map.get(extension, "application/octet-stream"), True
    if extension in AS_TEXT:
        return "text/plain; charset=utf-8", True
    return "application/octet-stream", False


def stream_object(client: NeuroCAASClient, bucket: str, key: str) -> Iterator[bytes]:
    body = client.s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()


class _Sink(io.RawIOBase):
    """A write-only stream whose bytes are handed on as they come (the zip is never held whole)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def zip_results(client: NeuroCAASClient, ref: JobRef) -> Iterator[bytes]:
    """All of a job's results as one zip, streamed file by file."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, size in client.result_files(ref):
            with archive.open(f"{ref.job_id}/{path}", "w", force_zip64=size > 2**31) as entry:
                for chunk in stream_object(client, ref.bucket, f"{ref.prefix}/process_results/{path}"):
                    entry.write(chunk)
                    yield sink.drain()
            yield sink.drain()
    yield sink.drain()


def _extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def _cost(record: JobRecord) -> str:
    if record.actual_cost is not None:
        return _dollars(record.actual_cost)
    if record.estimated_cost is not None:
        return f"{_dollars(record.estimated_cost)} (estimated)"
    return ""


def _dollars(amount: float) -> str:
    return f"${amount:.2f}" if amount >= 0.01 or amount == 0 else "under $0.01"
