"""Carrying out a job plan: launch, record, and on any failure stop everything it started."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from chalicelib import awslimits, capacity, pricing
from chalicelib.awsclient import AWSClient, LaunchedInstance
from chalicelib.certificate import Certificate, attempt_lines, dataset_line
from chalicelib.exceptions import AWSFailure, NeuroCAASError, SettingsError, Step, UnexpectedFailure
from chalicelib.jobstore import JobStore
from chalicelib.plan import JobPlan, LaunchBatch, run_instances_request
from chalicelib.records import (
    Attempt,
    Capacity,
    DatasetRecord,
    DatasetState,
    JobRecord,
    JobState,
    Relaunch,
)

CAPACITY_CODES = ("InsufficientInstanceCapacity", "VcpuLimitExceeded", "InstanceLimitExceeded")
# (instance id, capacity, why, hourly price) of each launched instance, by (batch, launch index)
Launched = dict[tuple[int, int], tuple[str, Capacity, str, float]]


class JobExecutor:
    """Executes one :class:`JobPlan` against AWS through a :class:`JobStore`."""

    def __init__(self, aws: AWSClient, store: JobStore, clock: Callable[[], datetime], logger: Any) -> None:
        self.aws, self.store, self.clock, self.logger = aws, store, clock, logger
        self._default_subnets: list[str] | None = None

    def execute(self, plan: JobPlan, record: JobRecord, certificate: Certificate, resumed: bool) -> JobRecord:
        launched: list[str] = []
        step = Step.ENVIRONMENT
        try:
            for dataset in plan.datasets:
                if dataset.config_body is not None:
                    self.store.save_object(dataset.config, dataset.config_body)
            price = pricing.hourly_price(plan.instance_type, plan.spot == "only")
            certificate.step(step, self.clock(), (
                f"{len(plan.datasets)} instance(s) of {plan.instance_type} (${price.hourly:.4f}/h), lifetime "
                f"{plan.lifetime_minutes} min each: estimated cost ${plan.estimated_cost:.2f}"
            ))
            for note in plan.notes:
                certificate.note(note)
            step = Step.PROCESSING
            by_batch = self._launched_before(plan) if resumed else {}
            instance_of: Launched = {}
            for batch in plan.batches:
                if batch.number in by_batch:
                    instances, market, why = by_batch[batch.number]
                    instance_type = record.instance_type or batch.instance_type
                else:
                    instances, market, why, instance_type = self._launch(plan, batch, record, certificate)
                hourly = capacity.hourly_price(self.aws, instance_type, market)
                for instance in instances:
                    instance_of[(batch.number, instance.launch_index)] = (instance.instance_id, market, why, hourly)
                    launched.append(instance.instance_id)
            self._record_running(plan, record, certificate, instance_of)
        except Exception as error:
            self._abort(plan, record, certificate, launched, error, step)
            raise
        return record

    def _launch(self, plan: JobPlan, batch: LaunchBatch, record: JobRecord,
                certificate: Certificate) -> tuple[list[LaunchedInstance], Capacity, str, str]:
        """Launch one batch: on Spot first when the blueprint allows, on-demand in the same step when
        AWS refuses Spot capacity; when AWS has no capacity, the same type in the account's other
        default subnets (Availability Zones), then the blueprint's fallback types in order.
        Returns (instances, capacity, why, instance type)."""
        markets = capacity.markets(plan.spot)
        pending = [(a, m) for a in self._attempts(plan, batch) for m in markets]
        # With security group names rather than ids EC2 picks the subnet itself; else the other zones
        # are listed (one DescribeSubnets) only when AWS first says it has no capacity.
        zones_to_add = all(g.startswith("sg-") for g in plan.security_groups)
        excluded: set[tuple[str, Capacity]] = set()
        refused = ""
        while True:
            attempt, market = pending.pop(0)
            if market is not markets[0]:
                token = hashlib.sha256(f"{attempt.client_token}|{market.value}".encode()).hexdigest()[:64]
                attempt = replace(attempt, client_token=token)
            request = run_instances_request(plan, attempt, market is Capacity.SPOT)
            problems = awslimits.check_call("ec2", "run_instances", request)
            if problems:
                raise SettingsError(f"The launch request breaks AWS's limits ({'; '.join(problems)}). "
                                    "Contact the analysis developer.")
            try:
                instances = self.aws.run_instances(request)
            except AWSFailure as error:
                if error.code != "InsufficientInstanceCapacity":  # a quota: other zones do not help
                    excluded.add((attempt.instance_type, market))
                    pending = [(a, m) for a, m in pending if (a.instance_type, m) != (attempt.instance_type, market)]
                elif zones_to_add and attempt.instance_type == batch.instance_type:
                    zones_to_add = False
                    others = [(a, m) for a in self._other_zones(batch) for m in markets
                              if (a.instance_type, m) not in excluded]
                    here = next((k for k, (a, _) in enumerate(pending) if a.instance_type != batch.instance_type),
                                len(pending))
                    pending[here:here] = others  # after this zone's other market, before the fallback types
                spot_refused = market is Capacity.SPOT and error.code in capacity.SPOT_REFUSED
                if not (spot_refused or error.code in CAPACITY_CODES) or not pending:
                    raise
                following, following_market = pending[0]
                if (following.instance_type, following.subnet) == (attempt.instance_type, attempt.subnet):
                    certificate.note(f"No Spot capacity for {attempt.instance_type} ({error.code}); batch "
                                     f"{batch.number + 1} starts on-demand.")
                    refused = error.code  # why the on-demand launch that follows got on-demand
                else:
                    where = f" in {following.subnet}" if following.subnet else ""
                    kind = "Spot capacity" if market is Capacity.SPOT else "capacity"
                    certificate.note(f"No {kind} for {attempt.instance_type} ({error.code}); trying "
                                     f"{following.instance_type}{where}.")
                    refused = ""
                continue
            if attempt.instance_type != batch.instance_type:
                certificate.note(f"{attempt.count} instance(s) started on {attempt.instance_type} instead of "
                                 f"{batch.instance_type}, which AWS had no capacity for.")
                record.instance_type = attempt.instance_type
            return instances, market, capacity.reason(market, plan.spot, refused), attempt.instance_type

    def _attempts(self, plan: JobPlan, batch: LaunchBatch) -> list[LaunchBatch]:
        """The batch as first planned, then on each fallback type (the other zones come later)."""
        types = [t for t in plan.fallback_instance_types if t != batch.instance_type]
        return [batch, *(replace(batch, instance_type=t, client_token=self._token(batch, t, "")) for t in types)]

    def _other_zones(self, batch: LaunchBatch) -> list[LaunchBatch]:
        """The batch as planned, in each of the account's default subnets."""
        return [replace(batch, subnet=s, client_token=self._token(batch, batch.instance_type, s))
                for s in self._subnets()]

    @staticmethod
    def _token(batch: LaunchBatch, instance_type: str, subnet: str) -> str:
        return hashlib.sha256(f"{batch.client_token}|{instance_type}|{subnet}".encode()).hexdigest()[:64]

    def _subnets(self) -> list[str]:
        """The default subnets, read once per handler (none when they cannot be read)."""
        if self._default_subnets is None:
            try:
                self._default_subnets = self.aws.default_subnets()
            except AWSFailure:
                self._default_subnets = []
        return self._default_subnets

    def _launched_before(self, plan: JobPlan) -> dict[int, tuple[list[LaunchedInstance], Capacity, str]]:
        """Instances an earlier, interrupted attempt at this job already started, by batch."""
        found: dict[int, list[LaunchedInstance]] = {}
        spot: dict[int, bool] = {}
        for info in self.aws.find_instances({"analysis": plan.analysis, "job": plan.tags["job"],
                                             "group": plan.submission.group}):
            tag = info.tags.get("neurocaas:batch", "0")
            if not tag.isdigit():
                continue  # a relaunched dataset's instance, not one of the job's batches
            found.setdefault(int(tag), []).append(LaunchedInstance(info.instance_id, info.launch_index))
            spot[int(tag)] = info.spot
        expected = {b.number: b.count for b in plan.batches}
        resumed = {}
        for number, instances in found.items():
            if len(instances) == expected.get(number):
                market = Capacity.SPOT if spot[number] else Capacity.ON_DEMAND
                resumed[number] = (instances, market, capacity.reason(market, plan.spot))
        return resumed

    def _record_running(self, plan: JobPlan, record: JobRecord, certificate: Certificate,
                        instance_of: Launched) -> None:
        """The launch record: no per-dataset object is written (a dataset without a status file
        reads as INITIALIZING); the open-job marker first, so the monitor knows every instance."""
        now = self.clock()
        certificate.step(Step.PROCESSING, now, f"{len(instance_of)} instance(s) launched; each starts "
                         "its dataset as soon as it boots.")
        for dataset in plan.datasets:
            instance_id, market, why, hourly = instance_of[(dataset.batch, dataset.launch_index)]
            command = f"instance {instance_id} launched; waiting for it to boot"
            certificate.datasets.append(dataset_line(dataset.certificate_name(plan.analysis),
                                                     DatasetState.INITIALIZING.value, now, command))
            record.datasets[dataset.label] = DatasetRecord(
                input=dataset.input.key, config=dataset.config.key, status_key=dataset.status_key,
                instance_id=instance_id, member=dataset.member,
                attempts=[Attempt(instance_id=instance_id, capacity=market, why=why, hourly_price=hourly,
                                  launched=now)],
                arguments=[dataset.input.argument(plan.analysis), dataset.config.argument(plan.analysis)],
            )
        location = plan.submission.location
        root = plan.root_volume
        record.relaunch = Relaunch(result_argument=location.result_argument,
                                   log_uri=f"s3://{location.bucket}/{location.ec2_logs}", tags=plan.tags,
                                   root_volume=(root.device_name, root.size_gb) if root else None)
        record.spot = plan.spot
        certificate.attempts = attempt_lines(record)
        record.instance_ids = self.job_instances({k: v[0] for k, v in instance_of.items()})
        record.state = JobState.RUNNING
        record.started = now
        record.lease_expires = None
        self.store.save_open_marker(record, launched=now)
        self.store.save_certificate(certificate)
        self.store.save_record(record, now)

    def job_instances(self, instance_of: dict[tuple[int, int], str]) -> list[str]:
        """The instances whose end the job waits for (all it launched)."""
        return list(dict.fromkeys(instance_of.values()))

    def _abort(self, plan: JobPlan, record: JobRecord, certificate: Certificate, launched: list[str],
               error: Exception, step: Step) -> None:
        """Stop every instance of the job and say why in the certificate and the record."""
        self.logger.exception("job failed while starting", extra={"job": plan.job_id, "launched": launched})
        try:
            stragglers = [i.instance_id for i in self.aws.find_instances(
                {k: plan.tags[k] for k in ("analysis", "job", "group")})]
        except NeuroCAASError:
            stragglers = []
        to_stop = sorted(set(launched) | set(stragglers))
        try:
            self.aws.terminate(to_stop)
        except NeuroCAASError:
            self.logger.exception("could not terminate instances", extra={"instances": to_stop})
        failure = _reported(error, step, len(to_stop))
        now = self.clock()
        certificate.fail(failure, now)
        record.state = JobState.FAILED
        record.reason = failure.message
        record.refused = not to_stop
        record.finished = now
        record.instance_ids = to_stop
        record.lease_expires = None
        try:
            self.store.save_certificate(certificate)
            self.store.save_record(record, now)
            # Kept while stopped instances remain, so their end still reaches the cost records.
            if to_stop:
                self.store.save_open_marker(record, launched=now)
            else:
                self.store.delete_open_marker(record)
        except NeuroCAASError:
            self.logger.exception("could not record the failure", extra={"job": plan.job_id})


def _reported(error: Exception, step: Step, stopped: int) -> NeuroCAASError:
    """The failure as the user reads it: the step it happened in and what was cleaned up."""
    if not isinstance(error, NeuroCAASError):
        return UnexpectedFailure(step, stopped > 0)
    cleanup = f" The {stopped} instance(s) already started were stopped." if stopped else ""
    reported = NeuroCAASError(error.message + cleanup)
    reported.label, reported.step = error.label, step
    return reported
