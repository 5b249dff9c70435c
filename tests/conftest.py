"""Shared fixtures: a moto-mocked AWS account, an analysis and a helper to submit jobs.

No test may reach a real AWS endpoint: credentials are dummies and instance metadata is off.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
})
for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(variable, None)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from chalicelib.awsclient import AWSClient  # noqa: E402
from chalicelib.blueprint import AnalysisSettings  # noqa: E402
from chalicelib.jobmanager import JobManager, Result  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
NEUROCAAS_BLUEPRINTS = FIXTURES / "neurocaas_blueprints"
BUCKET = "cianalysispermastack"
GROUP = "traviscipermagroup"
COMMAND = 'cd /home/ubuntu; neurocaas_remote/run_main.sh "{}" "{}" "{}" "{}"; . neurocaas_remote/ncap_utils/workflow.sh; cleanup'


class Clock:
    """A controllable clock for leases and elapsed times."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 10, 0, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=10)
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Analysis:
    """One deployed analysis in the mocked account, with helpers to write and read its bucket."""

    def __init__(self, settings: AnalysisSettings) -> None:
        self.settings = settings
        self.s3 = boto3.client("s3", region_name="us-east-1")
        self.ec2 = boto3.client("ec2", region_name="us-east-1")
        self.ssm = boto3.client("ssm", region_name="us-east-1")
        self.clock = Clock()
        self.aws = AWSClient(self.s3, self.ec2, self.ssm)
        self.s3.create_bucket(Bucket=settings.bucket_name)

    def manager(self, **overrides: Any) -> JobManager:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        return JobManager(settings, self.aws, clock=self.clock)

    def put(self, key: str, body: bytes | str | dict[str, Any] = b"data", bucket: str | None = None) -> None:
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.s3.put_object(Bucket=bucket or self.settings.bucket_name, Key=key, Body=body)

    def get(self, key: str, bucket: str | None = None) -> str:
        return self.s3.get_object(Bucket=bucket or self.settings.bucket_name, Key=key)["Body"].read().decode()

    def keys(self, prefix: str = "", bucket: str | None = None) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket or self.settings.bucket_name,
                                                                   Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", ())]

    def submit(self, submit: dict[str, Any] | bytes | str, key: str = f"{GROUP}/submissions/submit.json",
               **overrides: Any) -> Result:
        self.put(key, submit)
        return self.manager(**overrides).handle_submit(self.settings.bucket_name, key)

    def job_folder(self, job_id: str, group: str = GROUP) -> str:
        return f"{group}/results/job__{self.settings.bucket_name}_{job_id}"

    def certificate(self, job_id: str, group: str = GROUP) -> str:
        return self.get(f"{self.job_folder(job_id, group)}/logs/certificate.txt")

    def record(self, job_id: str, group: str = GROUP) -> dict[str, Any]:
        return json.loads(self.get(f"{self.job_folder(job_id, group)}/logs/job.json"))

    def instances(self, states: tuple[str, ...] = ("pending", "running")) -> list[dict[str, Any]]:
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": list(states)}])
        return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


@pytest.fixture
def aws_mock() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def analysis(aws_mock: None) -> Analysis:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    # Registering one image is much faster than listing moto's public ones.
    ami = ec2.register_image(Name="analysis-image", RootDeviceName="/dev/sda1", BlockDeviceMappings=[
        {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 12}}])["ImageId"]
    settings = AnalysisSettings(
        bucket_name=BUCKET, ami=ami, instance_type="t2.micro",
        allowed_instance_types=("t2.micro", "m5.xlarge"), command=COMMAND,
        bypass_buckets=("shared-results",), maxcost=300, deploy_limit=100,
    )
    return Analysis(settings)


@pytest.fixture
def uploaded(analysis: Analysis) -> Analysis:
    """An analysis whose group has two datasets and a YAML config uploaded."""
    analysis.put(f"{GROUP}/inputs/a.tif")
    analysis.put(f"{GROUP}/inputs/b.tif")
    analysis.put(f"{GROUP}/configs/params.yaml", "threshold: 2.5\n")
    return analysis


def submit_doc(*datanames: str, config: str = f"{GROUP}/configs/params.yaml", timestamp: Any = "2026-11-25T10-00-00",
               **extra: Any) -> dict[str, Any]:
    data: Any = list(datanames) if len(datanames) != 1 else datanames[0]
    return {"dataname": data, "configname": config, "timestamp": timestamp, **extra}


@pytest.fixture(scope="session")
def analysis_settings() -> AnalysisSettings:
    """Settings for pure tests (no AWS)."""
    return AnalysisSettings(
        bucket_name=BUCKET, ami="ami-12345678", instance_type="t2.micro",
        allowed_instance_types=("t2.micro", "m5.xlarge"), command=COMMAND, bypass_buckets=("shared-results",),
    )


def wait_for(check: Callable[[], Any], seconds: float = 30) -> Any:
    """Poll ``check`` until it returns something true (which is returned), or fail."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


@contextmanager
def echo_stack_home(home: Path) -> Iterator[Path]:
    """A NEUROCAAS_HOME whose local stack (fast settings) serves the echo analysis, as
    `neurocaas local up` would leave it for the CLI to find."""
    from chalicelib.blueprint import load_blueprint
    from service.connection import write_connection
    from service.local.stack import CREDENTIALS, REGION, LocalStack, LocalStackOptions

    options = LocalStackOptions(state_dir=home / "local", minute_seconds=1.0, status_interval=0.5, log=lambda _: None)
    with LocalStack(options) as stack:
        stack.deploy(load_blueprint(FIXTURES / "echo_analysis"))
        write_connection(stack.state_dir, stack.endpoint, CREDENTIALS, REGION, ["echo-analysis"])
        yield home


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A moto server on loopback for the module's tests, for code that talks to S3 over HTTP (the
    remote side, the boot script, the local stand-ins)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    server.stop()


@pytest.fixture
def agent_client(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The remote side's own S3 client, pointed at the module's moto server."""
    from neurocaas_agent.core import Client

    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return Client()


def with_bucket(endpoint: str, bucket: str) -> str:
    """The moto server at ``endpoint`` with ``bucket`` made (for a module's own ``endpoint`` fixture)."""
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return endpoint
