"""The remote side's reporter: only the status file, throttled, and a final state never lost quietly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from neurocaas_agent.core import S3Error
from neurocaas_agent.reporter import StatusReporter


class FlakyS3:
    """Records PUTs; fails the first ``failures`` of them."""

    def __init__(self, failures: int) -> None:
        self.failures, self.puts = failures, []  # type: ignore[var-annotated]

    def put(self, bucket: str, key: str, body: bytes, **_: Any) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise S3Error(503, "SlowDown", "Please reduce your request rate.")
        self.puts.append((bucket, key, json.loads(body)))


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
