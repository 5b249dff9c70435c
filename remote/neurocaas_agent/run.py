"""Run one dataset on this instance: pull, analyse, report, push. Returns the analysis's exit code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

from neurocaas_agent import transfer
from neurocaas_agent.core import FAILED, SUCCESS, Client, S3Error, instance_id
from neurocaas_agent.interruption import InterruptionWatch, attempts_report
from neurocaas_agent.paths import JobPaths
from neurocaas_agent.reporter import StatusReporter

DEFAULT_INTERVAL = 30.0
JOBNB_LINE = re.compile(r"^jobnb\s*:\s*(\d+)\s*(#.*)?$", re.MULTILINE)


def member_of(config: Path) -> Optional[int]:
    """The ensemble member number (``jobnb``) a config copy carries, if any (JSON, or YAML's top level)."""
    try:
        text = config.read_text()
    except OSError:
        return None
    if config.suffix == ".json":
        try:
            document = json.loads(text)
        except ValueError:
            return None
        value = document.get("jobnb") if isinstance(document, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    found = JOBNB_LINE.search(text)
    return int(found.group(1)) if found else None


def default_script() -> Path:
    """Without a fifth argument: $NEUROCAAS_ANALYSIS_SCRIPT, else analysis.sh in the current folder."""
    return Path(os.environ.get("NEUROCAAS_ANALYSIS_SCRIPT") or Path.cwd() / "analysis.sh")


def run(bucket: str, dataset: str, resultpath: str, config: str, script: Optional[str], root: Path) -> int:
    paths = JobPaths(bucket, dataset, config, resultpath)
    work = Path(os.environ.get("NEUROCAAS_WORKDIR") or Path.home() / "neurocaas_data") / paths.dataname
    inputs, configs, outputs = work / "inputs", work / "configs", work / "results"
    outputs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    client = Client()
    result_bucket, job_prefix = paths.result_location
    config_file = configs / paths.configname
    try:
        transfer.download(client, *paths.config_location, config_file)
        config_error = ""
    except S3Error as error:
        config_error = f"Could not download the config {config}: {error}"
    member = member_of(config_file)
    label = paths.dataname if member is None else f"{paths.dataname}-member{member}"
    key = os.environ.get("NEUROCAAS_STATUS_KEY") or StatusReporter.key_for(job_prefix, label)
    reporter = StatusReporter(client, bucket=result_bucket, key=key, input_key=dataset,
                              interval=float(os.environ.get("NEUROCAAS_STATUS_INTERVAL", DEFAULT_INTERVAL)))
    reporter.kept = attempts_report(instance_id())
    if config_error:
        reporter.finished(FAILED, config_error)
        return 1
    local_data = inputs / paths.dataname
    try:
        reporter.step("downloading the dataset")
        reporter.started()
        transfer.download(client, *paths.input_location, local_data)
    except S3Error as error:
        reporter.finished(FAILED, f"Could not download the dataset {dataset}: {error}")
        return 1
    analysis = Path(script) if script else default_script()
    if not analysis.is_absolute():
        analysis = Path.cwd() / analysis
    if not analysis.is_file():
        reporter.finished(FAILED, f"The analysis script {analysis} is not on this image.")
        return 127
    watch = InterruptionWatch(client, result_bucket, f"{job_prefix}/process_results/checkpoints/{label}", work,
                              on_notice=lambda _: reporter.step("Spot interruption warning: saving checkpoints"))
    restored = watch.restore()
    environment = dict(os.environ, **paths.exported(), **watch.environment(), neurocaasrootdir=str(root),
                       localdatapath=str(local_data), localconfigpath=str(config_file), localoutdir=str(outputs))
    reporter.step(f"running {analysis.name}" + (f" from {restored} checkpoint file(s)" if restored else ""))
    watch.start()
    code = _run_streaming(["bash", str(analysis)], environment, work / "analysis.log", reporter)
    watch.stop()
    try:
        reporter.step("uploading results")
        transfer.upload_tree(client, outputs, result_bucket, f"{job_prefix}/process_results")
        transfer.upload(client, work / "analysis.log", result_bucket, f"{job_prefix}/internal_ec2_logs/{label}.log")
    except S3Error as error:
        reporter.finished(FAILED, f"The analysis finished but its results could not be uploaded: {error}")
        return code or 1
    if code == 0:
        reporter.finished(SUCCESS, "")
    else:
        last = next((line.strip() for line in reversed(reporter.std) if line.strip()), "")
        reporter.finished(FAILED, f"The analysis exited with code {code}"
                                  + (f" after printing: {last[:300]}" if last else " without printing anything")
                                  + f". Its whole output is in internal_ec2_logs/{label}.log in the job's folder.")
    print(f"NeuroCAAS remote: {client.requests} S3 requests in {time.monotonic() - started:.1f}s "
          f"({reporter.writes} status writes, {reporter.failures} failed)", file=sys.stderr)
    return code


def _run_streaming(command: List[str], environment: Dict[str, str], log: Path, reporter: StatusReporter) -> int:
    """Run the analysis, copying its combined output to our stdout, a log file and the reporter."""
    stop = threading.Event()

    def ticker() -> None:
        while not stop.wait(min(1.0, reporter.interval)):
            reporter.tick()

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment,
                                   universal_newlines=True, errors="replace", bufsize=1)
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sink.write(line)
            reporter.output(line)
        code = process.wait()
    stop.set()
    thread.join()
    return code
