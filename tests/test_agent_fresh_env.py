"""The remote side from a fresh environment holding only its own distribution (no project package,
no boto3), against a moto server, end to end: what a stock image with the agent installed does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import FIXTURES

ROOT = Path(__file__).parent.parent
BUCKET = "fresh-analysis"
JOB = "lab/results/job__fresh-analysis_1"


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with nothing but the neurocaas-agent wheel built from remote/."""
    where = tmp_path_factory.mktemp("fresh")
    source = where / "src"  # built from a copy: the build leaves its own folders behind
    shutil.copytree(ROOT / "remote", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(where / "dist"), str(source)], check=True, capture_output=True, timeout=180)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where / "venv")], check=True, timeout=120)
    python = where / "venv" / "bin" / "python"
    wheel = next((where / "dist").glob("neurocaas_agent-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index", "--no-deps",
                    str(wheel)], check=True, capture_output=True, timeout=180)
    return python


@pytest.fixture(scope="module")
def s3() -> Any:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{server.get_host_and_port()[1]}",
                          region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()


def test_the_fresh_environment_holds_only_the_agent(fresh_python: Path, tmp_path: Path) -> None:
    for package in ("chalicelib", "service", "boto3", "yaml", "pydantic"):
        done = subprocess.run([str(fresh_python), "-I", "-c", f"import {package}"], capture_output=True, cwd=tmp_path)
        assert done.returncode != 0, f"{package} is importable in the fresh environment"


def test_a_dataset_runs_end_to_end_from_the_fresh_environment(fresh_python: Path, s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="lab/inputs/rec.bin", Body=b"1234567")
    s3.put_object(Bucket=BUCKET, Key="lab/configs/p.json", Body=b'{"mode": "ok"}')
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(FIXTURES / "echo_analysis" / "image" / "analysis.sh", home / "analysis.sh")
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3.meta.endpoint_url, "AWS_EC2_METADATA_DISABLED": "true",
        "NEUROCAAS_WORKDIR": str(tmp_path / "work"), "NEUROCAAS_STATUS_INTERVAL": "0.2",
    }
    done = subprocess.run([str(fresh_python), "-I", "-m", "neurocaas_agent", "run", BUCKET, "lab/inputs/rec.bin",
                           "results/job__fresh-analysis_1", "lab/configs/p.json", "analysis.sh"],
                          cwd=home, env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    status = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{JOB}/logs/DATASET_NAME:rec.bin_STATUS.txt")["Body"].read())
    assert status["status"] == "SUCCESS" and "done" in status["std"].values()
    assert s3.get_object(Bucket=BUCKET, Key=f"{JOB}/process_results/rec.bin.size.txt")["Body"].read().strip() == b"7"
    assert s3.head_object(Bucket=BUCKET, Key=f"{JOB}/internal_ec2_logs/rec.bin.log")
    written = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{JOB}/logs/")["Contents"]}
    assert written == {f"{JOB}/logs/DATASET_NAME:rec.bin_STATUS.txt"}  # the only record it writes
