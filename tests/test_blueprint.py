"""Blueprints: NeuroCAAS's own files load unchanged; a broken one is reported key by key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib import bootscript
from chalicelib.blueprint import (
    AnalysisSettings,
    load_blueprint,
    schema_path,
    validate_blueprint,
)
from chalicelib.exceptions import BlueprintError, SettingsError
from tests.conftest import NEUROCAAS_BLUEPRINTS

REAL = ["cianalysispermastack", "dlc2_web_stack", "ensemble_dgp_web_stack"]


@pytest.mark.parametrize("folder", REAL)
def test_real_neurocaas_blueprints_load_unchanged(folder: str) -> None:
    blueprint = load_blueprint(NEUROCAAS_BLUEPRINTS / folder)
    document = json.loads((NEUROCAAS_BLUEPRINTS / folder / "stack_config_template.json").read_text())
    assert blueprint.name == document["PipelineName"]
    assert blueprint.settings.command == document["Lambda"]["LambdaConfig"]["COMMAND"]
    assert blueprint.settings.instance_types_allowed == (document["Lambda"]["LambdaConfig"]["INSTANCE_TYPE"],)
    assert [a.name for a in blueprint.affiliates] == [a["AffiliateName"] for a in document["UXData"]["Affiliates"]]


def test_the_unfilled_template_is_refused_key_by_key() -> None:
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(NEUROCAAS_BLUEPRINTS / "widefield_dev_stack")
    problems = "\n".join(caught.value.problems)
    assert "PipelineName: must be 3-63 lowercase letters" in problems
    assert "REGION: must be an AWS region code" in problems
    assert "Lambda.LambdaConfig.INSTANCE_TYPE: must be an EC2 instance type" in problems
    assert "Lambda.LambdaConfig.MAXCOST: must be a positive number" in problems
    assert "UXData.Affiliates.1.AffiliateName: must be letters, digits" in problems
    assert len(caught.value.problems) == 5
    assert "fix these keys" in str(caught.value)


def test_missing_keys_and_a_bad_command_are_named(tmp_path: Path) -> None:
    document = json.loads((NEUROCAAS_BLUEPRINTS / "cianalysispermastack" / "stack_config_template.json").read_text())
    del document["Lambda"]["LambdaConfig"]["AMI"]
    document["Lambda"]["LambdaConfig"]["COMMAND"] = "run.sh {} {} {} {} {}"
    document["Lambda"]["LambdaConfig"]["ALLOWED_INSTANCE_TYPES"] = ["m5.large", "not a type"]
    problems = validate_blueprint(document)
    assert "Lambda.LambdaConfig.AMI: is missing (required)" in problems
    assert any(p.startswith("Lambda.LambdaConfig.COMMAND: must be a shell command with at most four {}") for p in problems)
    assert any(p.startswith("Lambda.LambdaConfig.ALLOWED_INSTANCE_TYPES.1: must be an EC2 instance type") for p in problems)


def test_unreadable_blueprints_say_why(tmp_path: Path) -> None:
    with pytest.raises(BlueprintError, match="Cannot read the blueprint"):
        load_blueprint(tmp_path)
    (tmp_path / "stack_config_template.json").write_text("{nope")
    with pytest.raises(BlueprintError, match="not valid JSON"):
        load_blueprint(tmp_path)


def test_the_schema_is_published_json() -> None:
    schema = json.loads(schema_path().read_text())
    assert schema["$schema"].startswith("https://json-schema.org/")


def test_settings_round_trip_through_the_lambda_environment() -> None:
    blueprint = load_blueprint(NEUROCAAS_BLUEPRINTS / "dlc2_web_stack")
    settings = blueprint.settings.model_copy(update={
        "allowed_instance_types": ("p3.2xlarge", "g4dn.xlarge"), "bypass_buckets": ("lab-share",)})
    environ = settings.to_environ()
    assert environ["BUCKET_NAME"] == "dlc2-ncap-web" and environ["MAXCOST"] == "600"
    assert AnalysisSettings.from_environ(environ) == settings


def test_an_environment_without_settings_is_a_deployment_error() -> None:
    with pytest.raises(SettingsError, match="missing settings: BUCKET_NAME, AMI, INSTANCE_TYPE, COMMAND"):
        AnalysisSettings.from_environ({})
    with pytest.raises(SettingsError, match="DEPLOY_LIMIT"):
        AnalysisSettings.from_environ({"BUCKET_NAME": "b-1", "AMI": "ami-12345678", "INSTANCE_TYPE": "t2.micro",
                                       "COMMAND": "x", "DEPLOY_LIMIT": "lots"})


@pytest.mark.parametrize("command", [
    "run.sh", 'run.sh "{}"', "/home/ubuntu/bin/run.sh \"{}\" \"{}\" \"{}\"; sudo poweroff",
    'cd /home/ubuntu; neurocaas_remote/run_main.sh "{}" "{}" "{}" "{}" # run it', "x {} {} {} {} {}",
    "a {} {} {} {} {} {} {} {}", "awk '{print $1}' {} {}", "x {} {} {} {} {",
])
def test_the_blueprint_check_and_the_boot_script_agree_on_placeholders(command: str) -> None:
    """0-4 {} load (NeuroCAAS's str.format semantics); more are refused naming COMMAND, as the boot
    script would refuse them."""
    document = json.loads((NEUROCAAS_BLUEPRINTS / "cianalysispermastack" / "stack_config_template.json").read_text())
    document["Lambda"]["LambdaConfig"]["COMMAND"] = command
    refused = any(p.startswith("Lambda.LambdaConfig.COMMAND") for p in validate_blueprint(document))
    assert refused == (bootscript.placeholders(command) > 4)
    if not refused:
        bootscript.bind_command(command)
