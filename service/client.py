"""What a user does with an analysis, over S3 only: upload, submit, follow, fetch, cancel.

Everything goes through the group's own folder (what the group policy grants on AWS): a cancel is a
cancel file the job manager acts on, so a group member needs no EC2 rights.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from chalicelib.analysiscard import CARD_KEY, AnalysisCard, check_concurrency, check_instance_type
from chalicelib.awslimits import CONDITIONAL_CONFLICT_CODES
from chalicelib.exceptions import SubmissionRefused
from chalicelib.parameters import parse_parameters
from chalicelib.records import JobRecord, JobState
from chalicelib.submission import JOB_ID
from service.connection import Connection
from service.statusfile import DatasetStatus, read_status

Progress = Callable[[int], None]
FINAL_JOB_STATES = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
VERDICT_SECONDS = 60.0  # how long submit waits for the job manager to accept or refuse
CANCEL_SECONDS = 30.0


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


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class NeuroCAASClient:
    """A user's view of NeuroCAAS analyses (the local stack or an AWS account)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.s3 = connection.client("s3")

    # --- checks -------------------------------------------------------------------------------
    def check_analysis(self, analysis: str) -> None:
        try:
            self.s3.head_bucket(Bucket=analysis)
        except ClientError as error:
            # A group member may not list the whole bucket: 403 still means it exists.
            if _code(error) in ("403", "AccessDenied", "Forbidden"):
                return
            known = ", ".join(self.connection.analyses) or "none"
            raise UserError(f"Unknown analysis {analysis!r} on {self.connection.where} (known: {known}).") from None
        except ParamValidationError:  # the SDK checks bucket names itself: a name no analysis can have
            known = ", ".join(self.connection.analyses) or "none"
            raise UserError(f"{analysis!r} is not an analysis name (known: {known}).") from None
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
        except ClientError as error:
            if _code(error) in ("NoSuchBucket", "NoSuchKey", "404"):
                return False
            raise  # a denial is reported as one, not as "not found"
        found = [item["Key"] for item in listing.get("Contents", ())]
        return bool(found) and (key.endswith("/") or found[0] == key)

    def card(self, analysis: str) -> AnalysisCard | None:
        """The analysis's public facts (instance types, cap, parameters), when it can be read."""
        try:
            return AnalysisCard.from_bytes(self.s3.get_object(Bucket=analysis, Key=CARD_KEY)["Body"].read())
        except ClientError:
            return None

    # --- submit -------------------------------------------------------------------------------
    def submit(self, analysis: str, group: str, data: list[str], config: str, *, instance_type: str | None = None,
               job_id: str | None = None, progress: Callable[[str, int], Progress] | None = None) -> JobRef:
        """Check everything that can be checked, upload local files (or take existing keys), write submit.json last."""
        self.check_analysis(analysis)
        self.check_group(analysis, group)
        job_id = job_id or new_job_id()
        ref = JobRef(analysis, group, job_id, analysis, f"{group}/results/job__{analysis}_{job_id}")
        submit_key = f"{group}/submissions/{job_id}_submit.json"
        self._check_new_job(ref, submit_key)
        datasets = [self._resolve(analysis, group, item, "inputs") for item in data]
        config_source = self._resolve(analysis, group, config, "configs")
        self._check_before_upload(analysis, datasets, config_source, instance_type)
        keys = []
        for source, key in [*datasets, config_source]:
            if isinstance(source, Path):
                self._upload(source, analysis, key, progress)
            keys.append(key)
        return self.start_job(analysis, group, keys[:-1], keys[-1], instance_type=instance_type, job_id=job_id)

    def start_job(self, analysis: str, group: str, dataset_keys: list[str], config_key: str, *,
                  instance_type: str | None = None, job_id: str | None = None) -> JobRef:
        """Write submit.json for keys already uploaded: the last step of every submission. It is written
        only if absent, so a job id taken meanwhile is refused rather than overwritten."""
        job_id = job_id or new_job_id()
        ref = JobRef(analysis, group, job_id, analysis, f"{group}/results/job__{analysis}_{job_id}")
        submit_key = f"{group}/submissions/{job_id}_submit.json"
        submit: dict[str, Any] = {"dataname": dataset_keys, "configname": config_key, "timestamp": job_id}
        if instance_type:
            submit["instance_type"] = instance_type
        try:
            self.s3.put_object(Bucket=analysis, Key=submit_key, Body=json.dumps(submit, indent=2).encode(),
                               ContentType="application/json", IfNoneMatch="*")
        except ClientError as error:
            if _code(error) in (*CONDITIONAL_CONFLICT_CODES, "412"):
                raise UserError(f"Job id {job_id!r} was taken while uploading; submit again with another "
                                "--job-id.") from None
            raise
        return ref

    def _check_new_job(self, ref: JobRef, submit_key: str) -> None:
        """Refuse an id that is malformed or already used, before anything is written."""
        if not JOB_ID.match(ref.job_id):
            raise UserError(f"Job id {ref.job_id!r} is not usable: use letters, digits and . _ : + - "
                            "(at most 128, starting with a letter or digit).")
        if self.exists(ref.bucket, submit_key) or self.exists(ref.bucket, f"{ref.prefix}/"):
            raise UserError(f"Job id {ref.job_id!r} is already used in {ref.analysis} by group {ref.group}. "
                            f"Choose another --job-id (see `neurocaas jobs {ref.analysis} -g {ref.group}`).")

    def _check_before_upload(self, analysis: str, datasets: list[tuple[Path | None, str]],
                             config: tuple[Path | None, str], instance_type: str | None) -> None:
        """What the job manager would refuse and can be known now: the instance type, the cap, the parameters."""
        card = self.card(analysis)
        body = self._config_body(analysis, config)
        try:
            parameters = parse_parameters(config[1], body, card.parameters if card else None) if body else None
            if card is not None:
                check_instance_type(instance_type or card.instance_types[0], card.instance_types)
                members = (parameters.ensemble_size if parameters else None) or 1
                check_concurrency(card.deploy_limit, 0, len(datasets) * members)
        except SubmissionRefused as error:
            raise UserError(error.message.replace(repr(config[1]), str(config[0] or config[1]))) from None

    def _config_body(self, analysis: str, config: tuple[Path | None, str]) -> bytes | None:
        source, key = config
        if isinstance(source, Path):
            try:
                return source.read_bytes()
            except OSError as error:
                raise UserError(f"The parameter file {source} cannot be read: {error.strerror}.") from None
        try:
            return self.s3.get_object(Bucket=analysis, Key=key)["Body"].read()
        except ClientError:
            return None  # the job manager reads it

    def verdict(self, ref: JobRef, timeout: float = VERDICT_SECONDS, interval: float = 0.3) -> JobRecord | None:
        """Wait until the job manager has accepted (RUNNING) or refused the job; None if it has not answered."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.record(ref)
            if record is not None and record.state is not JobState.QUEUED:
                return record
            if time.monotonic() > deadline:
                return None
            time.sleep(interval)

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
        """The job's job.json, or None while the job manager has not written (a readable) one."""
        try:
            body = self.s3.get_object(Bucket=ref.bucket, Key=f"{ref.prefix}/logs/job.json")["Body"].read()
        except ClientError:
            return None
        try:
            return JobRecord.model_validate_json(body)
        except ValueError:
            return None

    def statuses(self, ref: JobRef, record: JobRecord) -> dict[str, DatasetStatus]:
        """Each dataset's status file, read whatever shape its writer gave it; one not written yet reads
        as job.json says (INITIALIZING, on its instance)."""
        found = {}
        for label, dataset in record.datasets.items():
            try:
                body = self.s3.get_object(Bucket=ref.bucket, Key=dataset.status_key)["Body"].read()
            except ClientError:
                found[label] = DatasetStatus(status=dataset.state.value, instance=dataset.instance_id or "")
                continue
            found[label] = read_status(body)
        return found

    def certificate(self, ref: JobRef) -> str:
        try:
            body = self.s3.get_object(Bucket=ref.bucket, Key=f"{ref.prefix}/logs/certificate.txt")["Body"].read()
        except ClientError:
            return ""
        return body.decode(errors="replace")

    def instance_log(self, ref: JobRef, label: str) -> str:
        """A dataset's boot log: ``{label}.log``, or NeuroCAAS's ``{dataset}-{index}.log`` names."""
        folder = f"{ref.prefix}/internal_ec2_logs/"
        stem = label.rsplit(".", 1)[0]
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=ref.bucket, Prefix=folder)
            names = [item["Key"] for page in pages for item in page.get("Contents", ())]
        except ClientError:
            return ""
        exact = [key for key in names if key == f"{folder}{label}.log"]
        numbered = [key for key in names if key.endswith(".log") and key not in exact
                    and key[len(folder):].rsplit("-", 1)[0] in (label, stem)]
        parts = []
        for key in exact or sorted(numbered):
            try:
                text = self.s3.get_object(Bucket=ref.bucket, Key=key)["Body"].read().decode(errors="replace")
            except ClientError:
                continue
            parts.append(text if exact or len(numbered) == 1 else f"--- {key[len(folder):]}\n{text}")
        return "\n".join(parts)

    def dataset_output(self, ref: JobRef, record: JobRecord, label: str) -> str:
        """What a dataset printed: the output its status file reports (NeuroCAAS's scripts keep the
        analysis's output there rather than in the boot log), then its boot log; lines the boot log
        already holds are not repeated."""
        boot = self.instance_log(ref, label)
        reported = self.statuses(ref, record).get(label)
        lines = [line for line in (reported.output if reported else []) if line not in boot]
        return "\n".join(part for part in ("\n".join(lines), boot) if part)

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

    def cancel(self, ref: JobRef, timeout: float = CANCEL_SECONDS, interval: float = 0.3) -> JobRecord | None:
        """Ask the job manager to cancel the job with the group's cancel file; returns the record once it
        has acted (None if it has not within ``timeout``)."""
        record = self.record(ref)
        if record is None:
            raise UserError(f"Job {ref.job_id} has no record yet; wait for the job manager, then cancel again.")
        if record.state in FINAL_JOB_STATES:
            raise UserError(f"Job {ref.job_id} has already ended ({record.state.value}).")
        self.s3.put_object(Bucket=ref.bucket, Key=self.cancel_key(ref), ContentType="application/json",
                           Body=json.dumps({"timestamp": ref.job_id}).encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(interval)
            record = self.record(ref)
            if record is not None and record.state in FINAL_JOB_STATES:
                return record
        return None

    @staticmethod
    def cancel_key(ref: JobRef) -> str:
        """The group's cancel file for a job (CONTRACT section 2), which the job manager acts on."""
        return f"{ref.group}/submissions/{ref.job_id}_cancel.json"
