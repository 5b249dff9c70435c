"""The boot script on a bare image: exact arguments, the remote side fetched and checked, a clean
shell for the command, and a final state for every dataset, against a moto server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib import agent, bootscript
from service import agentfile
from service.local.layout import localise
from tests.conftest import FIXTURES, GROUP, submit_doc

HOSTILE = f"{GROUP}/inputs/my data \"quoted\" 'single' $(touch PWNED) `touch PWNED2`; touch PWNED3 $HOME.tif"
FAKE_MAIN = """#!/bin/bash
for arg in "$@"; do printf '%s\\0' "$arg"; done > "$ARGS_FILE"
"""
ANALYSIS = "boot-analysis"
JOB = f"{GROUP}/results/job__{ANALYSIS}_1"
NEUROCAAS_COMMAND = ('cd "$HOME"; neurocaas_remote/run_main.sh "{}" "{}" "{}" "{}" analysis.sh; '
                     '. neurocaas_remote/ncap_utils/workflow.sh; cleanup')


@pytest.fixture
def s3(endpoint: str) -> Any:
    """A fresh analysis bucket on the server, holding the agent file as a deploy leaves it."""
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    if ANALYSIS in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        for item in client.list_objects_v2(Bucket=ANALYSIS).get("Contents", ()):
            client.delete_object(Bucket=ANALYSIS, Key=item["Key"])
    else:
        client.create_bucket(Bucket=ANALYSIS)
    agentfile.upload(client, ANALYSIS)
    return client


def boot(user_data: str, home: Path, endpoint: str, index: int = 0, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run a boot script as a bare instance would: stock tools only on PATH (not this project's
    venv), shutdown/poweroff recorded, S3 at ``endpoint``, ``home`` as the image's home."""
    shims = home.parent / f"{home.name}-shims"
    shims.mkdir(exist_ok=True)
    for name in ("shutdown", "poweroff"):
        (shims / name).write_text(f'#!/bin/sh\necho {name} "$@" >> "{home.parent}/{home.name}-power.log"\n')
        (shims / name).chmod(0o755)
    (shims / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (shims / "sudo").chmod(0o755)
    home.mkdir(exist_ok=True)
    env = {
        "PATH": f"{shims}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
        "NEUROCAAS_LAUNCH_INDEX": str(index), "NEUROCAAS_LOG_DIR": str(home.parent / f"{home.name}-logs"),
        "NEUROCAAS_WORKDIR": str(home.parent / f"{home.name}-work"), "NEUROCAAS_STATUS_INTERVAL": "0.2",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true", **extra,
    }
    env = {name: value for name, value in env.items() if value}  # an empty value: unset, as cloud-init leaves HOME
    script = home.parent / f"{home.name}-user-data.sh"
    script.write_text(localise(user_data, home))  # the image's /home/ubuntu is this folder, as the runner does
    return subprocess.run(["bash", str(script)], cwd=home, env=env, capture_output=True, text=True, timeout=120,
                          start_new_session=True)


def render(command: str, rows: list[tuple[str, str, str]] | None = None, bucket: str = ANALYSIS) -> str:
    rows = rows or [(f"{GROUP}/inputs/a.bin", f"{GROUP}/configs/c.json", "a.bin")]
    return bootscript.render(command=command, bucket=bucket, result_argument=f"results/job__{ANALYSIS}_1",
                             rows=rows, lifetime_minutes=5, job=f"job__{ANALYSIS}_1",
                             log_uri=f"s3://{bucket}/{JOB}/internal_ec2_logs",
                             status_key=lambda label: f"{JOB}/logs/DATASET_NAME:{label}_STATUS.txt")


def status(s3: Any, dataset: str = "a.bin", bucket: str = ANALYSIS) -> dict[str, Any]:
    key = f"{JOB}/logs/DATASET_NAME:{dataset}_STATUS.txt"
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def keys(s3: Any, prefix: str, bucket: str = ANALYSIS) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", ())]


# ------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("template", [
    'cd "$HOME"; neurocaas_remote/run_main.sh "{}" "{}" "{}" "{}"; . /dev/null; true',
    "cd \"$HOME\" && neurocaas_remote/run_main.sh {} '{}' {} \"{}\"",
])
def test_submitted_strings_arrive_as_exact_arguments(uploaded, endpoint: str, tmp_path: Path, template: str) -> None:
    # moto's server in this process serves the mocked account's buckets to the boot script.
    agentfile.upload(uploaded.s3, uploaded.settings.bucket_name)
    uploaded.put(HOSTILE)
    config = f"{GROUP}/configs/it's $(here).yaml"
    uploaded.put(config, "a: 1\n")
    result = uploaded.submit(submit_doc(HOSTILE, f"{GROUP}/inputs/a.tif", config=config), command=template)
    assert result.plan is not None, result.message
    user_data = result.plan.batches[0].user_data

    received = []
    for index in (0, 1):
        home = tmp_path / f"home{index}"
        (home / "neurocaas_remote").mkdir(parents=True)
        (home / "neurocaas_remote" / "run_main.sh").write_text(FAKE_MAIN)
        (home / "neurocaas_remote" / "run_main.sh").chmod(0o755)
        done = boot(user_data, home, endpoint, index, ARGS_FILE=str(tmp_path / f"args-{index}"))
        assert done.returncode == 0, done.stderr
        assert (home / "neurocaas_remote" / "run_main.sh").read_text() == FAKE_MAIN  # the image's own is kept
        received.append((tmp_path / f"args-{index}").read_bytes().decode().split("\0")[:-1])

    results = f"results/job__{uploaded.settings.bucket_name}_2026-11-25T10-00-00"
    assert received[0] == [uploaded.settings.bucket_name, HOSTILE, results, config]
    assert received[1] == [uploaded.settings.bucket_name, f"{GROUP}/inputs/a.tif", results, config]
    assert not list(tmp_path.rglob("PWNED*"))


def test_a_launch_index_without_a_row_stops_instead_of_guessing(tmp_path: Path, endpoint: str) -> None:
    done = boot(render("true"), tmp_path / "home", endpoint, index=7)
    assert done.returncode == 1
    assert "no row 7" in done.stderr
    assert "shutdown -h now" in (tmp_path / "home-power.log").read_text()


@pytest.mark.parametrize("template,bound", [
    ("run.sh", "run.sh"),
    ('run.sh "{}"', 'run.sh "$NEUROCAAS_BUCKET"'),
    ("/home/ubuntu/bin/run.sh \"{}\" '{}' {}; sudo poweroff",
     '/home/ubuntu/bin/run.sh "$NEUROCAAS_BUCKET" "$NEUROCAAS_DATASET" "$NEUROCAAS_RESULTPATH"; sudo poweroff'),
    ("x \"{}\" '{}' {} \"{}\"",
     'x "$NEUROCAAS_BUCKET" "$NEUROCAAS_DATASET" "$NEUROCAAS_RESULTPATH" "$NEUROCAAS_CONFIG"'),
    ("awk '{{print $1}}' {}", "awk '{print $1}' \"$NEUROCAAS_BUCKET\""),
])
def test_zero_to_four_placeholders_receive_the_first_arguments(template: str, bound: str) -> None:
    """As NeuroCAAS's str.format(bucket, dataset, resultpath, config) filled them."""
    assert bootscript.bind_command(template) == bound


def test_more_than_four_placeholders_are_refused_naming_command() -> None:
    with pytest.raises(ValueError, match="COMMAND holds 5"):
        bootscript.bind_command("x {} {} {} {} {}")


# ------------------------------------------------------------------- the bare image, end to end


def test_a_bare_image_gets_the_remote_side_and_runs_a_neurocaas_command(s3: Any, endpoint: str, tmp_path: Path) -> None:
    """No neurocaas_remote/, no project venv on PATH: the boot script installs the agent from the
    analysis bucket (SHA-256 checked) and NeuroCAAS's `run_main.sh ...; cleanup` runs to SUCCESS."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(FIXTURES / "echo_analysis" / "image" / "analysis.sh", home / "analysis.sh")
    s3.put_object(Bucket=ANALYSIS, Key=f"{GROUP}/inputs/a.bin", Body=b"12345")
    s3.put_object(Bucket=ANALYSIS, Key=f"{GROUP}/configs/c.json", Body=b'{"mode": "ok"}')

    done = boot(render(NEUROCAAS_COMMAND), home, endpoint)

    assert done.returncode == 0, done.stderr
    assert (home / agent.HOME_PATH).read_bytes() == agentfile.artifact()
    assert (home / "neurocaas_remote" / "run_main.sh").is_file()
    assert status(s3)["status"] == "SUCCESS"
    assert s3.get_object(Bucket=ANALYSIS, Key=f"{JOB}/process_results/a.bin.size.txt")["Body"].read().strip() == b"5"
    variables = s3.get_object(Bucket=ANALYSIS, Key=f"{JOB}/process_results/a.bin.variables.txt")["Body"].read()
    assert f"processdir=results/job__{ANALYSIS}_1/process_results".encode() in variables
    assert f"{JOB}/internal_ec2_logs/a.bin-0.log" in keys(s3, f"{JOB}/internal_ec2_logs/")
    assert "poweroff" in (tmp_path / "home-power.log").read_text()


def test_a_baked_agent_is_used_without_fetching(s3: Any, endpoint: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".neurocaas").mkdir(parents=True)
    (home / agent.HOME_PATH).write_bytes(agentfile.artifact())
    s3.delete_object(Bucket=ANALYSIS, Key=agent.artifact_key())
    done = boot(render("true"), home, endpoint)
    assert done.returncode == 0, done.stderr
    assert status(s3)["status"] == "SUCCESS"


@pytest.mark.parametrize("artifact", [None, b"not the agent"])
def test_without_the_remote_side_the_dataset_fails_within_a_minute(s3: Any, endpoint: str, tmp_path: Path,
                                                                   artifact: bytes | None) -> None:
    if artifact is None:
        s3.delete_object(Bucket=ANALYSIS, Key=agent.artifact_key())
    else:
        s3.put_object(Bucket=ANALYSIS, Key=agent.artifact_key(), Body=artifact)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".neurocaas").mkdir()
    (home / agent.HOME_PATH).write_bytes(b"an older agent")
    started = time.monotonic()

    done = boot(render('touch "$HOME/ran"'), home, endpoint)

    assert time.monotonic() - started < 60
    assert done.returncode == 1
    reported = status(s3)
    assert reported["status"] == "FAILED"
    assert f"remote side {agent.VERSION} is not on this image and could not be installed" in reported["reason"]
    assert "Deploy the analysis again" in reported["reason"]
    assert not (home / "ran").exists()
    assert keys(s3, f"{JOB}/internal_ec2_logs/")
    assert "shutdown -h now" in (tmp_path / "home-power.log").read_text()


# --------------------------------------------------------------------- the command and its end


@pytest.mark.parametrize("command,state,reason", [
    ("echo working; echo 'last words'; exit 3", "FAILED", "The command exited with code 3. Last output: last words"),
    ("echo fine", "SUCCESS", ""),
])
def test_the_exit_code_gives_the_final_state_when_the_command_did_not(
        s3: Any, endpoint: str, tmp_path: Path, command: str, state: str, reason: str) -> None:
    done = boot(render(command), tmp_path / "home", endpoint)
    reported = status(s3)
    assert (reported["status"], reported["reason"]) == (state, reason)
    assert reported["job_finish"] and done.returncode == (3 if state == "FAILED" else 0)


def test_a_final_state_the_command_wrote_stands(s3: Any, endpoint: str, tmp_path: Path) -> None:
    own = {"status": "FAILED", "reason": ["NeuroCAAS", "style"], "job_finish": "N/A"}
    key = f"{JOB}/logs/DATASET_NAME:a.bin_STATUS.txt"
    s3.put_object(Bucket=ANALYSIS, Key=key, Body=json.dumps(own).encode())
    boot(render("exit 0"), tmp_path / "home", endpoint)
    assert status(s3) == own


def test_the_command_runs_from_a_clean_shell_with_home_and_region(s3: Any, endpoint: str, tmp_path: Path) -> None:
    """No `set -u` leaks (NeuroCAAS's `. workflow.sh; cleanup` reads unset variables), and a
    trailing `#` comment ends the command, not the script."""
    command = ('printf "%s|%s|%s|%s|%s" "$-" "$HOME" "$AWS_REGION" "$AWS_DEFAULT_REGION" "$NEVER_SET" '
               '> "$HOME/env.txt" # a comment, as hand-written NeuroCAAS commands have "{}"')
    home = tmp_path / "home"
    done = boot(render(command), home, endpoint, HOME="")  # cloud-init gives user data no HOME
    assert done.returncode == 0, done.stderr
    options, exported_home, region, default_region, unset = (home / "env.txt").read_text().split("|")
    assert "u" not in options and "e" not in options
    assert (exported_home, region, default_region, unset) == (str(home), "us-east-1", "us-east-1", "")
    assert status(s3)["status"] == "SUCCESS"


def test_the_script_sets_its_lifetime_and_shuts_down(uploaded) -> None:
    uploaded.put(f"{GROUP}/configs/long.json", '{"__duration__": 90.5}')
    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif", config=f"{GROUP}/configs/long.json"))
    user_data = result.plan.batches[0].user_data
    assert "shutdown -h +91 " in user_data
    assert user_data.rstrip().endswith("neurocaas_end $?")
    assert len(user_data.encode()) < bootscript.USER_DATA_LIMIT
    assert os.linesep == "\n"
    assert bootscript.unpack_table(user_data)[0][2] == "a.tif"


def test_an_ensemble_member_reports_under_its_own_label(s3: Any, endpoint: str, tmp_path: Path) -> None:
    rows = [(f"{GROUP}/inputs/a.bin", f"{GROUP}/configs/c.json", "a.bin"),
            (f"{GROUP}/inputs/a.bin", f"{GROUP}/configs/c-2.json", "a.bin-member2")]
    user_data = render("exit 0", rows)
    assert bootscript.unpack_table(user_data) == rows
    boot(user_data, tmp_path / "home", endpoint, index=1)
    assert status(s3, "a.bin-member2")["status"] == "SUCCESS"
    assert not keys(s3, f"{JOB}/logs/DATASET_NAME:a.bin_STATUS.txt")


def test_a_power_off_before_any_report_still_ends_the_dataset(s3: Any, endpoint: str, tmp_path: Path) -> None:
    """The command powers the machine off (the local stack's poweroff signals the whole instance)."""
    boot(render("echo about to stop; kill -TERM 0; sleep 30"), tmp_path / "home", endpoint)
    reported = status(s3)
    assert reported["status"] == "FAILED"
    assert reported["reason"] == "The instance was powered off before its dataset reported a final state."
    assert keys(s3, f"{JOB}/internal_ec2_logs/")


def test_an_image_with_another_version_gets_the_expected_one(s3: Any, endpoint: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".neurocaas").mkdir(parents=True)
    (home / agent.HOME_PATH).write_bytes(b"#!/usr/bin/env python3\nprint('an older agent')\n")
    done = boot(render("true"), home, endpoint)
    assert done.returncode == 0, done.stderr
    assert (home / agent.HOME_PATH).read_bytes() == agentfile.artifact()
    assert status(s3)["status"] == "SUCCESS"


def test_without_credentials_the_instance_says_why_and_stops_at_once(s3: Any, endpoint: str, tmp_path: Path) -> None:
    """Nothing can be written to S3 then: the console (stderr) carries the reason, and the instance
    stops at once, so the monitor ends the dataset instead of waiting for the lifetime."""
    started = time.monotonic()
    done = boot(render('touch "$HOME/ran"'), tmp_path / "home", endpoint, AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="")
    assert time.monotonic() - started < 60
    assert "no AWS credentials" in done.stderr
    assert "shutdown -h now" in (tmp_path / "home-power.log").read_text()
    assert not (tmp_path / "home" / "ran").exists()
    assert not keys(s3, f"{JOB}/logs/")
