"""What a user does with an analysis, over S3 and EC2: upload, submit, follow, fetch, cancel."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.awsclient import AWSClient
from chalicelib.monitor.control import CannotCancel, cancel_job
from chalicelib.parameters import CONFIG_EXTENSIONS
from chalicelib.records import JobRecord, JobState
from service.connection import Connection

Progress = Callable[[int], None]
FINAL_JOB_STATES = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


class UserError(Exception):
    """A problem the user can fix; the message is one actionable line."""


@dataclass(frozen=True)
class JobRef:
    analysis: str
    group: str
    job_id: str
    bucket: str
    prefix: str

    @property
    def name(self) -> str:
        return self.prefix.rsplit("/", 1)[-1]


def new_job_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%S-") + secrets.token_hex(2)


class NeuroCAASClient:
    """A user's view of NeuroCAAS analyses (the local stack or an AWS account)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.s3 = connection.client("s3")
        self.ec2 = connection.client("ec2")

    # --- checks -------------------------------------------------------------------------------
    def check_analysis(self, analysis: str) -> None:
        try:
            self.s3.head_bucket(Bucket=analysis)
        except ClientError as error:
            # A group member may not list the whole bucket: 403 still means it exists.
            if error.response.get("Error", {}).get("Code") in ("403", "AccessDenied", "Forbidden"):
                return
            known = ", ".join(self.connection.analyses) or "none"
            raise UserError(f"Unknown analysis {analysis!r} on {self.connection.where} (known: {known}).") from None
        except BotoCoreError as error:
            raise UserError(f"Cannot reach {self.connection.where}: {error}.") from None

    def check_group(self, analysis: str, group: str) -> None:
        listing = self.s3.list_objects_v2(Bucket=analysis, Prefix=f"{group}/", MaxKeys=1)
        if not listing.get("KeyCount"):
            raise UserError(f"Unknown group {group!r} for analysis {analysis!r}: ask the analysis developer to add it.")

    def exists(self, bucket: str, key: str) -> bool:
        """Whether a key (or anything under a folder key) exists, using only a prefix listing,
        which the group policy grants on the group's own folders."""
        try:
            listing = self.s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        except ClientError:
            return False
        found = [item["Key"] for item in listing.get("Contents", ())]
        return bool(found) and (key.endswith("/") or found[0] == key)

    # --- submit -------------------------------------------------------------------------------
    def submit(self, analysis: str, group: str, data: list[str], config: str, *, instance_type: str | None = None,
               job_id: str | None = None, progress: Callable[[str, int], Progress] | None = None) -> JobRef:
        """Upload local files (or take existing keys) and write submit.json last."""
        self.check_analysis(analysis)
        self.check_group(analysis, group)
        datasets = [self._resolve(analysis, group, item, "inputs") for item in data]
        config_source = self._resolve(analysis, group, config, "configs")
        if isinstance(config_source[0], Path):
            _check_config(config_source[0])
        keys = []
        for source, key in [*datasets, config_source]:
            if isinstance(source, Path):
                self._upload(source, analysis, key, progress)
            keys.append(key)
        return self.start_job(analysis, group, keys[:-1], keys[-1], instance_type=instance_type, job_id=job_id)

    def start_job(self, analysis: str, group: str, dataset_keys: list[str], config_key: str, *,
                  instance_type: str | None = None, job_id: str | None = None) -> JobRef:
        """Write submit.json for keys already uploaded: the last step of every submission."""
        job_id = job_id or new_job_id()
        submit: dict[str, Any] = {"dataname": dataset_keys, "configname": config_key, "timestamp": job_id}
        if instance_type:
            submit["instance_type"] = instance_type
        self.s3.put_object(Bucket=analysis, Key=f"{group}/submissions/{job_id}_submit.json",
                           Body=json.dumps(submit, indent=2).encode(), ContentType="application/json")
        return JobRef(analysis, group, str(job_id), analysis, f"{group}/results/job__{analysis}_{job_id}")

    def _resolve(self, analysis: str, group: str, item: str, folder: str) -> tuple[Path | None, str]:
        path = Path(item).expanduser()
        if path.exists():
            if path.is_dir():
                if not any(p.is_file() for p in path.rglob("*")):
                    raise UserError(f"The folder {item} is empty.")
                return path, f"{group}/{folder}/{path.name}/"
            return path, f"{group}/{folder}/{path.name}"
        key = item if item.startswith(f"{group}/") else f"{group}/{folder}/{item}"
        if self.exists(analysis, key):
            return None, key
        if item.startswith(("/", ".", "~")) or path.parent != Path("."):
            raise UserError(f"No such file or folder: {item}.")
        raise UserError(f"No such file or folder: {item} (nor an uploaded key {key} in {analysis}).")

    def _upload(self, source: Path, bucket: str, key: str, progress: Callable[[str, int], Progress] | None) -> None:
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        for path in files:
            target = key if source.is_file() else key + path.relative_to(source).as_posix()
            callback = progress(path.name, path.stat().st_size) if progress else None
            self.s3.upload_file(str(path), bucket, target, Callback=callback)

    # --- follow -------------------------------------------------------------------------------
    def find(self, job_id: str, analysis: str | None = None, group: str | None = None) -> JobRef:
        """Locate a job by id, searching the known analyses and their groups where not given."""
        analyses = [analysis] if analysis else list(self.connection.analyses)
        if not analyses:
            raise UserError("Say which analysis the job belongs to with --analysis.")
        for name in analyses:
            self.check_analysis(name)
            groups = [group] if group else self._groups(name)
            for candidate in groups:
                prefix = f"{candidate}/results/job__{name}_{job_id}"
                if self.exists(name, f"{prefix}/logs/job.json") or self.exists(name, f"{prefix}/logs/certificate.txt"):
                    return JobRef(name, candidate, job_id, name, prefix)
        raise UserError(f"No job {job_id!r} found in {', '.join(analyses)}. Check the id with `neurocaas jobs`.")

    def _groups(self, analysis: str) -> list[str]:
        try:
            pages = list(self.s3.get_paginator("list_objects_v2").paginate(Bucket=analysis, Delimiter="/"))
        except ClientError:
            raise UserError("Say which group the job belongs to with --group.") from None
        return [p["Prefix"].rstrip("/") for page in pages for p in page.get("CommonPrefixes", ())
                if p["Prefix"] != "logs/"]

    def record(self, ref: JobRef) -> JobRecord | None:
        try:
            body = self.s3.get_object(Bucket=ref.bucket, Key=f"{ref.prefix}/logs/job.json")["Body"].read()
        except ClientError:
            return None
        return JobRecord.model_validate_json(body)

    def statuses(self, ref: JobRef, record: JobRecord) -> dict[str, dict[str, Any]]:
        """Each dataset's status file; one not written yet reads as job.json says (INITIALIZING)."""
        found = {}
        for label, dataset in record.datasets.items():
            try:
                found[label] = json.loads(self.s3.get_object(Bucket=ref.bucket, Key=dataset.status_key)["Body"].read())
            except (ClientError, ValueError):
                found[label] = {"status": dataset.state.value, "input": dataset.input, "instance": dataset.instance_id}
        return found

    def certificate(self, ref: JobRef) -> str:
        try:
            return self.s3.get_object(Bucket=ref.bucket, Key=f"{ref.prefix}/logs/certificate.txt")["Body"].read().decode()
        except ClientError:
            return ""

    def instance_log(self, ref: JobRef, label: str) -> str:
        try:
            key = f"{ref.prefix}/internal_ec2_logs/{label}.log"
            return self.s3.get_object(Bucket=ref.bucket, Key=key)["Body"].read().decode(errors="replace")
        except ClientError:
            return ""

    def jobs(self, analysis: str, group: str) -> list[JobRecord]:
        self.check_analysis(analysis)
        self.check_group(analysis, group)
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=analysis, Prefix=f"{group}/results/",
                                                                  Delimiter="/")
        records = []
        for page in pages:
            for prefix in page.get("CommonPrefixes", ()):
                name = prefix["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                ref = JobRef(analysis, group, name, analysis, prefix["Prefix"].rstrip("/"))
                record = self.record(ref)
                if record is not None:
                    records.append(record)
        return sorted(records, key=lambda r: r.created, reverse=True)

    # --- results and cancel -------------------------------------------------------------------
    def result_files(self, ref: JobRef) -> list[tuple[str, int]]:
        prefix = f"{ref.prefix}/process_results/"
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=ref.bucket, Prefix=prefix)
        return [(item["Key"][len(prefix):], item["Size"]) for page in pages for item in page.get("Contents", ())
                if not item["Key"].endswith("/")]

    def download_results(self, ref: JobRef, target: Path,
                         progress: Callable[[str, int], Progress] | None = None) -> list[Path]:
        files = self.result_files(ref)
        written = []
        for relative, size in files:
            local = target / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            callback = progress(relative, size) if progress else None
            self.s3.download_file(ref.bucket, f"{ref.prefix}/process_results/{relative}", str(local), Callback=callback)
            written.append(local)
        return written

    def cancel(self, ref: JobRef) -> int:
        """Terminate the job's instances and mark what had not finished CANCELLED."""
        aws = AWSClient(self.s3, self.ec2, None)
        try:
            return cancel_job(aws, ref.bucket, ref.prefix, datetime.now(timezone.utc))
        except CannotCancel as error:
            raise UserError(error.message) from None


def _check_config(path: Path) -> None:
    if path.suffix.lower() not in CONFIG_EXTENSIONS:
        raise UserError(f"The parameter file {path} must end in .json, .yaml or .yml.")
    try:
        text = path.read_text()
        document = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"The parameter file {path} cannot be read: {first}.") from None
    if document is not None and not isinstance(document, dict):
        raise UserError(f"The parameter file {path} must hold a mapping of parameter names to values.")
