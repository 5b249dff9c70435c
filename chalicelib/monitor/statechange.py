"""Keeping records true when an instance changes state (EventBridge, or the local runner).

Every decision is made from what EC2 says now, not from the event alone, so duplicated and
out-of-order events converge on the same records.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib.awsclient import (
    AWSClient,
    InstanceInfo,
    ObjectMissing,
    PreconditionFailed,
)
from chalicelib.monitor.costs import CostRecord, active_key, add_to_ledger, history_key
from chalicelib.monitor.postprocess import JobEnded, run_postprocess
from chalicelib.paths import ObjectRef
from chalicelib.progress import finish_dataset, rewrite, split_folder
from chalicelib.records import DatasetState, JobRecord

ENDED = ("stopped", "terminated")
ENDING = ("stopping", "shutting-down", *ENDED)


class InstanceMonitor:
    """Applies instance state changes to one analysis's cost records and jobs."""

    def __init__(self, aws: AWSClient, bucket: str, clock: Callable[[], datetime], logger: Any,
                 postprocess: str = "") -> None:
        self.aws, self.bucket, self.clock, self.logger = aws, bucket, clock, logger
        self.postprocess = postprocess

    def handle(self, instance_id: str) -> str:
        """Bring the records of ``instance_id`` up to date; returns what was done (for logs)."""
        info = self.aws.describe(instance_id)
        if info is None or info.tags.get("analysis") != self.bucket or "group" not in info.tags:
            return "ignored: not an instance of this analysis"
        if info.state == "running":
            return self._opened(info)
        if info.state in ENDING:
            done = self._closed(info)
            if info.state in ENDED:
                self._finish_dataset(info)
                done += "; " + self._maybe_end_job(info)
            return done
        return f"nothing to do in state {info.state}"

    def _load(self, key: str) -> tuple[CostRecord, str] | None:
        try:
            stored = self.aws.get_object(ObjectRef(self.bucket, key))
        except ObjectMissing:
            return None
        return CostRecord.model_validate_json(stored.body), stored.etag

    def _opened(self, info: InstanceInfo) -> str:
        record = CostRecord.opened(instance_id=info.instance_id, tags=info.tags, instance_type=info.instance_type,
                                   start=info.launch_time or self.clock())
        try:
            self.aws.put(self.bucket, active_key(info.instance_id), record.to_bytes(), "application/json",
                         if_none_match=True)
        except PreconditionFailed:
            return "already recorded as running"
        return "recorded as running"

    def _closed(self, info: InstanceInfo) -> str:
        group = info.tags["group"]
        active = self._load(active_key(info.instance_id))
        history = self._load(history_key(group, info.instance_id))
        now = self.clock()
        if active is None:
            if history is not None:
                return "already recorded as stopped"
            # The running event never came (or came late): the launch time is the start.
            opened = CostRecord.opened(instance_id=info.instance_id, tags=info.tags,
                                       instance_type=info.instance_type, start=info.launch_time or now)
            closed = opened.closed(now)
        else:
            closed = active[0].closed(now)
            if history is not None:  # stopped before, started again: one record, several periods
                closed = closed.model_copy(update={"periods": [*history[0].periods, *closed.periods]})
                closed = closed.model_copy(update={"cost": round(sum(p.hours for p in closed.periods)
                                                                 * closed.hourly_price, 6)})
        try:
            self.aws.put(self.bucket, history_key(group, info.instance_id), closed.to_bytes(), "application/json",
                         if_none_match=history is None, if_match=history[1] if history else None)
        except PreconditionFailed:
            return "already recorded as stopped (by a concurrent event)"
        # Only the writer that won the record adds to the group's total, so it is counted once.
        add_to_ledger(self.aws.s3, self.bucket, group, closed.cost - (history[0].cost if history else 0.0))
        self.aws.delete(self.bucket, active_key(info.instance_id))
        return f"recorded as stopped (${closed.cost:.4f})"

    def _finish_dataset(self, info: InstanceInfo) -> None:
        folder = info.tags.get("jobfolder")
        if folder:
            finish_dataset(self.aws.s3, folder, info.instance_id, DatasetState.FAILED,
                           "The instance stopped before its dataset reported a result. Submit it again; "
                           "if it keeps happening, contact the analysis developer.")

    def _maybe_end_job(self, info: InstanceInfo) -> str:
        tags = {k: info.tags[k] for k in ("analysis", "group", "job") if k in info.tags}
        siblings = self.aws.find_instances(tags, states=("pending", "running", "stopping", "stopped",
                                                        "shutting-down", "terminated"))
        if any(s.state not in ENDED for s in siblings):
            return "job still has running instances"
        folder = info.tags.get("jobfolder")
        if not folder:
            return "no job folder tag"
        bucket, prefix = split_folder(folder)
        cost = sum(self._cost_of(info.tags["group"], s.instance_id) for s in siblings)
        now = self.clock()
        try:
            self.aws.put(bucket, f"{prefix}/process_results/end.txt",
                         f"finished {now.isoformat()}\nactual cost ${cost:.4f}\n".encode(), if_none_match=True)
        except PreconditionFailed:
            return "end.txt already written"
        self._record_cost(bucket, prefix, cost, now)
        done = f"job ended: end.txt written, actual cost ${cost:.4f}"
        if self.postprocess:
            done += "; " + run_postprocess(self.postprocess, JobEnded(self.aws.s3, bucket, prefix, cost), self.logger)
        return done

    def _cost_of(self, group: str, instance_id: str) -> float:
        loaded = self._load(history_key(group, instance_id))
        return loaded[0].cost if loaded else 0.0

    def _record_cost(self, bucket: str, prefix: str, cost: float, now: datetime) -> None:
        def record(body: bytes | None) -> bytes | None:
            if body is None:
                return None
            job = JobRecord.model_validate_json(body)
            job.actual_cost, job.updated = round(cost, 4), now
            return job.to_bytes()

        def certificate(body: bytes | None) -> bytes | None:
            if body is None or b"ACTUAL COST:" in body:
                return None
            return body + f"ACTUAL COST: ${cost:.4f} (every instance of the job has stopped)\n".encode()

        rewrite(self.aws.s3, bucket, f"{prefix}/logs/job.json", record)
        rewrite(self.aws.s3, bucket, f"{prefix}/logs/certificate.txt", certificate)
