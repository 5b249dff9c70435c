"""``neurocaas local up`` as a user runs it: a foreground process that prints how to connect."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3

from tests.conftest import FIXTURES


def test_local_up_serves_plain_s3_clients_and_keeps_state_when_stopped(tmp_path: Path) -> None:
    environment = {**os.environ, "NEUROCAAS_HOME": str(tmp_path), "POWERTOOLS_LOG_LEVEL": "WARNING",
                   "COLUMNS": "200"}
    command = [sys.executable, "-c", "from service.cli import main; main()", "local", "up", "--port", "0",
               "--blueprint", str(FIXTURES / "echo_analysis")]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed = ""
    try:
        deadline = time.monotonic() + 30
        while "Press Ctrl-C to stop." not in printed:
            assert time.monotonic() < deadline and process.poll() is None, printed
            printed += process.stdout.readline()
        exported = dict(re.findall(r"export (\w+)=(\S+)", printed))
        assert set(exported) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"}
        assert exported["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        s3 = boto3.client("s3", endpoint_url=exported["AWS_ENDPOINT_URL"], region_name=exported["AWS_DEFAULT_REGION"],
                          aws_access_key_id=exported["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=exported["AWS_SECRET_ACCESS_KEY"])
        s3.put_object(Bucket="echo-analysis", Key="lab/inputs/x.bin", Body=b"abc")
        s3.put_object(Bucket="echo-analysis", Key="lab/configs/c.json", Body=b'{"mode": "ok"}')
        s3.put_object(Bucket="echo-analysis", Key="lab/submissions/submit.json", Body=json.dumps(
            {"dataname": "lab/inputs/x.bin", "configname": "lab/configs/c.json", "timestamp": "up1"}).encode())
        record_key = "lab/results/job__echo-analysis_up1/logs/job.json"
        while True:
            assert time.monotonic() < deadline + 30
            try:
                if json.loads(s3.get_object(Bucket="echo-analysis", Key=record_key)["Body"].read())["state"] == "SUCCEEDED":
                    break
            except s3.exceptions.NoSuchKey:
                pass
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "saving state" in output
    assert not (tmp_path / "local" / "connection.json").exists()
    manifest = json.loads((tmp_path / "local" / "s3" / "s3-manifest.json").read_text())
    assert "lab/inputs/x.bin" in manifest["echo-analysis"]


def up(state_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from service.cli import main; main()", "local", "up", "--port", str(port),
               "--state-dir", str(state_dir), "--blueprint", str(FIXTURES / "echo_analysis")]
    return subprocess.run(command, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200"})


def test_a_second_stack_on_the_same_state_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    from service.local.stack import LocalStack, LocalStackOptions

    with LocalStack(LocalStackOptions(state_dir=tmp_path, log=lambda _: None)):
        second = up(tmp_path, 0)
    assert second.returncode == 1
    assert f"is in use by process {os.getpid()}" in second.stderr and "--state-dir" in second.stderr
    assert "Traceback" not in second.stderr + second.stdout


def test_a_busy_port_is_one_line_and_an_exit(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = up(tmp_path, port)
    assert result.returncode == 1 and time.monotonic() - started < 30
    assert result.stderr.strip() == (f"✗ Cannot listen on 127.0.0.1:{port}: something else is listening there. "
                                     "Choose another with --port (--port 0 picks a free one).")
    assert not (tmp_path / "connection.json").exists()


def test_a_new_blueprint_is_served_without_a_restart(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from service.cli_local import BlueprintWatcher, default_blueprints
    from service.local.stack import LocalStack, LocalStackOptions

    project = tmp_path / "project"
    shutil.copytree(FIXTURES / "echo_analysis", project / "blueprints" / "echo")
    monkeypatch.chdir(project)
    with LocalStack(LocalStackOptions(state_dir=tmp_path / "state", log=lambda _: None)) as stack:
        watcher = BlueprintWatcher(stack, default_blueprints(), watch_folder=True)
        assert not watcher.check()  # nothing new
        second = project / "blueprints" / "second"
        shutil.copytree(FIXTURES / "echo_analysis", second)
        document = json.loads((second / "stack_config_template.json").read_text())
        document["PipelineName"] = "second-analysis"
        (second / "stack_config_template.json").write_text(json.dumps(document))
        (project / "blueprints" / "broken").mkdir()
        (project / "blueprints" / "broken" / "stack_config_template.json").write_text("{")

        assert watcher.check()
        assert "second-analysis" in stack.served
        assert "lab/submissions/" in {o["Key"] for o in stack.client("s3").list_objects_v2(
            Bucket="second-analysis").get("Contents", ())}
        assert not watcher.check()  # the broken one was reported once, not deployed
