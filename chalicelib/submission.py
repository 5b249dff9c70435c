"""Reading a submit.json: its shape, its job id, and which objects it may name.

Pure: no AWS calls. Access rules (CONTRACT section 2) are checked here, before anything is read,
so that a submission can never make the job manager touch another group's data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from chalicelib.analysiscard import check_instance_type
from chalicelib.blueprint import AnalysisSettings
from chalicelib.exceptions import SubmissionRefused, SubmitFileUnreadable
from chalicelib.paths import JobLocation, ObjectRef, group_of, job_name

JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$")
S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.+)$")
MAX_DATASETS = 1000


class SubmitFile(BaseModel):
    """The fields of submit.json (CONTRACT section 2). Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    dataname: StrictStr | list[StrictStr]
    configname: StrictStr
    timestamp: StrictStr | StrictInt
    instance_type: StrictStr | None = None
    resultpath: StrictStr | None = Field(default=None)


@dataclass(frozen=True)
class Submission:
    """A well-formed submission whose every object is one the group may use."""

    submit_key: str
    group: str
    job_id: str
    datasets: tuple[ObjectRef, ...]
    config: ObjectRef
    instance_type: str
    location: JobLocation
    analysis_bucket: str


def decode(body: bytes) -> dict[str, Any]:
    """The submit file as a JSON object, or a refusal saying why it is not one."""
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise SubmitFileUnreadable("The submit file is not UTF-8 text. Save it as UTF-8 JSON and submit again.")
    except json.JSONDecodeError as exc:
        raise SubmitFileUnreadable(
            f"The submit file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}). "
            "Fix it and submit again."
        )
    if not isinstance(document, dict):
        raise SubmitFileUnreadable(
            f"The submit file must be a JSON object with dataname, configname and timestamp; "
            f"it holds {_json_kind(document)} instead."
        )
    return document


def _json_kind(value: Any) -> str:
    """A JSON value's kind in JSON's own words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array"}.get(type(value), "an unexpected value")


def readable_job_id(document: dict[str, Any]) -> str | None:
    """The job id if the timestamp is usable, even when the rest of the file is not."""
    raw = document.get("timestamp")
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        return None
    job_id = str(raw)
    return job_id if JOB_ID.match(job_id) else None


def _shape_errors(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "submit file"
        if error["type"] == "missing":
            problems.append(f"`{field}` is missing")
        else:
            problems.append(f"`{field}` has the wrong type ({error['msg'].lower()})")
    unique = list(dict.fromkeys(problems))
    return "; ".join(unique)


def parse_submission(document: dict[str, Any], submit_key: str, settings: AnalysisSettings) -> Submission:
    """Check a decoded submit file against the contract and the analysis's rules."""
    group = group_of(submit_key)
    if group is None:
        raise SubmitFileUnreadable(
            f"The submit file {submit_key!r} is not inside a group's submissions/ folder; "
            "upload it as {group}/submissions/submit.json."
        )
    try:
        fields = SubmitFile.model_validate(document)
    except ValidationError as exc:
        raise SubmissionRefused(
            f"The submit file is incomplete: {_shape_errors(exc)}. It needs dataname (a key or list "
            "of keys), configname (a key) and timestamp (the job id)."
        )
    job_id = readable_job_id(document)
    if job_id is None:
        raise SubmissionRefused(
            f"The timestamp {fields.timestamp!r} cannot name a job: use up to 128 letters, digits, "
            "'.', '_', ':', '+' or '-', for example 2026-11-25T10-00-00."
        )
    names = [fields.dataname] if isinstance(fields.dataname, str) else fields.dataname
    if not names:
        raise SubmissionRefused("`dataname` is empty: name at least one dataset to analyse.")
    if len(names) > MAX_DATASETS:
        raise SubmissionRefused(
            f"`dataname` lists {len(names)} datasets; one job may hold at most {MAX_DATASETS}. "
            "Split it into several jobs."
        )
    datasets = tuple(_resolve(name, "dataname", group, settings) for name in names)
    config = _resolve(fields.configname, "configname", group, settings)
    if config.is_folder:
        raise SubmissionRefused(f"`configname` {fields.configname!r} names a folder; name the parameter file itself.")
    _check_unique_basenames(datasets)
    instance_type = fields.instance_type or settings.instance_type
    check_instance_type(instance_type, settings.instance_types_allowed)
    name = job_name(settings.bucket_name, job_id)
    location = JobLocation.in_group(settings.bucket_name, group, name)
    if fields.resultpath:
        target = S3_URI.match(fields.resultpath.rstrip("/") + "/")
        if target is None:
            raise SubmissionRefused(
                f"`resultpath` {fields.resultpath!r} is not of the form s3://bucket/prefix."
            )
        if target.group(1) not in settings.bypass_buckets:
            raise SubmissionRefused(_bucket_not_allowed("resultpath", target.group(1), settings))
        location = JobLocation.bypass(target.group(1), target.group(2), name)
    return Submission(
        submit_key=submit_key, group=group, job_id=job_id, datasets=datasets, config=config,
        instance_type=instance_type, location=location, analysis_bucket=settings.bucket_name,
    )


def _bucket_not_allowed(field: str, bucket: str, settings: AnalysisSettings) -> str:
    allowed = ", ".join(settings.bypass_buckets) or "none"
    return (
        f"`{field}` names bucket {bucket!r}, which this analysis may not use. "
        f"Buckets it may use besides its own: {allowed}."
    )


def _resolve(name: str, field: str, group: str, settings: AnalysisSettings) -> ObjectRef:
    """Turn a submitted key or s3:// URI into an object the group may use, or refuse."""
    if not name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise SubmissionRefused(f"`{field}` {name!r} is empty or holds control characters.")
    uri = S3_URI.match(name)
    bucket, key = (uri.group(1), uri.group(2)) if uri else (settings.bucket_name, name)
    parts = key.rstrip("/").split("/")
    if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise SubmissionRefused(
            f"`{field}` {name!r} is not a plain key: remove leading '/', empty parts, '.' and '..'."
        )
    if bucket != settings.bucket_name:
        if bucket not in settings.bypass_buckets:
            raise SubmissionRefused(_bucket_not_allowed(field, bucket, settings))
    elif not key.startswith(f"{group}/") or key == f"{group}/":
        raise SubmissionRefused(
            f"`{field}` {name!r} is outside your group's folder: a submission from group "
            f"{group!r} may only use keys beginning {group}/."
        )
    return ObjectRef(bucket=bucket, key=key)


def _check_unique_basenames(datasets: tuple[ObjectRef, ...]) -> None:
    seen: dict[str, ObjectRef] = {}
    for ref in datasets:
        other = seen.get(ref.basename)
        if other is not None:
            what = (f"Dataset {ref.key!r} is listed twice" if other == ref else
                    f"Datasets {other.key!r} and {ref.key!r} share the name {ref.basename!r}")
            raise SubmissionRefused(
                f"{what}; their status files would collide. "
                "Rename one or submit them as separate jobs."
            )
        seen[ref.basename] = ref
