"""Each user command against a live local stack, and the bad-input cases."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.conftest import echo_stack_home

BUCKET = "echo-analysis"
runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with echo_stack_home(tmp_path_factory.mktemp("neurocaas-home")) as running:
        yield running


@pytest.fixture
def cli(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NEUROCAAS_HOME", str(home))
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> object:
        return runner.invoke(app, list(args))
    return invoke


def files(tmp_path: Path, mode: str = "ok") -> tuple[Path, Path]:
    data = tmp_path / "movie.bin"
    data.write_bytes(b"0123456789")
    config = tmp_path / "params.json"
    config.write_text(json.dumps({"mode": mode}))
    return data, config


def bucket_keys(home: Path) -> set[str]:
    from service.connection import connect
    s3 = connect(state_dir=home / "local").client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", ())}
    return {k for k in keys if k.split("/")[1:2] in (["inputs"], ["configs"], ["submissions"])}


def test_submit_wait_then_logs_results_and_jobs(cli, tmp_path: Path) -> None:
    data, config = files(tmp_path)

    submitted = cli("submit", BUCKET, str(data), "-g", "lab", "-c", str(config), "--job-id", "cli1", "--wait")
    assert submitted.exit_code == 0, submitted.output
    assert "Submitted job cli1" in submitted.output and "SUCCEEDED" in submitted.output

    logs = cli("logs", "cli1", "--dataset", "movie.bin")
    assert logs.exit_code == 0
    assert "STEP 4/4 (Initialize Processing): DONE" in logs.output and "analysing movie.bin" in logs.output

    results = cli("results", "cli1", "-o", str(tmp_path / "out"))
    assert results.exit_code == 0, results.output
    assert (tmp_path / "out" / "movie.bin.size.txt").read_text().strip() == "10"

    listing = cli("jobs", BUCKET, "-g", "lab")
    assert "cli1" in listing.output and "SUCCEEDED" in listing.output

    status = cli("status", "cli1", "--once")
    assert "movie.bin" in status.output and "SUCCESS" in status.output


def test_a_failed_job_makes_submit_wait_exit_nonzero(cli, tmp_path: Path) -> None:
    data, config = files(tmp_path, mode="fail")
    result = cli("submit", BUCKET, str(data), "-g", "lab", "-c", str(config), "--job-id", "cli2", "--wait")
    assert result.exit_code == 1
    assert "FAILED" in result.output


def test_cancel_stops_a_running_job(cli, tmp_path: Path) -> None:
    data, config = files(tmp_path, mode="hang")
    assert cli("submit", BUCKET, str(data), "-g", "lab", "-c", str(config), "--job-id", "cli3").exit_code == 0
    import time
    deadline = time.monotonic() + 20
    while "IN PROGRESS" not in cli("status", "cli3", "--once").output:
        assert time.monotonic() < deadline
        time.sleep(0.3)

    cancelled = cli("cancel", "cli3")

    assert cancelled.exit_code == 0 and "1 instance(s) stopped" in cancelled.output
    assert "CANCELLED" in cli("status", "cli3", "--once").output
    again = cli("cancel", "cli3")
    assert again.exit_code == 1 and "already ended" in again.output


@pytest.mark.parametrize("change,message", [
    (lambda d, c: ([str(d.with_name("missing.bin"))], str(c), "lab", BUCKET), "No such file or folder"),
    (lambda d, c: ([str(d)], str(c), "nolab", BUCKET), "Unknown group 'nolab'"),
    (lambda d, c: ([str(d)], str(c), "lab", "no-such-analysis"), "Unknown analysis 'no-such-analysis'"),
    (lambda d, c: ([str(d)], str(c.with_name("broken.json")), "lab", BUCKET), "does not parse at line 1, column 2"),
    (lambda d, c: ([str(d)], str(c), "lab", BUCKET, "--instance-type", "p4d.24xlarge"),
     "Instance type 'p4d.24xlarge' is not offered by this analysis. Choose one of: t2.micro"),
    (lambda d, c: ([str(d)] * 21, str(c), "lab", BUCKET), "runs at most 20 instance(s) at once and this job needs 21"),
    (lambda d, c: ([str(d)], str(c), "lab", BUCKET, "--job-id", "no/slashes"), "Job id 'no/slashes' is not usable"),
])
def test_bad_input_is_one_clear_line_and_uploads_nothing(cli, home: Path, tmp_path: Path, change, message) -> None:
    data, config = files(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    datasets, config_arg, group, analysis, *options = change(data, config)
    before = bucket_keys(home)

    result = cli("submit", analysis, *datasets, "-g", group, "-c", config_arg, *options)

    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert bucket_keys(home) == before


def test_a_used_job_id_is_refused_before_anything_is_written(cli, home: Path, tmp_path: Path) -> None:
    data, config = files(tmp_path)
    assert cli("submit", BUCKET, str(data), "-g", "lab", "-c", str(config), "--job-id", "dup1").exit_code == 0
    other = tmp_path / "other.bin"
    other.write_bytes(b"other data")
    before = bucket_keys(home)

    again = cli("submit", BUCKET, str(other), "-g", "lab", "-c", str(config), "--job-id", "dup1", "--wait")

    assert again.exit_code == 1 and "Job id 'dup1' is already used" in again.output
    assert "Submitted" not in again.output and bucket_keys(home) == before


def test_a_typo_in_a_declared_parameter_is_refused_before_uploading(cli, home: Path, tmp_path: Path) -> None:
    from chalicelib.analysiscard import CARD_KEY
    from service.connection import connect

    s3 = connect(state_dir=home / "local").client("s3")
    card = s3.get_object(Bucket=BUCKET, Key=CARD_KEY)["Body"].read()
    declared = {**json.loads(card), "parameters": {"type": "object", "additionalProperties": False,
                                                    "properties": {"mode": {"enum": ["ok", "fail", "hang"]}}}}
    s3.put_object(Bucket=BUCKET, Key=CARD_KEY, Body=json.dumps(declared).encode())
    try:
        data, _ = files(tmp_path)
        typo, wrong = tmp_path / "typo.yaml", tmp_path / "wrong.yaml"
        typo.write_text("mdoe: ok\n")
        wrong.write_text("mode: fast\n")
        before = bucket_keys(home)
        refused = cli("submit", BUCKET, str(data), "-g", "lab", "-c", str(typo))
        invalid = cli("submit", BUCKET, str(data), "-g", "lab", "-c", str(wrong))
    finally:
        s3.put_object(Bucket=BUCKET, Key=CARD_KEY, Body=card)
    assert refused.exit_code == 1 and "unknown parameter `mdoe` (did you mean `mode`?)" in refused.output
    assert invalid.exit_code == 1 and "`mode`: 'fast' is not one of ['ok', 'fail', 'hang']" in invalid.output
    assert bucket_keys(home) == before


def test_a_job_the_job_manager_refuses_makes_submit_exit_nonzero_with_its_reason(cli, tmp_path: Path) -> None:
    data, _ = files(tmp_path)
    costly = tmp_path / "costly.json"
    costly.write_text(json.dumps({"mode": "ok", "__duration__": 10_000_000}))

    result = cli("submit", BUCKET, str(data), "-g", "lab", "-c", str(costly), "--job-id", "costly1")

    assert result.exit_code == 1, result.output
    assert "Submitted job costly1" in result.output
    assert "Job costly1 was refused: Group 'lab' has a budget of $100.00" in result.output
    listing = cli("jobs", BUCKET, "-g", "lab")
    assert "costly1" in listing.output and "FAILED" in listing.output


def test_no_running_stack_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NEUROCAAS_HOME", str(tmp_path))
    result = runner.invoke(app, ["jobs", BUCKET, "-g", "lab"])
    assert result.exit_code == 1
    assert "No local stack is running" in result.output


class _Denied:
    """An S3 client as a group member sees it under the group policy: no top-level listing,
    no HEAD on the bucket, only prefix listings."""

    def __init__(self, s3) -> None:  # type: ignore[no-untyped-def]
        self.s3 = s3

    def head_bucket(self, **kwargs):  # type: ignore[no-untyped-def]
        from botocore.exceptions import ClientError
        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadBucket")

    def head_object(self, **kwargs):  # type: ignore[no-untyped-def]
        from botocore.exceptions import ClientError
        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        return getattr(self.s3, name)


def test_a_group_member_without_bucket_wide_rights_can_still_submit_existing_keys(home: Path, tmp_path: Path) -> None:
    from service.client import NeuroCAASClient
    from service.connection import connect

    client = NeuroCAASClient(connect(state_dir=home / "local"))
    client.s3.put_object(Bucket=BUCKET, Key="lab/inputs/already.bin", Body=b"123")
    client.s3.put_object(Bucket=BUCKET, Key="lab/configs/already.json", Body=b'{"mode": "ok"}')
    client.s3 = _Denied(client.s3)

    ref = client.submit(BUCKET, "lab", ["already.bin"], "already.json", job_id="member1")

    assert ref.prefix == f"lab/results/job__{BUCKET}_member1"


def test_costs_show_job_ids_and_no_bogus_total(cli, tmp_path: Path) -> None:
    data, config = files(tmp_path)
    assert cli("submit", BUCKET, str(data), "-g", "lab", "-c", str(config), "--job-id", "paid1", "--wait").exit_code == 0

    shown = cli("costs", BUCKET, "-g", "lab")

    assert shown.exit_code == 0, shown.output
    assert "paid1" in shown.output and "job__" not in shown.output and "(all)" not in shown.output
    assert re.search(r"paid1\s+1\s+\$", shown.output), shown.output  # one instance, its dollars
