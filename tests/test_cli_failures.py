"""No command ever prints a traceback: every AWS-facing command under an identity denied
everything, with no region, and with no credentials, ends in one line and exit code 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from service.cli import app
from tests.conftest import FIXTURES

runner = CliRunner()
BLUEPRINT = str(FIXTURES / "echo_analysis")


def commands(tmp_path: Path, administrator: bool = True) -> list[list[str]]:
    """Every command that reaches AWS; with ``administrator``, also those of deploying and developing
    (they take the region from the blueprint, so they only run under the denying stub: no request leaves)."""
    data, config = tmp_path / "a.bin", tmp_path / "p.json"
    data.write_bytes(b"1")
    config.write_text(json.dumps({"mode": "ok"}))
    job = ["J1", "-a", "echo-analysis", "-g", "lab"]
    return [
        ["submit", "echo-analysis", str(data), "-g", "lab", "-c", str(config), "--aws"],
        ["status", *job, "--once", "--aws"], ["status", "J1", "--aws"],
        ["jobs", "echo-analysis", "-g", "lab", "--aws"],
        ["logs", *job, "-d", "a.bin", "--aws"], ["results", *job, "-o", str(tmp_path / "r"), "--aws"],
        ["costs", "echo-analysis", "--aws"], ["cancel", *job, "--aws"],
    ] + [
        ["init", "--plan"], ["deploy", BLUEPRINT, "--plan"], ["destroy", BLUEPRINT, "--plan"],
        ["users", "list", BLUEPRINT, "lab"], ["users", "add", BLUEPRINT, "lab", "ana", "--plan"],
        ["develop", "launch", BLUEPRINT, "--aws"],
    ] * administrator


def assert_one_line(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) <= 2 and lines[-1].startswith("✗"), result.output
    assert any(fragment in result.output for fragment in fragments), result.output


@pytest.fixture
def denied(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every AWS request, of every client, refused as AccessDenied (a group member's view at worst)."""
    def refuse(self: BaseClient, operation: str, params: dict) -> None:  # type: ignore[type-arg]
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, operation)
    monkeypatch.setattr(BaseClient, "_make_api_call", refuse)


def test_every_command_under_an_identity_denied_everything(denied, tmp_path: Path) -> None:
    for command in commands(tmp_path):
        result = runner.invoke(app, command)
        assert_one_line(result, "denied", "AccessDenied", "--analysis"), command


def test_every_command_with_no_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    for command in commands(tmp_path, administrator=False):
        assert_one_line(runner.invoke(app, command), "No AWS region is configured", "--analysis"), command


def test_every_command_with_no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for command in commands(tmp_path, administrator=False):
        assert_one_line(runner.invoke(app, command), "No AWS credentials were found", "--analysis"), command


def test_a_defect_is_one_line_that_says_how_to_report_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("division by zero")
    monkeypatch.setattr("service.cli_jobs.client_for", broken)
    assert_one_line(runner.invoke(app, ["jobs", "x", "-g", "y"]), "NEUROCAAS_DEBUG=1")


def test_a_name_no_bucket_can_have_is_not_an_analysis_and_sdk_rejections_are_defects() -> None:
    """botocore refuses bad bucket names itself (ParamValidationError): a user's typo is named as such,
    and any other SDK rejection is reported as a defect, never as "cannot reach"."""
    from botocore.exceptions import ParamValidationError

    from service.client import NeuroCAASClient, UserError
    from service.connection import Connection
    from service.failures import describe

    client = NeuroCAASClient(Connection(endpoint="http://127.0.0.1:9", credentials={}, region="us-east-1"))
    with pytest.raises(UserError, match="is not an analysis name"):
        client.check_analysis("Not A_Bucket!")
    assert "defect of neurocaas" in describe(ParamValidationError(report="Invalid type for parameter Key"))
