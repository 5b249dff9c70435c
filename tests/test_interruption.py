"""The instance side of an interruption: the notice file and the checkpoint folder kept in S3
(the remote side's own S3 client, against a moto server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from neurocaas_agent.core import Client
from neurocaas_agent.interruption import (
    InterruptionWatch,
    attempts_report,
    file_notice,
    metadata_notice,
)

from tests.conftest import with_bucket

BUCKET, PREFIX = "results", "lab/results/job__x_1/process_results/checkpoints/a.tif"


@pytest.fixture(scope="module")
def endpoint(endpoint: str) -> str:
    """The shared moto server (tests/conftest.py), with this module's bucket."""
    return with_bucket(endpoint, BUCKET)


@pytest.fixture
def client(agent_client: Client) -> Client:
    return agent_client


def test_the_warning_writes_the_notice_file_once_and_tells_the_runner(client: Client, tmp_path: Path) -> None:
    source = tmp_path / "instance-action.json"
    heard: list[dict[str, Any]] = []
    watch = InterruptionWatch(client, BUCKET, PREFIX, tmp_path / "work", notice=file_notice(str(source)),
                              on_notice=heard.append)
    notice = Path(watch.environment()["NEUROCAAS_INTERRUPTION_NOTICE"])

    assert watch.check() is False and not notice.exists()
    source.write_text('{"action": "terminate", "time": "2026-11-25T10:02:00Z"}')
    assert watch.check() and watch.check()

    assert notice.read_text() == '{"action": "terminate", "time": "2026-11-25T10:02:00Z"}'
    assert heard == [{"action": "terminate", "time": "2026-11-25T10:02:00Z"}]


def test_checkpoints_are_uploaded_when_changed_and_restored_by_the_next_attempt(client: Client,
                                                                                tmp_path: Path) -> None:
    first = InterruptionWatch(client, BUCKET, PREFIX, tmp_path / "first", notice=lambda: None)
    folder = Path(first.environment()["NEUROCAAS_CHECKPOINT_DIR"])
    (folder / "model").mkdir()
    (folder / "model" / "weights.bin").write_bytes(b"1234")

    assert first.sync() == 1 and first.sync() == 0  # unchanged files are not sent again
    (folder / "step.txt").write_text("step 7")
    assert first.stop() == 1

    second = InterruptionWatch(client, BUCKET, PREFIX, tmp_path / "second", notice=lambda: None)
    assert second.restore() == 2
    restored = Path(second.environment()["NEUROCAAS_CHECKPOINT_DIR"])
    assert (restored / "model" / "weights.bin").read_bytes() == b"1234"
    assert (restored / "step.txt").read_text() == "step 7"
    assert second.sync() == 0  # what was restored is not uploaded back


def test_without_instance_metadata_there_is_no_notice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert metadata_notice() is None


def test_a_relaunched_instance_reports_every_attempt_its_own_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEUROCAAS_ATTEMPTS", raising=False)
    assert attempts_report("i-2") == {}
    monkeypatch.setenv("NEUROCAAS_ATTEMPTS", '[{"instance": "i-1", "ended": "Spot interruption warning"}, '
                                             '{"capacity": "spot", "why": "started again"}]')
    assert attempts_report("i-2") == {"attempts": [{"instance": "i-1", "ended": "Spot interruption warning"},
                                                   {"capacity": "spot", "why": "started again", "instance": "i-2"}]}
    monkeypatch.setenv("NEUROCAAS_ATTEMPTS", "{not json")
    assert attempts_report("i-2") == {}
