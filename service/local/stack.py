"""The embedded local stack: the whole system on one machine, with no AWS account.

A moto server on 127.0.0.1 stands in for S3, SQS, EC2 and SSM. Each analysis's bucket sends its
submit events to an SQS queue (as S3 does); a poller hands them to the same Chalice handler that
runs on Lambda, and the local instance runner runs what it launches.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from urllib.parse import unquote_plus
from collections.abc import Callable
from contextlib import ExitStack
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from chalicelib import handlers
from chalicelib.analysiscard import CARD_KEY, AnalysisCard
from chalicelib.awsclient import AWSClient
from chalicelib.blueprint import AnalysisSettings, Blueprint
from chalicelib.jobstate.markers import OPEN_PREFIX
from service import agentfile
from service.local import interruption
from service.local.account import provision, validating_launches
from service.local.instances import LocalEC2
from service.local.lock import StateLock, check_port_free
from service.local.persistence import S3Snapshot
from service.local.runner import InstanceRunner

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "neurocaas-local", "AWS_SECRET_ACCESS_KEY": "neurocaas-local"}
REGION = "us-east-1"
SUBMIT_SUFFIX = "submit.json"
HANDLER_CONCURRENCY = 4
REAPER_SECONDS = 2.0  # on AWS the reaper runs every 5 minutes; here a job's end shows in seconds
CANCEL_SUFFIX = "cancel.json"
DELIVERY_ATTEMPTS = 3  # Lambda's asynchronous invocations: the first try and two retries
RETRY_SECONDS = 60
RETRY_SUFFIX = "retry.json"


@dataclass
class Served:
    """One analysis the stack serves."""

    blueprint: Blueprint
    settings: AnalysisSettings
    queue_url: str


@dataclass
class LocalStackOptions:
    state_dir: Path
    port: int = 0
    slots: int | None = None
    minute_seconds: float = 60.0
    status_interval: float = 5.0
    snapshot_seconds: float = 10.0
    log: Callable[[str], None] = print
    extra_environment: dict[str, str] = field(default_factory=dict)
    # Start the instance runner only when serve_instances() is called (after the analyses are deployed), and
    # let it poll EC2 only from the first submission on: loading moto's EC2 takes seconds of CPU, which an
    # idle stack then never spends (ready and stopped in about a second).
    defer_instances: bool = False


class LocalStack:
    """Start, serve and stop the local stack. Use as a context manager or call start/stop.

    One stack at a time per process (moto's state is process-wide).
    """

    _live: "LocalStack | None" = None

    def __init__(self, options: LocalStackOptions) -> None:
        self.options = options
        self.state_dir = options.state_dir.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.served: dict[str, Served] = {}
        self.images: dict[str, Path] = {}
        self.server: ThreadedMotoServer | None = None
        self.port = options.port
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.snapshot = S3Snapshot(self.state_dir / "s3")
        self.runner: InstanceRunner | None = None
        self.handler_token: handlers.HandlerEnvironment | None = None
        self.resources = ExitStack()
        self.lock = StateLock(self.state_dir)
        self._session = boto3.session.Session()
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        # There is work for EC2: a submit or cancel event arrived, or jobs were open when the stack started.
        self._work = threading.Event()

    # --- life cycle -----------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        """A client of this stack, made once per service (boto3 clients are thread-safe; making one
        costs about 0.2 s of CPU, which dominated the stack's start-up)."""
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(
                    service, endpoint_url=self.endpoint, region_name=REGION,
                    aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                    config=Config(retries={"mode": "standard", "max_attempts": 3},
                                  max_pool_connections=HANDLER_CONCURRENCY * 4))
            return self._clients[service]

    def start(self) -> "LocalStack":
        # moto keeps its state in module globals: two stacks in one process would share it.
        if LocalStack._live is not None:
            raise RuntimeError("A local stack is already running in this process; stop it first.")
        self.lock.acquire()  # StackBusy: another stack keeps its state here
        try:
            check_port_free(self.port)
        except Exception:
            self.lock.release()
            raise
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        LocalStack._live = self
        self.resources.enter_context(validating_launches())
        self.port = self.server.get_host_and_port()[1]
        # Start from the state directory alone, as a new server process would.
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=10)
        try:
            restored = self.snapshot.restore(self.client("s3"), REGION)
            self._load_images()
            if restored:
                self.options.log(f"restored {restored} object(s) from {self.state_dir}")
            self.handler_token = handlers.configure(self._settings_for, self._aws_for, lambda: list(self.served))
        except BaseException:
            self.stop()
            raise
        self._spawn(self._poll_submissions, "submit-events")
        self._spawn(self._snapshot_periodically, "snapshots")
        self._spawn(self._reap_periodically, "reaper")
        if not self.options.defer_instances:
            self.serve_instances()
        return self

    def serve_instances(self) -> None:
        """Start running launched instances. EC2 (moto's largest module, seconds to load) is made ready in the
        background; instances launched meanwhile are picked up by the runner's first poll. Deferred, the
        runner and the reaper wait for work: jobs still open from the last run, or the first submission."""
        s3 = self.client("s3")
        if any(s3.list_objects_v2(Bucket=bucket, Prefix=OPEN_PREFIX, MaxKeys=1).get("KeyCount")
               for bucket in self.served):
            self._work.set()
        self._spawn(self._start_instances, "instances")

    def _start_instances(self) -> None:
        runner = InstanceRunner(
            LocalEC2(self.client("ec2"), REGION), self.client("s3"), state_dir=self.state_dir,
            images=self.images.get, analyses=lambda: set(self.served), environment=self.instance_environment(),
            slots=self.options.slots, minute_seconds=self.options.minute_seconds, log=self.options.log,
            on_state=self._state_changed,
        )
        lost = runner.recover()
        if lost:
            self.options.log(f"{lost} dataset(s) interrupted by the last stop marked FAILED")
        if self.options.defer_instances:
            while not self._work.wait(0.5) and not self.stopping.is_set():
                pass
        if not self.stopping.is_set():
            self.runner = runner
            runner.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=10)
        if self.runner:
            self.runner.stop()
        try:
            if self.server is not None and LocalStack._live is self:
                self.snapshot.save(self.client("s3"))
        finally:
            if self.handler_token is not None:
                handlers.release(self.handler_token)
            if self.server:
                self.server.stop()
            self.resources.close()
            LocalStack._live = None
            self.lock.release()

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def instance_environment(self) -> dict[str, str]:
        """What every local instance finds in its environment: this stack as its AWS."""
        return {
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "NEUROCAAS_STATUS_INTERVAL": str(self.options.status_interval),
            "NEUROCAAS_INTERRUPTION_POLL": str(min(self.options.status_interval, 5.0)),
            "LANG": "C.UTF-8",
            **self.options.extra_environment,
        }

    # --- analyses -------------------------------------------------------------------------------
    def deploy(self, blueprint: Blueprint) -> Served:
        """Serve an analysis: its bucket, group folders, submit notifications and image."""
        settings = blueprint.settings.model_copy(update={"region": REGION})
        s3, sqs = self.client("s3"), self.client("sqs")
        bucket = settings.bucket_name
        if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", ())}:
            s3.create_bucket(Bucket=bucket)
        for affiliate in blueprint.affiliates:
            for folder in ("inputs", "configs", "submissions", "results"):
                s3.put_object(Bucket=bucket, Key=f"{affiliate.name}/{folder}/", Body=b"")
        queue_url = sqs.create_queue(QueueName=f"neurocaas-{bucket}-submits",
                                     Attributes={"VisibilityTimeout": str(RETRY_SECONDS)})["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [{
            "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": suffix}]}},
        } for suffix in (SUBMIT_SUFFIX, CANCEL_SUFFIX, RETRY_SUFFIX)]})
        agentfile.upload(s3, bucket)  # what instances install when their image lacks it, as on AWS
        card = AnalysisCard.of(settings, blueprint.parameters_schema)
        s3.put_object(Bucket=bucket, Key=CARD_KEY, Body=card.to_bytes(),
                      ContentType="application/json")
        if blueprint.local_image is not None:
            self.register_image(settings.ami, blueprint.local_image)
        created = provision(settings, iam=self.client("iam"), ec2=self.client("ec2"), region=REGION)
        if created:
            self.options.log(f"{bucket}: created what the blueprint references: {'; '.join(created)}")
        served = Served(blueprint, settings, queue_url)
        self.served[bucket] = served
        return served

    def register_image(self, ami: str, folder: Path) -> None:
        """Say which folder holds what the machine image ``ami`` holds (kept across restarts)."""
        self.images[ami] = folder.resolve()
        (self.state_dir / "images.json").write_text(json.dumps({k: str(v) for k, v in self.images.items()}, indent=1))

    def _load_images(self) -> None:
        path = self.state_dir / "images.json"
        if path.exists():
            self.images.update({k: Path(v) for k, v in json.loads(path.read_text()).items()})

    def _settings_for(self, bucket: str) -> AnalysisSettings:
        return self.served[bucket].settings

    def _aws_for(self, region: str) -> AWSClient:
        # moto's Spot price history is a placeholder: Spot prices come from the bundled table.
        return AWSClient(self.client("s3"), self.client("ec2"), self.client("ssm"), spot_history=False)

    # --- background work ------------------------------------------------------------------------
    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _poll_submissions(self) -> None:
        import app as chalice_app  # the same Chalice handler that runs on Lambda

        sqs = self.client("sqs")
        # Like Lambda, several events are handled at once; each message is deleted once handled.
        with ThreadPoolExecutor(max_workers=HANDLER_CONCURRENCY, thread_name_prefix="handler") as pool:
            while not self.stopping.is_set():
                received = False
                for served in list(self.served.values()):
                    try:
                        messages = sqs.receive_message(
                            QueueUrl=served.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                            AttributeNames=["ApproximateReceiveCount"]).get("Messages", ())
                    except Exception as error:
                        if not self.stopping.is_set():
                            self.options.log(f"submit events: {error}")
                        continue
                    received = received or bool(messages)
                    list(pool.map(lambda m, s=served: self._deliver(chalice_app, sqs, s, m), messages))
                if not received:
                    self.stopping.wait(0.2)

    def _deliver(self, chalice_app: Any, sqs: Any, served: Served, message: dict[str, Any]) -> None:
        """Hand one queued S3 event to the handler; nothing it holds may stop the stack's polling."""
        try:
            self._deliver_records(chalice_app, sqs, served, message)
        except Exception as error:  # a malformed message, the endpoint going away: logged, never silent
            if not self.stopping.is_set():
                self.options.log(f"{served.settings.bucket_name}: a submit event could not be delivered: {error}")

    def _deliver_records(self, chalice_app: Any, sqs: Any, served: Served, message: dict[str, Any]) -> None:
        def done() -> None:
            sqs.delete_message(QueueUrl=served.queue_url, ReceiptHandle=message["ReceiptHandle"])

        try:
            records = json.loads(message["Body"]).get("Records")
        except (ValueError, AttributeError) as error:
            self.options.log(f"{served.settings.bucket_name}: dropped a queued message that is not an S3 event ({error})")
            return done()
        if records is None:  # s3:TestEvent when notifications are configured
            return done()
        attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        self._work.set()
        for record in records:
            key = unquote_plus(record["s3"]["object"]["key"])
            handler = chalice_app.on_cancel if key.endswith(CANCEL_SUFFIX) \
                else chalice_app.on_retry if key.endswith(RETRY_SUFFIX) else chalice_app.on_submit
            try:
                handler({"Records": [record]}, None)
            except Exception as error:
                # As Lambda retries an asynchronous S3 event twice, then gives up.
                if attempt < DELIVERY_ATTEMPTS:
                    self.options.log(f"{key}: the handler failed (attempt {attempt} of {DELIVERY_ATTEMPTS}; "
                                     f"retried in {RETRY_SECONDS} s): {error}")
                    return
                self.options.log(f"{key}: the handler failed {attempt} times; gave up on it (its certificate "
                                 f"says why): {error}")
        done()

    def _state_changed(self, instance_id: str, state: str) -> None:
        """Send the runner's state changes to the same handler EventBridge feeds on AWS."""
        import app as chalice_app

        event = {
            "version": "0", "id": f"local-{instance_id}-{state}", "detail-type": "EC2 Instance State-change Notification",
            "source": "aws.ec2", "account": "123456789012", "time": datetime.now(timezone.utc).isoformat(),
            "region": REGION, "resources": [f"arn:aws:ec2:{REGION}:123456789012:instance/{instance_id}"],
            "detail": {"instance-id": instance_id, "state": state},
        }
        try:
            chalice_app.on_instance_state(event, None)
        except Exception as error:
            self.options.log(f"instance state handler failed: {error}")

    def interrupt(self, instance_id: str) -> threading.Timer:
        """Play EC2 reclaiming a Spot instance (see :func:`service.local.interruption.interrupt`)."""
        return interruption.interrupt(self, instance_id)

    def _reap_periodically(self) -> None:
        """The scheduled reaper, through the same Chalice handler as on AWS (and the interruptions
        `neurocaas local interrupt` asked for)."""
        import app as chalice_app

        if self.options.defer_instances:
            while not self._work.wait(0.5) and not self.stopping.is_set():
                pass
        while not self.stopping.wait(REAPER_SECONDS):
            interruption.take_requests(self)
            event = {"version": "0", "id": "local-reaper", "detail-type": "Scheduled Event", "source": "aws.events",
                     "account": "123456789012", "time": datetime.now(timezone.utc).isoformat(), "region": REGION,
                     "resources": [], "detail": {}}
            try:
                chalice_app.reaper(event, None)
            except Exception as error:
                if not self.stopping.is_set():
                    self.options.log(f"reaper: {error}")

    def _snapshot_periodically(self) -> None:
        while not self.stopping.wait(self.options.snapshot_seconds):
            try:
                self.snapshot.save(self.client("s3"))
            except Exception as error:
                self.options.log(f"snapshot: {error}")


def environment_for_clients(stack: LocalStack) -> dict[str, str]:
    """Environment variables a plain S3 client (boto3, aws CLI) uses to talk to the stack."""
    return {**CREDENTIALS, "AWS_ENDPOINT_URL": stack.endpoint, "AWS_DEFAULT_REGION": REGION}

