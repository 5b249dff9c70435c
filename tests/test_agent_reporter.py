"""The remote side's reporter: only the status file, throttled, and a final state never lost quietly."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from neurocaas_agent import core
from neurocaas_agent.core import S3Error
from neurocaas_agent.reporter import StatusReporter


class FlakyS3:
    """One bucket in memory with S3's conditional writes; fails the first ``failures`` PUTs."""

    def __init__(self, failures: int) -> None:
        self.failures, self.puts = failures, []  # type: ignore[var-annotated]
        self.objects: dict[str, tuple[bytes, str]] = {}

    def get(self, bucket: str, key: str) -> tuple[bytes, str]:
        if key not in self.objects:
            raise S3Error(404, "NoSuchKey", "The specified key does not exist.")
        return self.objects[key]

    def put(self, bucket: str, key: str, body: bytes, headers: dict[str, str] | None = None, **_: Any) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise S3Error(503, "SlowDown", "Please reduce your request rate.")
        headers = headers or {}
        current = self.objects.get(key)
        if "If-Match" in headers and current is None:
            raise S3Error(404, "NoSuchKey", "The specified key does not exist.")
        if ("If-Match" in headers and current is not None and current[1] != headers["If-Match"]) or (
                headers.get("If-None-Match") == "*" and current is not None):
            raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
        etag = f'"{hashlib.md5(body).hexdigest()}"'
        self.objects[key] = (body, etag)
        self.puts.append((bucket, key, json.loads(body)))
        return etag


def reporter(s3: FlakyS3, clock: list[float]) -> StatusReporter:
    return StatusReporter(s3, bucket="b", key="g/results/j/logs/DATASET_NAME:a.bin_STATUS.txt", input_key="g/inputs/a.bin",
                          interval=30.0, clock=lambda: clock[0], pause=lambda seconds: None)


def test_progress_is_throttled_and_only_the_status_file_is_written() -> None:
    s3, clock = FlakyS3(0), [0.0]
    live = reporter(s3, clock)
    live.started()
    for second in range(1, 61):
        clock[0] = float(second)
        live.output(f"step {second}\n")
        live.tick()
    assert len(s3.puts) == 3  # the start, then one per 30 s
    assert {key for _, key, _ in s3.puts} == {"g/results/j/logs/DATASET_NAME:a.bin_STATUS.txt"}
    assert s3.puts[-1][2]["status"] == "IN PROGRESS" and s3.puts[-1][2]["command"] == "step 60"


def test_the_final_state_is_retried_until_it_is_written() -> None:
    s3, clock = FlakyS3(2), [0.0]
    assert reporter(s3, clock).finished("SUCCESS", "") is True
    assert s3.puts[-1][2]["status"] == "SUCCESS" and s3.puts[-1][2]["job_finish"]


def test_a_final_state_that_cannot_be_written_is_said_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    s3, clock = FlakyS3(100), [0.0]
    assert reporter(s3, clock).finished("FAILED", "boom") is False
    assert "the boot script will report the exit code instead" in capsys.readouterr().err


KEY = "g/results/j/logs/DATASET_NAME:a.bin_STATUS.txt"
RELAUNCHED = {"status": "INITIALIZING", "instance": "i-new", "attempts": [
    {"instance": "i-old", "ended": "Spot interruption warning"}, {"instance": "i-new", "ended": ""}]}


@pytest.fixture
def on_old_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROCAAS_INSTANCE_ID", "i-old")
    monkeypatch.setattr(core, "_instance", {})


@pytest.mark.usefixtures("on_old_instance")
def test_a_relaunch_takes_the_status_file_over_and_the_replaced_instance_stops_writing(
        capsys: pytest.CaptureFixture[str]) -> None:
    s3, clock = FlakyS3(0), [0.0]
    old = reporter(s3, clock)
    old.started()
    # The job manager announces the relaunch (then the new instance reports) over the old one's report.
    s3.objects[KEY] = (json.dumps(RELAUNCHED).encode(), '"announced"')
    clock[0] = 60.0
    old.output("still going\n")
    old.tick()
    assert old.finished("FAILED", "powered off") is False  # at once: no retry rounds against the new owner
    assert json.loads(s3.objects[KEY][0]) == RELAUNCHED and len(s3.puts) == 1
    assert "no longer reporting" in capsys.readouterr().err


@pytest.mark.usefixtures("on_old_instance")
def test_an_instance_a_relaunch_replaced_never_makes_a_first_write() -> None:
    s3, clock = FlakyS3(0), [0.0]
    s3.objects[KEY] = (json.dumps(RELAUNCHED).encode(), '"announced"')
    late = reporter(s3, clock)
    late.started()
    assert late.replaced and not s3.puts


def test_the_relaunched_instance_takes_over_from_the_announcement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROCAAS_INSTANCE_ID", "i-new")
    monkeypatch.setattr(core, "_instance", {})
    s3, clock = FlakyS3(0), [0.0]
    s3.objects[KEY] = (json.dumps(RELAUNCHED).encode(), '"announced"')
    new = reporter(s3, clock)
    new.kept = {"attempts": RELAUNCHED["attempts"]}
    new.started()
    assert new.finished("SUCCESS", "") is True
    assert s3.puts[-1][2]["status"] == "SUCCESS" and s3.puts[-1][2]["instance"] == "i-new"


@pytest.mark.usefixtures("on_old_instance")
def test_the_boot_script_finalizer_leaves_a_relaunched_dataset_alone(tmp_path: Any) -> None:
    s3 = FlakyS3(0)
    s3.objects[KEY] = (json.dumps(RELAUNCHED).encode(), '"announced"')
    log = tmp_path / "boot.log"
    log.write_text("Terminated\n")
    assert core.finalize(s3, "b", KEY, 143, str(log), "g/inputs/a.bin") is False  # type: ignore[arg-type]
    assert json.loads(s3.objects[KEY][0]) == RELAUNCHED
    s3.objects[KEY] = (json.dumps({"status": "IN PROGRESS", "instance": "i-old"}).encode(), '"mine"')
    assert core.finalize(s3, "b", KEY, 143, str(log), "g/inputs/a.bin") is True  # type: ignore[arg-type]
    assert json.loads(s3.objects[KEY][0])["status"] == "FAILED"


def test_a_write_whose_answer_was_lost_is_not_taken_for_another_writer() -> None:
    s3, clock = FlakyS3(0), [0.0]
    live = reporter(s3, clock)
    live.started()
    real_put = s3.put

    def answer_lost(bucket: str, key: str, body: bytes, headers: dict[str, str] | None = None, **_: Any) -> str:
        real_put(bucket, key, body, headers=headers)  # S3 makes the write; the client resends it
        return real_put(bucket, key, body, headers=headers)

    s3.put = answer_lost  # type: ignore[method-assign]
    clock[0] = 60.0
    live.output("step 2\n")
    live.tick()
    s3.put = real_put  # type: ignore[method-assign]
    assert not live.replaced
    assert live.finished("SUCCESS", "") is True and json.loads(s3.objects[KEY][0])["status"] == "SUCCESS"
