"""Command-line benchmark: what a user waits for before anything happens.

1. Start-up: the wall and CPU time of every command's ``--help`` (the whole process: interpreter,
   imports, typer), against ``aws --version`` in the same run when the AWS CLI is installed,
   alternating the two so that a drifting machine load moves both.
2. ``neurocaas local up`` (two blueprints, an idle stack): from the process start to its
   "Press Ctrl-C" line (ready), and from SIGINT to its exit (stopped), with an empty state
   folder and again restoring what the first run saved.

Run: python benchmarks/cli_bench.py [--runs 7] [--local-runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEUROCAAS = [sys.executable, "-c", "from service.cli import main; main()"]
COMMANDS = ["", "submit", "status", "jobs", "logs", "results", "cancel", "costs", "demo", "local up",
            "blueprint check", "deploy", "init", "users add", "develop launch"]


def timed(command: list[str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one run of ``command``, its children's CPU included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def startup(runs: int) -> None:
    aws = shutil.which("aws")
    print(f"{'command':<28}{'wall (median)':>14}{'cpu (median)':>14}{'vs aws --version':>18}")
    for name in COMMANDS:
        ours, theirs = [], []
        for _ in range(runs):
            ours.append(timed([*NEUROCAAS, *name.split(), "--help"]))
            if aws:
                theirs.append(timed([aws, "--version"]))
        wall = statistics.median(w for w, _ in ours)
        ratio = f"{wall / statistics.median(w for w, _ in theirs):.2f}x" if theirs else "n/a"
        print(f"{('neurocaas ' + name).strip() + ' --help':<28}{wall:>13.3f}s{statistics.median(c for _, c in ours):>13.3f}s"
              f"{ratio:>18}")
    if aws:
        print(f"{'aws --version':<28}{statistics.median(w for w, _ in theirs):>13.3f}s"
              f"{statistics.median(c for _, c in theirs):>13.3f}s")


def local_up_once(home: Path) -> tuple[float, float, float]:
    """(ready, stopped, cpu) seconds of one `local up` with the example blueprints on a free port; cpu is the
    whole process's (start, 3 s idle, stop), the figure a loaded machine does not inflate."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen([*NEUROCAAS, "local", "up", "--port", "0"], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "NEUROCAAS_HOME": str(home), "COLUMNS": "200"})
    assert process.stdout is not None
    for line in process.stdout:
        if "Press Ctrl-C to stop." in line:
            break
    else:
        raise RuntimeError("local up ended before it was ready")
    ready = time.perf_counter() - started
    time.sleep(3)  # idle, with its background work (EC2 warm-up, pollers) under way
    asked = time.perf_counter()
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    stopped = time.perf_counter() - asked
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ready, stopped, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def local_up(runs: int) -> None:
    for label, fresh in (("empty state folder", True), ("restoring saved state", False)):
        readies, stops, cpus = [], [], []
        with tempfile.TemporaryDirectory(prefix="neurocaas-bench-") as scratch:
            if not fresh:
                local_up_once(Path(scratch))  # leaves buckets and objects to restore
            for _ in range(runs):
                if fresh:
                    shutil.rmtree(Path(scratch) / "local", ignore_errors=True)
                ready, stopped, cpu = local_up_once(Path(scratch))
                readies.append(ready)
                stops.append(stopped)
                cpus.append(cpu)
        print(f"local up, {label}: ready {statistics.median(readies):.2f}s (min {min(readies):.2f}, max "
              f"{max(readies):.2f}); stop {statistics.median(stops):.2f}s (min {min(stops):.2f}, max {max(stops):.2f}); "
              f"cpu {statistics.median(cpus):.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="Runs per command for start-up (median quoted).")
    parser.add_argument("--local-runs", type=int, default=3, help="Runs of `local up` per case (0 skips).")
    arguments = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    startup(arguments.runs)
    if arguments.local_runs:
        local_up(arguments.local_runs)


if __name__ == "__main__":
    main()
