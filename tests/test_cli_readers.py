"""`status` and `logs` read what original NeuroCAAS scripts write, and tables keep ids and states
whole at 80 columns."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timezone

import boto3
import pytest
from moto import mock_aws
from rich.console import Console

from chalicelib.records import DatasetRecord, JobRecord, JobState
from service.client import JobRef, NeuroCAASClient
from service.connection import Connection
from service.statusfile import read_status
from service.views import Column, fitted_table, job_table

BUCKET = "cianalysispermastack"
PREFIX = f"grp/results/job__{BUCKET}_2026-11-25T10-00-00"
REF = JobRef(BUCKET, "grp", "2026-11-25T10-00-00", BUCKET, PREFIX)


@pytest.mark.parametrize("document, status, reason, output", [
    ({"status": "FAILED", "reason": ["line one", "line two"], "job_finish": "N/A"}, "FAILED", "line one line two", []),
    ({"status": "FAILED", "reason": 3, "job_start": "2026-11-25 10:00:00"}, "FAILED", "3", []),
    ({"status": "IN PROGRESS", "stdout": "a\nb", "stderr": ["oops"]}, "IN PROGRESS", "", ["a", "b", "oops"]),
    ({"status": "SUCCESS", "std": {"1": "second", "0": "first", "10": "last"}}, "SUCCESS", "", ["first", "second", "last"]),
    ({"status": "success", "job_start": 1764064800, "job_finish": None}, "SUCCESS", "", []),
    ({"status": "Completed"}, "SUCCESS", "", []),
    ({"job_start": "not a time", "job_finish": {"nested": 1}}, "", "", []),
])
def test_status_files_of_any_writer_are_read(document, status, reason, output) -> None:
    read = read_status(json.dumps(document).encode())
    assert (read.status, read.reason, read.output) == (status, reason, output)
    read.elapsed()  # never raises, whatever the times were


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b"null", b"\xff\xfe"])
def test_unreadable_status_files_are_empty(body: bytes) -> None:
    assert read_status(body).status == ""


def record(*labels: str) -> JobRecord:
    now = datetime(2026, 11, 25, 10, tzinfo=timezone.utc)
    return JobRecord(job_id=REF.job_id, analysis=BUCKET, group="grp", submit_key="grp/submissions/submit.json",
                     submit_etag="x", state=JobState.RUNNING, created=now, updated=now, datasets={
                         label: DatasetRecord(input=f"grp/inputs/{label}", config="grp/configs/c.yaml",
                                              status_key=f"{PREFIX}/logs/DATASET_NAME:{label}_STATUS.txt",
                                              instance_id=f"i-0123456789abcdef{index}")
                         for index, label in enumerate(labels)})


def rendered(renderable: object, width: int = 80) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_the_job_table_keeps_states_and_ids_whole_at_80_columns() -> None:
    labels = ("a_rather_long_dataset_name_from_a_real_rig_session_04.tif", "short.tif")
    statuses = {labels[0]: read_status(json.dumps({"status": "IN PROGRESS", "reason": ["x"] * 40}).encode()),
                labels[1]: read_status(json.dumps({"status": "SUCCESS", "job_finish": "N/A"}).encode())}
    text = rendered(job_table(REF, record(*labels), statuses, 80))
    assert all(len(line) <= 80 for line in text.splitlines())
    for whole in (*labels, "IN PROGRESS", "SUCCESS"):
        assert whole in text, text


def test_fitted_tables_drop_optional_columns_before_cutting_a_value() -> None:
    columns = [Column("job", whole=True), Column("state", whole=True), Column("instance type", drop=1),
               Column("submitted", drop=2)]
    rows = [["job__calcium-events_2026-12-02T05-56-31-ab12", "SUCCEEDED", "m5.large", "2026-12-02 05:56"]]
    narrow = rendered(fitted_table(columns, rows, 60), 60)
    assert "job__calcium-events_2026-12-02T05-56-31-ab12" in narrow and "SUCCEEDED" in narrow
    assert "submitted" not in narrow
    wide = rendered(fitted_table(columns, rows, 120), 120)
    assert "submitted" in wide and "m5.large" in wide


@pytest.fixture
def client() -> Iterator[NeuroCAASClient]:
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield NeuroCAASClient(Connection(endpoint=None, credentials={}, region="us-east-1"))


def test_boot_logs_under_neurocaas_names_are_found(client: NeuroCAASClient) -> None:
    logs = f"{PREFIX}/internal_ec2_logs"
    client.s3.put_object(Bucket=BUCKET, Key=f"{logs}/movie.tif-0.log", Body=b"first try")
    client.s3.put_object(Bucket=BUCKET, Key=f"{logs}/movie.tif-1.log", Body=b"second try")
    client.s3.put_object(Bucket=BUCKET, Key=f"{logs}/other.tif-0.log", Body=b"someone else")
    client.s3.put_object(Bucket=BUCKET, Key=f"{logs}/exact.tif.log", Body=b"this project's name")

    both = client.instance_log(REF, "movie.tif")
    assert "first try" in both and "second try" in both and "someone else" not in both
    assert client.instance_log(REF, "exact.tif") == "this project's name"
    assert client.instance_log(REF, "absent.tif") == ""


def test_statuses_tolerate_missing_and_foreign_files(client: NeuroCAASClient) -> None:
    job = record("a.tif", "b.tif")
    client.s3.put_object(Bucket=BUCKET, Key=job.datasets["a.tif"].status_key,
                         Body=json.dumps({"status": "FAILED", "reason": ["exit 3"], "stdout": "boom"}).encode())
    statuses = client.statuses(REF, job)
    assert statuses["a.tif"].reason == "exit 3" and statuses["a.tif"].output == ["boom"]
    assert statuses["b.tif"].status == "INITIALIZING"  # no status file yet: as job.json says
    assert "INITIALIZING" in rendered(job_table(REF, job, statuses))
