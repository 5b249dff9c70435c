"""The reconciler: derives a job's record from facts that each have one writer.

Facts: ``job.json``'s launch part (datasets, instance ids), the datasets' status files, the
instances' end markers and ``cancel.json``. Derived: ``job.json``'s state, dataset states and
actual cost, the certificate's dataset block and ``ACTUAL COST`` line, and ``end.txt``, created
once (``IfNoneMatch``): only its creator runs post-processing and adds the cost to the group's
ledger. Every derived write is conditional on what was read, so concurrent reconcilers converge.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib import awslimits
from chalicelib.awsclient import AWSClient, ListedObject, ObjectMissing, PreconditionFailed
from chalicelib.certificate import (
    actual_cost_line,
    attempt_lines,
    dataset_line,
    dataset_names,
    replace_attempts,
    replace_dataset_block,
)
from chalicelib.jobstate import statusfile
from chalicelib.jobstate.conditional import rewrite
from chalicelib.jobstate.errors import NoJobRecord
from chalicelib.jobstate.markers import (
    InstanceEnd,
    delete_open,
    end_key,
    ended_instances,
    first_running,
    split_folder,
)
from chalicelib.jobstate.statusfile import FINAL
from chalicelib.paths import ObjectRef
from chalicelib.records import DatasetRecord, DatasetState, JobRecord, JobState

ENDED_JOB = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
READ_CONCURRENCY = 32  # within the client's connection pool (awsclient.RETRIES)
LOST_INSTANCE = ("The instance stopped before its dataset reported a result. Submit it again; "
                 "if it keeps happening, contact the analysis developer.")
LOST_WHY = "its instance stopped before the dataset reported a result"


@dataclass(frozen=True)
class Reconciled:
    """What one reconcile found or did (for logs and tests)."""

    state: JobState | None
    detail: str
    ended_now: bool = False
    record: JobRecord | None = None
    cancelled_by: str | None = None  # set when the job has a cancel.json and has not ended yet


@dataclass
class Facts:
    """What the job's folder says, read once per reconcile."""

    statuses: dict[str, dict[str, Any]]
    modified: dict[str, datetime | None]
    cancelled_by: str | None


# Called by the writer of end.txt once the job's record is final: (record, bucket, prefix, cost
# not yet billed: the whole cost, less what ends before a retry already added to the ledger).
EndHook = Callable[[JobRecord, str, str, float], None]
# Asked when a dataset's instance ended without a final report: (folder, label, instance, why) ->
# whether the dataset was started again (then it is not final).
RelaunchHook = Callable[[str, str, str, str], bool]


class Reconciler:
    """Reconciles job folders; safe to run anywhere, any number of times, concurrently."""

    def __init__(self, aws: AWSClient, clock: Callable[[], datetime], on_end: EndHook | None = None,
                 relaunch: RelaunchHook | None = None, settle: EndHook | None = None) -> None:
        """``settle`` is called for an ended job whose open marker is still there (its end.txt
        writer may have died before adding to the ledger): it must be idempotent."""
        self.aws, self.clock, self.on_end, self.relaunch, self.settle = aws, clock, on_end, relaunch, settle

    def reconcile(self, folder: str, refresh: bool = False, instance_ids: list[str] | None = None,
                  _again: bool = True) -> Reconciled:
        """Bring the job at ``folder`` up to date. Without ``refresh`` (the monitor's cheap path,
        given the job's ``instance_ids`` from its open marker) nothing is read beyond one small
        listing while some instance of the job has not ended."""
        bucket, prefix = split_folder(folder)
        if instance_ids and not refresh:
            waiting = first_running(self.aws, bucket, prefix, instance_ids)
            if waiting is not None:
                return Reconciled(JobState.RUNNING, f"instance {waiting} (at least) still running")
            # Every instance has ended: of the events arriving now, one handler ends the job (the
            # others would each read every file again); if it dies, the reaper's pass does.
            try:
                self.aws.put(bucket, f"{prefix}/logs/ending.json", f'{{"at": "{self.clock().isoformat()}"}}'.encode(),
                             "application/json", if_none_match=True)
            except PreconditionFailed:
                return Reconciled(JobState.RUNNING, "another handler is ending the job")
        try:
            record = statusfile.load_record(self.aws, bucket, prefix)
        except NoJobRecord as error:
            return Reconciled(None, error.message)
        if record.state is JobState.QUEUED:
            return Reconciled(record.state, "queued", record=record)
        ended = ended_instances(self.aws, bucket, prefix)
        running = [i for i in record.instance_ids if i not in ended]
        if record.state in ENDED_JOB:
            if running:
                return Reconciled(record.state, f"ended; {len(running)} instance(s) still stopping")
            if self._settle_and_close(record, bucket, prefix, record.actual_cost or 0.0):
                return Reconciled(record.state, "ended")
            return Reconciled(record.state, "ended; its end is settled by the reaper once its writer must be done")
        if running and not refresh:
            return Reconciled(record.state, f"{len(running)} instance(s) still running")
        facts = self._facts(bucket, prefix, record)
        states, relaunched = self._dataset_states(folder, bucket, record, facts, ended)
        if relaunched and _again:
            return self.reconcile(folder, refresh=True, _again=False)  # the record has new attempts
        done = not running and all(s in FINAL for s in states.values())
        if not done:
            self._write_certificate(bucket, prefix, record, states, facts, None)
            self._write_record(bucket, prefix, states, None)
            return Reconciled(record.state, f"{sum(s in FINAL for s in states.values())}/{len(states)} dataset(s) "
                                            f"final, {len(running)} instance(s) running",
                              cancelled_by=facts.cancelled_by if running else None)
        return self._end(bucket, prefix, record, states, facts)

    # --- reading ------------------------------------------------------------------------------
    def _facts(self, bucket: str, prefix: str, record: JobRecord) -> Facts:
        listed, _ = self.aws.list_objects(bucket, f"{prefix}/logs/", delimiter="/")
        present: dict[str, ListedObject] = {o.key: o for o in listed}
        keys = [d.status_key for d in record.datasets.values() if d.status_key in present]
        with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as pool:
            bodies = list(pool.map(lambda k: self._read(k, bucket), keys))
        statuses = {k: statusfile.parse(b) for k, b in zip(keys, bodies) if b is not None}
        cancelled_by = None
        if f"{prefix}/logs/cancel.json" in present:
            cancel = statusfile.parse(self._read(f"{prefix}/logs/cancel.json", bucket) or b"{}")
            cancelled_by = str(cancel.get("by") or "the user")
        return Facts(statuses, {k: o.last_modified for k, o in present.items()}, cancelled_by)

    def _read(self, key: str, bucket: str) -> bytes | None:
        try:
            return self.aws.get_object(ObjectRef(bucket, key)).body
        except ObjectMissing:
            return None

    def _dataset_states(self, folder: str, bucket: str, record: JobRecord, facts: Facts,
                        ended: set[str]) -> tuple[dict[str, DatasetState], bool]:
        """Each dataset's state from its last attempt's report. One whose instance ended without a
        final report is started again when the relaunch hook allows, else finished here."""
        states = {}
        relaunched = False
        now = self.clock()
        for label, dataset in record.datasets.items():
            document = facts.statuses.get(dataset.status_key, {})
            if not statusfile.belongs(document, dataset.instance_id, dataset.earlier_instances):
                document = {}  # an earlier attempt's report: the relaunched instance has not reported yet
            state = statusfile.state_of(document) or DatasetState.INITIALIZING
            if state not in FINAL and dataset.instance_id in ended:
                if (not facts.cancelled_by and self.relaunch is not None and dataset.instance_id
                        and self.relaunch(folder, label, dataset.instance_id, LOST_WHY)):
                    states[label], relaunched = DatasetState.INITIALIZING, True
                    continue
                final = DatasetState.CANCELLED if facts.cancelled_by else DatasetState.FAILED
                reason = f"Cancelled by {facts.cancelled_by}." if facts.cancelled_by else LOST_INSTANCE
                _, document = statusfile.finish_from_outside(
                    self.aws, bucket, dataset.status_key, final, reason, input_key=dataset.input,
                    instance=dataset.instance_id, at=now, earlier=dataset.earlier_instances)
                facts.statuses[dataset.status_key], facts.modified[dataset.status_key] = document, now
                state = statusfile.state_of(document) or final
            states[label] = state
        return states, relaunched

    # --- writing ------------------------------------------------------------------------------
    def _end(self, bucket: str, prefix: str, record: JobRecord, states: dict[str, DatasetState],
             facts: Facts) -> Reconciled:
        ends = self._ends(bucket, prefix, record.instance_ids)
        cost = round(sum(e.cost for e in ends), 4)
        finished = max((e.ended for e in ends), default=None) or self.clock()
        if facts.cancelled_by:
            state, reason = JobState.CANCELLED, f"Cancelled by {facts.cancelled_by}."
        elif all(s is DatasetState.SUCCESS for s in states.values()):
            state, reason = JobState.SUCCEEDED, ""
        else:
            failed = sum(s is not DatasetState.SUCCESS for s in states.values())
            state, reason = JobState.FAILED, f"{failed} of {len(states)} dataset(s) did not succeed."
        try:
            self.aws.put(bucket, f"{prefix}/process_results/end.txt",
                         f"finished {finished.isoformat()}\nactual cost ${cost:.4f}\n".encode(), if_none_match=True)
            won = True
        except PreconditionFailed:
            won = False
        self._write_certificate(bucket, prefix, record, states, facts, cost)
        self._write_record(bucket, prefix, states, (state, reason, cost, finished))
        if won:
            if self.on_end is not None:
                self.on_end(record, bucket, prefix, round(max(cost - record.billed_cost, 0.0), 4))
            self._close(record, prefix)
        else:  # the writer of end.txt closes the job, or, if it died part way, the reaper
            self._settle_and_close(record, bucket, prefix, cost)
        return Reconciled(state, f"job ended {state.value}: end.txt {'written' if won else 'already written'}, "
                                 f"actual cost ${cost:.4f}", ended_now=won)

    def _ends(self, bucket: str, prefix: str, instance_ids: list[str]) -> list[InstanceEnd]:
        with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as pool:
            bodies = list(pool.map(lambda i: self._read(end_key(prefix, i), bucket), instance_ids))
        ends = []
        for body in bodies:
            try:
                ends.append(InstanceEnd.model_validate_json(body or b""))
            except ValueError:
                continue  # unreadable marker: counted as free rather than blocking the end
        return ends

    def _write_certificate(self, bucket: str, prefix: str, record: JobRecord, states: dict[str, DatasetState],
                           facts: Facts, cost: float | None) -> None:
        def change(body: bytes | None) -> bytes | None:
            if body is None:
                return None
            text = body.decode()
            names = dataset_names(text)
            if len(names) != len(record.datasets):
                names = [_name(d) for d in record.datasets.values()]
            block = [self._line(name, d, states[label], facts, record)
                     for name, (label, d) in zip(names, record.datasets.items())]
            updated = replace_dataset_block(text, block)
            updated = replace_attempts(updated, attempt_lines(record))
            if cost is not None and "ACTUAL COST:" not in updated:
                updated += actual_cost_line(cost) + "\n"
            return None if updated == text else updated.encode()

        rewrite(self.aws, bucket, f"{prefix}/logs/certificate.txt", change)

    def _line(self, name: str, dataset: DatasetRecord, state: DatasetState, facts: Facts, record: JobRecord) -> str:
        document = facts.statuses.get(dataset.status_key)
        if document is not None and not statusfile.belongs(document, dataset.instance_id, dataset.earlier_instances):
            document = None
        if document is None:
            moment = record.started or record.created
            command = f"instance {dataset.instance_id} launched; waiting for it to boot"
        else:
            moment = _finish_time(document) if state in FINAL else None
            moment = moment or facts.modified.get(dataset.status_key) or record.started or record.created
            command = statusfile.last_line_of(document) or statusfile.reason_of(document)
        return dataset_line(name, state.value, moment, command, finished=state in FINAL)

    def _write_record(self, bucket: str, prefix: str, states: dict[str, DatasetState],
                      final: tuple[JobState, str, float, datetime] | None) -> None:
        def change(body: bytes | None) -> bytes | None:
            if body is None:
                return None
            current = JobRecord.model_validate_json(body)
            if current.state in ENDED_JOB:
                return None  # another reconciler (or the job manager) has already ended it
            changed = False
            for label, state in states.items():
                if label in current.datasets and current.datasets[label].state is not state:
                    current.datasets[label].state, changed = state, True
            if final is not None:
                current.state, current.reason, current.actual_cost, current.finished = final
                changed = True
            if not changed:
                return None
            current.updated = self.clock()
            return current.to_bytes()

        rewrite(self.aws, bucket, f"{prefix}/logs/job.json", change, "application/json")

    def _settle_and_close(self, record: JobRecord, bucket: str, prefix: str, cost: float) -> bool:
        """Remove the open marker of an ended job this reconcile did not end, once nothing is owed:
        no end.txt (nothing ran at its end) or nothing launched; else, with a ``settle`` hook, once
        end.txt is older than any Lambda can run (its writer is done or dead), after settling what
        that writer owed. Returns whether the marker went."""
        listed, _ = self.aws.list_objects(bucket, f"{prefix}/process_results/end.txt")
        end = next((o for o in listed if o.key == f"{prefix}/process_results/end.txt"), None)
        if end is not None and record.instance_ids:
            if self.settle is None:
                return False
            written = end.last_modified or self.clock()
            if (self.clock() - written).total_seconds() < awslimits.LAMBDA_LONGEST_RUN_SECONDS:
                return False
            self.settle(record, bucket, prefix, round(max(cost - record.billed_cost, 0.0), 4))
        self._close(record, prefix)
        return True

    def _close(self, record: JobRecord, prefix: str) -> None:
        """The job's end is recorded: its open marker goes."""
        delete_open(self.aws, record.analysis, record.group, prefix.rsplit("/", 1)[-1])


def _name(dataset: DatasetRecord) -> str:
    return dataset.input if dataset.member is None else f"{dataset.input} [member {dataset.member}]"


def _finish_time(document: dict[str, Any]) -> datetime | None:
    value = document.get("job_finish")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None  # NeuroCAAS writes "N/A" until the end
    return moment if moment.tzinfo else None

