"""Every command, argument and option explains itself, and Ctrl-C while following a job says the
job keeps running."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from rich.console import Console
from typer.main import get_command
from typer.testing import CliRunner

from service import cli_jobs
from service.cli import app

runner = CliRunner()


def walk(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += walk(sub, (*path, name))
    return found


def test_every_command_argument_and_option_has_help() -> None:
    missing = []
    for path, command in walk(get_command(app)):
        if path and not (command.help or command.short_help):
            missing.append(" ".join(path))
        for parameter in command.params:
            if parameter.name != "help" and not getattr(parameter, "help", None):
                missing.append(f"{' '.join(path)} {parameter.name}")
    assert missing == []


def test_ctrl_c_while_following_says_the_job_keeps_running(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("service.views.follow", interrupted)
    monkeypatch.setattr(cli_jobs, "console", Console(width=200))
    ref = type("Ref", (), {"job_id": "J7"})()
    with pytest.raises(typer.Exit) as exited:
        cli_jobs.follow_until_end(object(), ref)  # type: ignore[arg-type]
    assert exited.value.exit_code == cli_jobs.INTERRUPTED
    printed = capsys.readouterr().out
    assert "Job J7 keeps running" in printed
    assert "`neurocaas status J7`" in printed and "`neurocaas cancel J7`" in printed
