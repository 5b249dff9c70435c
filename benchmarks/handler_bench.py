"""Submit handler benchmark: AWS calls, wall time and memory of one submission of N datasets.

For each N, a fresh moto account gets N small dataset objects, one parameter file and a
submit.json listing them; then ``JobManager.handle_submit`` runs and we record:

1. EC2 API calls by operation, 2. S3 requests by operation, 3. SSM (and Service Quotas) calls,
   counted with botocore ``before-call`` hooks on each client, only during handle_submit;
4. handler wall time, handle_submit only: the median of --repeats runs whose clients already
   served one earlier job (a warm Lambda), each on a fresh account; also that time minus moto's
   time answering the requests ("own"), and one run on never-used clients ("fresh");
5. peak Python memory during handle_submit (tracemalloc, in a separate run so that tracing does
   not slow the timed ones). moto answers in this process: its allocations are counted too.

Then the same submission when the group already has K billing-history records, and 6. the import
time of ``app.py`` in fresh interpreters (median of --import-runs; target under 300 ms).

Everything runs under moto's ``mock_aws`` with dummy credentials: nothing reaches AWS.

Run: python benchmarks/handler_bench.py [--sizes 1,10,100,1000] [--repeats 3] [--import-runs 7]
Exit status 1 when a target is missed (EC2 calls grow with N, more than 3 S3 requests per added
dataset, import over 300 ms, or a run that does not start its N instances).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.moto_account import (  # noqa: E402 (sets dummy credentials before boto3 is imported)
    BUCKET,
    GROUP,
    SUBMIT_KEY,
    Account,
    account,
    running_instances,
)
from chalicelib.jobmanager import Outcome, Result  # noqa: E402

IMPORT_TARGET_MS = 300.0
S3_PER_DATASET_TARGET = 3.0


def check(result: Result, acct: Account, n: int) -> None:
    if result.outcome is not Outcome.STARTED:
        raise AssertionError(f"N={n}: outcome {result.outcome.value}, expected started: {result.message}")
    found = running_instances(acct.ec2, acct.job_tag)
    if found != n:
        raise AssertionError(f"N={n}: {found} instances running, expected {n}")


@dataclass
class Run:
    setup_seconds: float  # the fresh account, its uploads and the warm-up job
    seconds: float
    moto_seconds: float
    peak_bytes: int
    calls: dict[tuple[str, str], int]
    sends: dict[str, int]
    batches: int


@dataclass
class SizeResult:
    n: int
    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    sends: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    fresh: Run | None = None
    warm: list[Run] = field(default_factory=list)
    traced: Run | None = None
    peak_bytes: int = 0
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)

    def ops(self, service: str) -> dict[str, int]:
        return {op: c for (svc, op), c in sorted(self.calls.items()) if svc == service}

    def total(self, service: str) -> int:
        return sum(self.ops(service).values())

    @property
    def wall(self) -> list[float]:
        return [r.seconds for r in self.warm]

    @property
    def own(self) -> list[float]:
        """Wall time minus the time moto spent answering: the handler's and botocore's own work."""
        return [r.seconds - r.moto_seconds for r in self.warm]


def run_once(n: int, quota: str, history: int = 0, warm: bool = True, trace: bool = False) -> Run:
    """One submission of N datasets on a fresh account, measured."""
    began = time.perf_counter()
    with account(n, quota, history, warm) as acct:
        gc.collect()
        setup = time.perf_counter() - began
        peak = 0
        with acct.counter.counting():
            if trace:
                tracemalloc.start()
            started = time.perf_counter()
            result = acct.manager.handle_submit(BUCKET, SUBMIT_KEY)
            seconds = time.perf_counter() - started
            if trace:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
        check(result, acct, n)
        return Run(setup, seconds, acct.counter.moto_seconds, peak, dict(acct.counter.calls), dict(acct.counter.sends),
                   len(result.plan.batches) if result.plan else 0)


def measure(n: int, repeats: int, quota: str, history: int = 0, memory: bool = True,
            fresh: bool = True) -> SizeResult:
    """One run with fresh clients, `repeats` with warmed-up clients, and one traced for memory."""
    began = time.perf_counter()
    out = SizeResult(n)
    if fresh:
        out.fresh = run_once(n, quota, history, warm=False)
    out.warm = [run_once(n, quota, history) for _ in range(repeats)]
    first = out.warm[0]
    out.calls, out.sends, out.batches = first.calls, first.sends, first.batches
    for other in [out.fresh, *out.warm[1:]]:
        if other is not None and other.calls != first.calls:
            out.notes.append(f"call counts differ between runs: {other.calls} vs {first.calls}")
    if memory:
        out.traced = run_once(n, quota, history, trace=True)
        out.peak_bytes = out.traced.peak_bytes
    out.elapsed = time.perf_counter() - began
    return out


IMPORT_PROBE = "import time; t = time.perf_counter(); import app; print(time.perf_counter() - t)"


def import_times(runs: int, pycache_prefix: str | None = None) -> list[float]:
    """Seconds to ``import app`` in fresh interpreters (cwd = repository root)."""
    times = []
    for _ in range(runs):
        env = {**os.environ, "BUCKET_NAME": BUCKET}
        with tempfile.TemporaryDirectory() as prefix:
            if pycache_prefix is not None:  # an empty bytecode cache: every module compiles
                env["PYTHONPYCACHEPREFIX"] = prefix
            done = subprocess.run([sys.executable, "-c", IMPORT_PROBE], cwd=ROOT, env=env,
                                  capture_output=True, text=True, check=True)
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return times


def heaviest_imports(limit: int = 8) -> list[tuple[str, float]]:
    """Top-level packages by cumulative import time (from ``-X importtime``), in ms.

    A package's figure is its outermost import's cumulative time; packages imported by other
    packages are counted in both (boto3 includes botocore), so the figures overlap.
    """
    env = {**os.environ, "BUCKET_NAME": BUCKET}
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import app"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    packages: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|", 2)
        package = name.strip().split(".")[0]
        if package not in ("app", "site", "encodings"):
            packages[package] = max(packages.get(package, 0.0), int(cumulative) / 1000)
    return sorted(packages.items(), key=lambda r: -r[1])[:limit]


def fmt_ops(ops: dict[str, int]) -> str:
    return ", ".join(f"{op} {n}" for op, n in ops.items()) or "-"


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([title, line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100,1000", help="dataset counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per size with warm clients (median)")
    parser.add_argument("--import-runs", type=int, default=7, help="fresh interpreters for the import time")
    parser.add_argument("--quota", choices=("readable", "unreadable", "none"), default="readable",
                        help="vCPU quota: readable (GetServiceQuota answered locally, the full production "
                        "path), unreadable (moto's answer: no EC2 quotas), none (no client, as in tests)")
    parser.add_argument("--history", default="0,100,1000",
                        help="billing-history records already in the group, for the second table ('' to skip)")
    parser.add_argument("--history-size", type=int, default=10, help="datasets per submission in that table")
    parser.add_argument("--no-import", action="store_true", help="skip the import-time measurement")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    histories = [int(h) for h in args.history.split(",") if h.strip()]

    problems: list[str] = []
    print(f"handler_bench: sizes {sizes}, quota {args.quota}; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPU(s), moto {moto_version()}\n", flush=True)
    results = []
    for n in sizes:
        try:
            r = measure(n, args.repeats, args.quota)
        except Exception as error:  # noqa: BLE001 - report it and go on with the other sizes
            problems.append(f"N={n}: {type(error).__name__}: {error}")
            print(f"  N={n}: FAILED: {type(error).__name__}: {error}", flush=True)
            continue
        results.append(r)
        runs = [x for x in (r.fresh, *r.warm, r.traced) if x is not None]
        traced = f", traced handler run {r.traced.seconds:.1f} s" if r.traced else ""
        print(f"  N={n}: {r.elapsed:.1f} s in all for {len(runs)} runs: setups {sum(x.setup_seconds for x in runs):.1f} s, "
              f"untraced handler runs {sum(x.seconds for x in runs if x is not r.traced):.1f} s{traced}", flush=True)
    print()

    rows = []
    for r in results:
        rows.append([
            str(r.n), str(r.total("ec2")), str(r.batches), str(r.total("s3")), f"{r.total('s3') / r.n:.2f}",
            str(r.total("ssm")), str(r.total("service-quotas")),
            ms(statistics.median(r.wall)), ms(statistics.median(r.own)),
            ms(r.fresh.seconds) if r.fresh else "-", f"{r.peak_bytes / 2**20:.2f}",
        ])
    print(table("Submit handler: handle_submit only, each run on a fresh moto account",
                ["N", "EC2", "launches", "S3", "S3/N", "SSM", "quotas", "wall ms", "own ms", "fresh ms",
                 "peak MiB"], rows))
    print("  wall: median of the warm-client runs; own: wall minus moto's time answering requests;\n"
          "  fresh: one run on never-used clients (first invocation of a Lambda container);\n"
          "  peak: tracemalloc peak during handle_submit (moto's allocations included).")
    print("\nCalls by operation:")
    for r in results:
        print(f"  N={r.n}: EC2: {fmt_ops(r.ops('ec2'))} | S3: {fmt_ops(r.ops('s3'))} | "
              f"SSM: {fmt_ops(r.ops('ssm'))} | quotas: {fmt_ops(r.ops('service-quotas'))}")
    for r in results:
        services = ("ec2", "s3", "ssm", "service-quotas")
        mismatched = {s: (r.total(s), r.sends.get(s, 0)) for s in services if r.total(s) != r.sends.get(s, 0)}
        if mismatched:
            r.notes.append(f"API calls vs HTTP requests differ (retries?): {mismatched}")
        for note in r.notes:
            print(f"  note N={r.n}: {note}")

    if len(results) >= 2:
        first, last = results[0], results[-1]
        ec2_counts = {r.n: r.total("ec2") for r in results}
        print(f"\nEC2 calls by N: {ec2_counts}")
        if len(set(ec2_counts.values())) > 1:
            problems.append(f"EC2 calls grow with N: {ec2_counts}")
        slope = (last.total("s3") - first.total("s3")) / (last.n - first.n)
        fixed = first.total("s3") - slope * first.n
        print(f"S3 requests = {fixed:.0f} + {slope:.2f} x N (fitted on N={first.n} and N={last.n})")
        off = [r.n for r in results if abs(fixed + slope * r.n - r.total("s3")) > 0.5]
        if off:
            print(f"  (not exactly linear: N={off} off the line)")
        if slope > S3_PER_DATASET_TARGET:
            problems.append(f"S3 requests grow by {slope:.2f} per dataset (target <= {S3_PER_DATASET_TARGET:g})")

    if histories:
        print()
        hist_rows = []
        for k in histories:
            try:
                r = measure(args.history_size, 1, args.quota, history=k, memory=False, fresh=False)
            except Exception as error:  # noqa: BLE001 - likewise
                problems.append(f"history={k}: {type(error).__name__}: {error}")
                continue
            hist_rows.append([str(k), str(r.total("ec2")), str(r.total("s3")), str(r.ops("s3").get("GetObject", 0)),
                              str(r.ops("s3").get("ListObjectsV2", 0)), ms(r.wall[0]), ms(r.own[0])])
        print(table(f"The same submission (N={args.history_size}) when the group already has K billing-history "
                    f"records (logs/{GROUP}/*.json)",
                    ["K", "EC2", "S3", "S3 GetObject", "S3 ListObjectsV2", "wall ms", "own ms"], hist_rows))

    if not args.no_import:
        print()
        warm = import_times(args.import_runs)
        cold = import_times(max(3, args.import_runs // 2), pycache_prefix="empty")
        median = statistics.median(warm) * 1000
        print(table(f"Import of app.py in a fresh interpreter (perf_counter around `import app`, cwd repository "
                    f"root, BUCKET_NAME={BUCKET})", ["bytecode", "runs", "median ms", "min ms", "max ms"], [
            ["cached .pyc (normal)", str(len(warm)), f"{median:.1f}", ms(min(warm)), ms(max(warm))],
            ["none (empty PYTHONPYCACHEPREFIX)", str(len(cold)), ms(statistics.median(cold)), ms(min(cold)),
             ms(max(cold))],
        ]))
        print("  heaviest packages (-X importtime, cumulative, overlapping): "
              + ", ".join(f"{name} {t:.0f}" for name, t in heaviest_imports()) + " ms")
        if median > IMPORT_TARGET_MS:
            problems.append(f"import app takes {median:.0f} ms (median, target < {IMPORT_TARGET_MS:.0f} ms)")

    print()
    if problems:
        print("TARGETS MISSED:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(f"All targets met: EC2 calls constant in N, S3 requests <= {S3_PER_DATASET_TARGET:g} per dataset, "
          f"import < {IMPORT_TARGET_MS:.0f} ms.")
    return 0


def moto_version() -> str:
    import moto

    return str(moto.__version__)


if __name__ == "__main__":
    sys.exit(main())
