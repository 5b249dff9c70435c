"""Job-state benchmark (issue 17): submission requests, and a 1000-instance job ending under weak AWS.

1. Requests per submission at N = 1, 100, 1000 (every S3, EC2, SSM and Service Quotas call made
   by ``handle_submit``), its wall time, and, in the same mocked account, moto's own time for
   one bare 1000-instance ``RunInstances`` (the floor any handler launching 1000 instances pays).
2. N instances finishing within 60 s: each writes its final status file (NeuroCAAS shapes for
   some) through an S3 client with 100-300 ms per request (real sleeps), then its state-change
   events go through an EventBus that drops 5 %, duplicates 10 % and shuffles them, handled by
   64 concurrent monitors (as Lambda would). A reaper pass follows (after DescribeInstances'
   lag). Reported: lost updates (datasets whose final state in job.json differs from what the
   instance wrote), how many wrote end.txt (1), S3 requests per finished dataset, whether the
   monitor or the reaper ended the job, and the wall time of the last event's handler.

Run: python benchmarks/jobstate_bench.py [--sizes 1,100,1000] [--instances 1000] [--latency 0.1,0.3]
Exit status 1 when a target is missed (more than 12 requests per submission, a lost update,
end.txt written other than once).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.moto_account import BUCKET, SUBMIT_KEY, account  # noqa: E402 (sets dummy credentials)
from chalicelib.awsclient import AWSClient  # noqa: E402
from chalicelib.jobstate.markers import OpenJobs  # noqa: E402
from chalicelib.monitor.control import reap  # noqa: E402
from chalicelib.monitor.statechange import InstanceMonitor  # noqa: E402
from tests.weakaws import EventBus, FakeClock, LaggingEC2, LatentClient, StateEvent  # noqa: E402

REQUESTS_TARGET = 17  # constant in N; see benchmarks/README.md for each request
ENDINGS: list[str] = []  # filled in the importable module (post-processing imports it by name)


def count_ending(job: object) -> None:
    ENDINGS.append(str(getattr(job, "prefix", "")))


def endings() -> list[str]:
    import benchmarks.jobstate_bench as named  # not __main__: the module POSTPROCESS names
    return named.ENDINGS


def submission(n: int) -> dict[str, object]:
    with account(n, "readable", warm=True) as acct:
        with acct.counter.counting():
            started = time.perf_counter()
            result = acct.manager.handle_submit(BUCKET, SUBMIT_KEY)
            wall = time.perf_counter() - started
            moto = acct.counter.moto_seconds
        calls = dict(acct.counter.calls)
        bare = None
        if n == 1000:
            ami = acct.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
            started = time.perf_counter()
            acct.ec2.run_instances(ImageId=ami, InstanceType="t2.micro", MinCount=1000, MaxCount=1000)
            bare = time.perf_counter() - started
    return {"n": n, "outcome": result.outcome.value, "calls": calls, "wall": wall, "moto": moto, "bare": bare}


def finishing(n: int, low: float, high: float, workers: int, drop: float) -> dict[str, object]:
    with account(n, "readable", warm=False) as acct:
        result = acct.manager.handle_submit(BUCKET, SUBMIT_KEY)
        record = result.record
        assert record is not None, result.message
        s3 = acct.manager.aws.s3
        clock = FakeClock(record.started)
        slow = LatentClient(s3, low, high, seed=1)
        ec2 = LaggingEC2(acct.ec2, clock)
        aws = AWSClient(slow, ec2, acct.manager.aws.ssm)
        rng = random.Random(5)
        failing = set(rng.sample(sorted(record.datasets), max(1, n // 100)))
        bus = EventBus(drop=drop, duplicate=0.1, seed=3)
        written: dict[str, str] = {}
        lock = threading.Lock()

        def finish(label: str) -> None:
            dataset = record.datasets[label]
            state = "FAILED" if label in failing else "SUCCESS"
            body = {"status": state, "reason": [f"exit code 1 in {label}"], "job_finish": "N/A",
                    "stdout": ["done"], "stderr": []} if state == "FAILED" else {"status": state, "reason": ""}
            slow.put_object(Bucket=BUCKET, Key=dataset.status_key, Body=json.dumps(body).encode())
            at = clock() + timedelta(minutes=30, seconds=rng.uniform(0, 60))
            with lock:
                written[label] = state
                bus.emit(dataset.instance_id, "shutting-down", at)
                bus.emit(dataset.instance_id, "terminated", at + timedelta(seconds=5))

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(finish, sorted(record.datasets)))
        acct.ec2.terminate_instances(InstanceIds=record.instance_ids)
        ec2.note_terminated(record.instance_ids)
        clock.advance(31 * 60)
        markers = OpenJobs()
        slow.calls.clear()
        last = {"seconds": 0.0, "ended": ""}

        def deliver(event: StateEvent) -> str:
            begun = time.perf_counter()
            outcome = InstanceMonitor(aws, BUCKET, clock, None, "benchmarks.jobstate_bench:count_ending",
                                      open_jobs=markers).handle(event.instance_id, event.state, event.time)
            if "end.txt written" in outcome:
                last.update(seconds=time.perf_counter() - begun, ended="a monitor event")
            return outcome

        endings().clear()
        bus.deliver(deliver, workers=workers)
        monitor_requests = sum(slow.calls.values())
        clock.advance(120)
        before = time.perf_counter()
        report = reap(aws, BUCKET, clock(), postprocess="benchmarks.jobstate_bench:count_ending", open_jobs=markers)
        if not last["ended"]:
            last.update(seconds=time.perf_counter() - before, ended="the reaper pass")
        total = time.perf_counter() - started
        final = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{record_prefix(result)}/logs/job.json")["Body"].read())
        lost = sum(final["datasets"][label]["state"] != state for label, state in written.items())
        return {"n": n, "lost": lost, "endings": len(endings()), "state": final["state"],
                "requests": dict(slow.calls), "monitor_requests": monitor_requests, "dropped": len(bus.dropped),
                "reaped": len(report.ended), "ended_by": last["ended"], "last_handler": last["seconds"],
                "total": total, "cost": final["actual_cost"]}


def record_prefix(result: object) -> str:
    return result.location.prefix  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--latency", default="0.1,0.3", help="seconds per S3 request: low,high")
    parser.add_argument("--workers", type=int, default=64)
    args = parser.parse_args()
    ok = True
    print("Requests per submission (handle_submit only; warm clients; quota readable)")
    print(f"{'N':>5} {'S3':>4} {'EC2':>4} {'SSM+quotas':>10} {'total':>5} {'wall s':>7} {'moto s':>7}  by operation")
    for n in (int(x) for x in args.sizes.split(",") if x):
        r = submission(n)
        calls: Counter[str] = Counter()
        for (service, _), count in r["calls"].items():  # type: ignore[union-attr]
            calls[service] += count
        total = sum(calls.values())
        ok &= total <= REQUESTS_TARGET and r["outcome"] == "started"
        ops = ", ".join(f"{op} {c}" for (_, op), c in sorted(r["calls"].items()))  # type: ignore[union-attr]
        print(f"{n:>5} {calls['s3']:>4} {calls['ec2']:>4} {calls['ssm'] + calls['service-quotas']:>10} {total:>5} "
              f"{r['wall']:>7.2f} {r['moto']:>7.2f}  {ops}")
        if r["bare"] is not None:
            print(f"      the same run: one bare 1000-instance RunInstances took moto {r['bare']:.2f} s "
                  f"(handler/bare = {r['wall'] / r['bare']:.2f})")
    low, high = (float(x) for x in args.latency.split(","))
    for drop in (0.05, 0.0):
        ok &= report_finishing(finishing(args.instances, low, high, args.workers, drop), low, high, args.workers)
    print("\nAll targets met." if ok else "\nA target was missed.")
    return 0 if ok else 1


def report_finishing(f: dict[str, object], low: float, high: float, workers: int) -> bool:
    requests: dict[str, int] = f["requests"]  # type: ignore[assignment]
    print(f"\n{f['n']} instances finishing within 60 s, {low * 1000:.0f}-{high * 1000:.0f} ms per S3 request, "
          f"{workers} concurrent handlers, {f['dropped']} of the events dropped, 10 % duplicated, shuffled:")
    print(f"  lost updates: {f['lost']}; end.txt written {f['endings']} time(s); job {f['state']}, "
          f"actual cost ${f['cost']:.4f}")
    print(f"  S3 requests by the monitors: {f['monitor_requests']} = {f['monitor_requests'] / f['n']:.1f} per finished "  # type: ignore[operator]
          f"dataset; with the reaper pass: {sum(requests.values())} ({', '.join(f'{k} {v}' for k, v in sorted(requests.items()))})")
    print(f"  ended by {f['ended_by']} ({f['reaped']} instance end(s) recorded by the reaper); that handler took "
          f"{f['last_handler']:.1f} s; everything {f['total']:.0f} s")
    return f["lost"] == 0 and f["endings"] == 1


if __name__ == "__main__":
    sys.exit(main())
