"""``neurocaas blueprint check|stage``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from service.cli import app
from tests.conftest import FIXTURES, NEUROCAAS_BLUEPRINTS

runner = CliRunner()


def test_check_accepts_a_real_blueprint() -> None:
    result = runner.invoke(app, ["blueprint", "check", str(NEUROCAAS_BLUEPRINTS / "cianalysispermastack")])
    assert result.exit_code == 0
    assert "cianalysispermastack" in result.output


def test_check_lists_every_bad_key_and_fails() -> None:
    result = runner.invoke(app, ["blueprint", "check", str(NEUROCAAS_BLUEPRINTS / "widefield_dev_stack")])
    assert result.exit_code == 1
    assert result.output.count("•") == 5


def test_stage_writes_the_lambda_environment_once(tmp_path: Path) -> None:
    (tmp_path / ".chalice").mkdir()
    shutil.copy(Path(__file__).parents[1] / ".chalice" / "config.json", tmp_path / ".chalice" / "config.json")
    args = ["blueprint", "stage", str(NEUROCAAS_BLUEPRINTS / "dlc2_web_stack"), "--project", str(tmp_path)]

    first = runner.invoke(app, args)
    second = runner.invoke(app, args)

    assert first.exit_code == 0 and "updated" in first.output
    assert "already up to date" in second.output
    stage = json.loads((tmp_path / ".chalice" / "config.json").read_text())["stages"]["dlc2-ncap-web"]
    environment = stage["environment_variables"]
    assert environment["BUCKET_NAME"] == "dlc2-ncap-web"
    assert environment["AMI"] == "ami-0701294339d3042ae"
    assert "run_main_cli.sh" in environment["COMMAND"]


def test_check_warns_about_what_the_local_stack_cannot_honour(tmp_path: Path) -> None:
    folder = tmp_path / "gpu"
    shutil.copytree(FIXTURES / "echo_analysis", folder)
    path = folder / "stack_config_template.json"
    document = json.loads(path.read_text())
    document.pop("LocalImage")
    document["Lambda"]["LambdaConfig"].update(INSTANCE_TYPE="g4dn.xlarge", BYPASS_BUCKETS=["shared-results"])
    path.write_text(json.dumps(document))

    result = runner.invoke(app, ["blueprint", "check", str(folder)], env={"COLUMNS": "300"})

    assert result.exit_code == 0, result.output
    for fragment in ("LocalImage is not set", "g4dn.xlarge have GPUs", "does not create shared-results",
                     "parameters: not declared"):
        assert fragment in result.output, result.output
    assert "local stack" not in runner.invoke(app, ["blueprint", "check", str(folder), "--no-local"]).output


def test_check_refuses_a_parameter_schema_that_is_not_one(tmp_path: Path) -> None:
    folder = tmp_path / "echo"
    shutil.copytree(FIXTURES / "echo_analysis", folder)
    (folder / "parameters.schema.json").write_text(json.dumps({"type": "object", "properties": {"x": {"type": 5}}}))

    result = runner.invoke(app, ["blueprint", "check", str(folder)], env={"COLUMNS": "300"})

    assert result.exit_code == 1 and "parameters.schema.json" in result.output and "is not usable" in result.output
