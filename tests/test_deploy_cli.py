"""The deployment commands as a user types them: ``neurocaas blueprint new | init | deploy | users``."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.deploy.runtime import lambda_runtime
from tests.deploy_support import Account, changing, make_functions, recorded_calls

runner = CliRunner()


def test_blueprint_new_makes_a_blueprint_that_checks(tmp_path: Path) -> None:
    made = runner.invoke(app, ["blueprint", "new", "my-analysis", "--folder", str(tmp_path)])
    assert made.exit_code == 0, made.output
    folder = tmp_path / "my-analysis"
    assert json.loads((folder / "stack_config_template.json").read_text())["PipelineName"] == "my-analysis"
    assert (folder / "image" / "analysis.sh").stat().st_mode & stat.S_IXUSR

    checked = runner.invoke(app, ["blueprint", "check", str(folder)])
    assert checked.exit_code == 0, checked.output
    again = runner.invoke(app, ["blueprint", "new", "my-analysis", "--folder", str(tmp_path)])
    assert again.exit_code == 1 and "already exists" in again.output


def test_a_new_blueprint_runs_on_the_local_stack_as_it_is(tmp_path: Path) -> None:
    from chalicelib.blueprint import load_blueprint
    from service.deploy.template import create_blueprint
    from service.local.stack import LocalStack, LocalStackOptions

    folder = create_blueprint("fresh-analysis", tmp_path)
    with LocalStack(LocalStackOptions(state_dir=tmp_path / "state", minute_seconds=1.0, status_interval=0.5,
                                      log=lambda _: None)) as stack:
        stack.deploy(load_blueprint(folder))
        s3 = stack.client("s3")
        s3.put_object(Bucket="fresh-analysis", Key="examplelab/inputs/data.bin", Body=b"12345")
        s3.put_object(Bucket="fresh-analysis", Key="examplelab/configs/params.yaml",
                      Body=(folder / "image" / "params.yaml").read_bytes())
        s3.put_object(Bucket="fresh-analysis", Key="examplelab/submissions/submit.json", Body=json.dumps(
            {"dataname": ["examplelab/inputs/data.bin"], "configname": "examplelab/configs/params.yaml",
             "timestamp": "first"}).encode())
        prefix = "examplelab/results/job__fresh-analysis_first"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = s3.list_objects_v2(Bucket="fresh-analysis", Prefix=f"{prefix}/process_results/")
            if listed.get("KeyCount"):
                break
            time.sleep(0.2)
        output = s3.get_object(Bucket="fresh-analysis", Key=f"{prefix}/process_results/data.bin.size.txt")
        assert output["Body"].read() == b"5\n"


@pytest.mark.parametrize("name", ["My_Analysis", "ab", "dash-", "has space", "xn--punycode"])
def test_blueprint_new_refuses_a_bad_name_with_the_rule(tmp_path: Path, name: str) -> None:
    result = runner.invoke(app, ["blueprint", "new", name, "--folder", str(tmp_path)])
    assert result.exit_code == 1
    assert "lowercase letters, digits and dashes" in result.output or "reserves" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


@pytest.fixture
def account(aws_mock: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Account:
    made = Account(tmp_path)
    monkeypatch.setenv("NEUROCAAS_HOME", str(made.home))
    monkeypatch.chdir(made.project)
    return made


def test_init_then_deploy_plan_then_deploy_through_the_real_runner(account: Account,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    first = runner.invoke(app, ["init", "--region", "us-east-1", "--ssh-cidr", "203.0.113.7/32"])
    assert first.exit_code == 0, first.output
    assert "+ create security group neurocaas-dev" in first.output and "init.json" in first.output
    shown = runner.invoke(app, ["init", "--region", "us-east-1", "--show-key"])
    assert "nothing to change" in shown.output and "PRIVATE KEY" in shown.output

    blueprint = account.blueprint().path.parent
    with recorded_calls() as calls:
        planned = runner.invoke(app, ["deploy", str(blueprint), "--plan"])
    assert planned.exit_code == 0, planned.output
    assert "+ create S3 bucket spikes-test" in planned.output and "Nothing was changed (--plan)" in planned.output
    assert "functions on python3.1" in planned.output  # the Lambda runtime the deploy targets
    assert changing(calls) == []

    # the real subprocess runner, with a stand-in `chalice` that records how it was called
    fake = account.tmp / "chalice"
    fake.write_text(f'#!/bin/sh\necho "$@ BUCKET_NAME=$BUCKET_NAME for $NEUROCAAS_LAMBDA_RUNTIME in $(pwd)" '
                    f'>> {account.tmp}/chalice.log\n')
    fake.chmod(0o755)
    monkeypatch.setattr("service.deploy.executor.chalice_command", lambda: [str(fake)])
    make_functions("spikes-test")  # what the real chalice would have made, for the failure destinations
    deployed = runner.invoke(app, ["deploy", str(blueprint)])
    assert deployed.exit_code == 0, deployed.output
    assert (account.tmp / "chalice.log").read_text() == (
        f"deploy --stage spikes-test BUCKET_NAME=spikes-test for {lambda_runtime()} in {account.project.resolve()}\n")
    assert "nothing to change" in runner.invoke(app, ["deploy", str(blueprint)]).output


def test_a_bad_blueprint_gets_one_line_and_no_aws_call(account: Account) -> None:
    folder = account.tmp / "blueprints" / "broken"
    folder.mkdir(parents=True)
    (folder / "stack_config_template.json").write_text(json.dumps(
        {"PipelineName": "Broken_Name", "REGION": "us-east-1", "Lambda": {"LambdaConfig": {}},
         "UXData": {"Affiliates": []}}))
    with recorded_calls() as calls:
        result = runner.invoke(app, ["deploy", str(folder)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "PipelineName" in result.output and "AMI: is missing" in result.output
    assert calls == []


def test_deploy_before_init_and_users_commands(account: Account) -> None:
    blueprint = str(account.blueprint().path.parent)
    early = runner.invoke(app, ["deploy", blueprint])
    assert early.exit_code == 1 and "run `neurocaas init --region us-east-1` first" in early.output

    account.users("alice", "bob", "carol")
    runner.invoke(app, ["init", "--region", "us-east-1"])
    assert os.environ["NEUROCAAS_HOME"] == str(account.home)
    account.deploy(account.blueprint())
    added = runner.invoke(app, ["users", "add", blueprint, "alab", "carol"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["users", "list", blueprint, "alab"])
    assert listed.output.split() == ["alice", "carol"]
    unknown = runner.invoke(app, ["users", "add", blueprint, "alab", "nobody"])
    assert unknown.exit_code == 1 and "--create" in unknown.output
