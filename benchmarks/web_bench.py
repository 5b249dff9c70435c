"""Web page benchmark: page loads, the job page's first live update, and a large upload in parts.

The page server runs as `neurocaas web` in its own process (found through the local stack's
connection.json, as a user would start it), so that its memory can be read from /proc.

1. Page load: the analyses, jobs, submit and job pages in headless chromium (Debian's package),
   from navigation to the `load` event; and for the job page, to its first live update (the state
   badge filled from the page's first status request). Target: under 1 s each.
2. Upload: --gigabytes of data sent as the browser's script sends it (begin, 8 MiB parts, complete)
   while sampling the server's resident memory after every part. Target: flat (it holds one part
   per request, never the file).

Run: python benchmarks/web_bench.py [--gigabytes 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

import httpx  # noqa: E402

from chalicelib.blueprint import load_blueprint  # noqa: E402
from service.connection import write_connection  # noqa: E402
from service.local.stack import CREDENTIALS, REGION, LocalStack, LocalStackOptions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ECHO = ROOT / "tests" / "fixtures" / "echo_analysis"
API = "/api/a/echo-analysis/lab"


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_page(home: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-c", "from service.cli import main; main()", "web", "--port", "0", "--no-browser",
               "--blueprint", str(ECHO)]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "NEUROCAAS_HOME": str(home), "COLUMNS": "300"},
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line)
        if found:
            return process, found.group(0)
    raise RuntimeError("neurocaas web did not print its address")


def submit_small_job(page: httpx.Client, csrf: str) -> str:
    headers = {"x-csrf-token": csrf}
    begun = page.post(f"{API}/uploads", json={"name": "small.bin", "size": 5}, headers=headers).json()
    page.put(f"{API}/uploads/parts/1?upload_id={begun['upload_id']}&name=small.bin&size=5", content=b"hello",
             headers=headers)
    page.post(f"{API}/uploads/complete", json={"upload_id": begun["upload_id"], "name": "small.bin", "size": 5},
              headers=headers)
    answer = page.post(f"{API}/submit", headers=headers, json={
        "datasets": ["small.bin"], "config_name": "params.json", "config_text": '{"mode": "hang"}'}).json()
    return str(answer["url"])


def page_loads(url: str, job_url: str, repeats: int) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        print("page loads: skipped (no chromium; apt-get install chromium)")
        return
    base = url.split("/?")[0]
    paths = {"analyses": "/", "jobs": "/a/echo-analysis/lab", "submit": "/a/echo-analysis/lab/submit",
             "job": job_url}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(url)
        print(f"{'page':<10} {'median load':>12} {'max load':>10}   (headless chromium, {repeats} loads each)")
        for name, path in paths.items():
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                page.goto(base + path, wait_until="load")
                times.append(time.perf_counter() - start)
            print(f"{name:<10} {statistics.median(times) * 1000:>10.0f}ms {max(times) * 1000:>8.0f}ms")
        live = []
        for _ in range(repeats):
            start = time.perf_counter()
            page.goto(base + job_url, wait_until="commit")
            page.locator("#job-state").filter(has_not_text="loading").wait_for()
            live.append(time.perf_counter() - start)
        print(f"{'job live':<10} {statistics.median(live) * 1000:>10.0f}ms {max(live) * 1000:>8.0f}ms"
              "   navigation to the first live update of the job page")
        browser.close()


def upload(page: httpx.Client, csrf: str, pid: int, gigabytes: float) -> None:
    headers = {"x-csrf-token": csrf}
    size = int(gigabytes * 1024**3)
    begun = page.post(f"{API}/uploads", json={"name": "big.bin", "size": size}, headers=headers).json()
    part_size, parts = begun["part_size"], begun["parts"]
    block = os.urandom(part_size)
    before = rss_mb(pid)
    samples = []
    start = time.perf_counter()
    for number in range(1, parts + 1):
        length = min(part_size, size - (number - 1) * part_size)
        answer = page.put(f"{API}/uploads/parts/{number}?upload_id={begun['upload_id']}&name=big.bin&size={size}",
                          content=block[:length], headers=headers)
        answer.raise_for_status()
        samples.append(rss_mb(pid))
    done = page.post(f"{API}/uploads/complete", json={"upload_id": begun["upload_id"], "name": "big.bin",
                                                      "size": size}, headers=headers)
    if done.status_code != 200:
        raise RuntimeError(f"completing the upload failed: {done.text}")
    seconds = time.perf_counter() - start
    tenth = max(len(samples) // 10, 1)
    print(f"upload: {size / 1024**3:.2f} GiB in {parts} parts of {part_size // 2**20} MiB, {seconds:.1f} s "
          f"({size / 2**20 / seconds:.0f} MiB/s)")
    print(f"server memory (RSS): {before:.0f} MB before; after the first tenth of the parts "
          f"{max(samples[:tenth]):.0f} MB; highest over the whole upload {max(samples):.0f} MB; "
          f"at the end {samples[-1]:.0f} MB; peak (VmHWM) {rss_mb(pid, 'VmHWM'):.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="web-bench-") as scratch:
        home = Path(scratch)
        options = LocalStackOptions(state_dir=home / "local", minute_seconds=10.0, snapshot_seconds=3600.0,
                                    log=lambda _: None)
        with LocalStack(options) as stack:
            stack.deploy(load_blueprint(ECHO))
            write_connection(stack.state_dir, stack.endpoint, CREDENTIALS, REGION, ["echo-analysis"])
            process, url = start_page(home)
            try:
                page = httpx.Client(base_url=url.split("/?")[0], follow_redirects=True, timeout=120)
                page.get(url)
                csrf = re.search(r'name="csrf-token" content="(\w+)"', page.get("/").text).group(1)  # type: ignore[union-attr]
                job_url = submit_small_job(page, csrf)
                page_loads(url, job_url, args.repeats)
                upload(page, csrf, process.pid, args.gigabytes)
            finally:
                process.terminate()
                process.wait(timeout=10)


if __name__ == "__main__":
    main()
