"""A mocked AWS account holding one submission of N datasets, with every API call counted: the
setting the submit-handler and job-state benchmarks measure in. Importing it sets dummy
credentials first: nothing reaches AWS."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Before boto3 is imported: dummy credentials, a fixed region, no instance metadata lookups.
os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
})
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(variable, None)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from chalicelib.awsclient import AWSClient  # noqa: E402
from chalicelib.blueprint import AnalysisSettings  # noqa: E402
from chalicelib.jobmanager import JobManager, Outcome  # noqa: E402

BUCKET = "bench-analysis"
GROUP = "labgroup"
CONFIG_KEY = f"{GROUP}/configs/params.yaml"
SUBMIT_KEY = f"{GROUP}/submissions/submit.json"
COMMAND = 'cd /home/ubuntu; neurocaas_remote/run_main.sh "{}" "{}" "{}" "{}"; . neurocaas_remote/ncap_utils/workflow.sh; cleanup'
VCPU_QUOTA = 100_000.0  # what the injected GetServiceQuota answers (room for any N here)


def dataset_key(i: int) -> str:
    return f"{GROUP}/inputs/mouse3_session_{i:04d}.tif"


class CallCounter:
    """Counts API calls made through botocore clients, by service and operation."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.sends: Counter[str] = Counter()
        self.moto_seconds = 0.0  # time inside moto's answer to each request (what AWS would do)
        self.active = False
        self._sent_at = 0.0

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        client.meta.events.register("before-call", self._on_call)
        # before-send handlers all run: ours first, then moto's stub answers, then ours last.
        client.meta.events.register_first("before-send", lambda **_: self._on_send(service))
        client.meta.events.register_last("before-send", lambda **_: self._on_answered())

    def _on_call(self, model: Any, **_: Any) -> None:
        if self.active:
            self.calls[(model.service_model.service_name, model.name)] += 1

    def _on_send(self, service: str) -> None:
        self._sent_at = time.perf_counter()
        if self.active:
            self.sends[service] += 1

    def _on_answered(self) -> None:
        if self.active:
            self.moto_seconds += time.perf_counter() - self._sent_at

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.calls.clear()
        self.sends.clear()
        self.moto_seconds = 0.0
        self.active = True
        try:
            yield
        finally:
            self.active = False

    def by_operation(self, service: str) -> dict[str, int]:
        return {op: n for (svc, op), n in sorted(self.calls.items()) if svc == service}

    def total(self, service: str) -> int:
        return sum(self.by_operation(service).values())


def inject_quota(quotas: Any, counter: CallCounter) -> None:
    """Answer GetServiceQuota locally (moto knows no EC2 quotas), as an account whose quota is readable.

    This more specific hook runs before the counting one and ends the call, so it counts itself.
    """

    def answer(**_: Any) -> tuple[Any, dict[str, Any]]:
        if counter.active:
            counter.calls[("service-quotas", "GetServiceQuota")] += 1
            counter.sends["service-quotas"] += 1  # stands for the request AWS would have received
        http = type("Response", (), {"status_code": 200, "headers": {}, "content": b""})()
        return http, {"Quota": {"ServiceCode": "ec2", "QuotaCode": "L-1216C47A", "Value": VCPU_QUOTA}}

    quotas.meta.events.register("before-call.service-quotas.GetServiceQuota", answer)


@dataclass
class Account:
    """One fresh mocked account with the analysis bucket, N datasets, a config and a submit.json."""

    manager: JobManager
    ec2: Any
    counter: CallCounter
    job_tag: str = ""


WARMUP_KEY = f"{GROUP}/submissions/warmup_submit.json"


def warm_up(manager: JobManager, s3: Any, ec2: Any) -> None:
    """One earlier one-dataset job through the same clients, then its instance is terminated.

    A warm Lambda reuses its clients (handlers._aws is cached); their first calls pay for loading
    and resolving botocore's service models, which the measured run then does not.
    """
    submit = {"dataname": [dataset_key(1)], "configname": CONFIG_KEY, "timestamp": "warmup"}
    s3.put_object(Bucket=BUCKET, Key=WARMUP_KEY, Body=json.dumps(submit).encode())
    result = manager.handle_submit(BUCKET, WARMUP_KEY)
    if result.outcome is not Outcome.STARTED or result.record is None:
        raise AssertionError(f"warm-up job did not start: {result.outcome.value} {result.message}")
    ec2.terminate_instances(InstanceIds=result.record.instance_ids)


@contextmanager
def account(n: int, quota: str, history: int = 0, warm: bool = True) -> Iterator[Account]:
    with mock_aws():
        region = "us-east-1"
        s3, ec2, ssm = (boto3.client(name, region_name=region) for name in ("s3", "ec2", "ssm"))
        quotas = boto3.client("service-quotas", region_name=region) if quota != "none" else None
        counter = CallCounter()
        for client in (s3, ec2, ssm, quotas):
            if client is not None:
                counter.attach(client)
        if quota == "readable":
            inject_quota(quotas, counter)
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        settings = AnalysisSettings(
            bucket_name=BUCKET, ami=ami, instance_type="t2.micro", allowed_instance_types=("t2.micro",),
            command=COMMAND, deploy_limit=max(1000, n), maxcost=1e6,
        )
        s3.create_bucket(Bucket=BUCKET)
        keys = [dataset_key(i) for i in range(1, n + 1)]
        for key in keys:
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"\x00" * 64)
        s3.put_object(Bucket=BUCKET, Key=CONFIG_KEY, Body=b"threshold: 2.5\nsmoothing: 3\n")
        for i in range(history):  # billing history left by instances of earlier jobs
            record = {"instance_id": f"i-{i:017x}", "group": GROUP, "analysis": BUCKET, "cost": 0.0116}
            s3.put_object(Bucket=BUCKET, Key=f"logs/{GROUP}/i-{i:017x}.json", Body=json.dumps(record).encode())
        job_id = f"bench-n{n}"
        submit = {"dataname": keys, "configname": CONFIG_KEY, "timestamp": job_id}
        s3.put_object(Bucket=BUCKET, Key=SUBMIT_KEY, Body=json.dumps(submit).encode())
        aws = AWSClient(s3, ec2, ssm, quotas)
        manager = JobManager(settings, aws)
        if warm:
            warm_up(manager, s3, ec2)
        yield Account(manager, ec2, counter, job_tag=f"job__{BUCKET}_{job_id}")


def running_instances(ec2: Any, job_tag: str) -> int:
    pages = ec2.get_paginator("describe_instances").paginate(Filters=[
        {"Name": "tag:job", "Values": [job_tag]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]},
    ])
    return sum(len(r["Instances"]) for page in pages for r in page["Reservations"])
