"""Run one dataset on this instance: pull, analyse, report, push. Returns the analysis's exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from chalicelib.records import DatasetState
from remote import s3io
from remote.paths import JobPaths
from remote.reporter import StatusReporter

DEFAULT_INTERVAL = 30.0
IMDS = "http://169.254.169.254/latest"


def instance_id() -> str:
    """This instance's id: from the local runner's environment, else from instance metadata."""
    if os.environ.get("NEUROCAAS_INSTANCE_ID"):
        return os.environ["NEUROCAAS_INSTANCE_ID"]
    try:
        token_request = urllib.request.Request(f"{IMDS}/api/token", method="PUT",
                                               headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        token = urllib.request.urlopen(token_request, timeout=1).read().decode()
        request = urllib.request.Request(f"{IMDS}/meta-data/instance-id",
                                         headers={"X-aws-ec2-metadata-token": token})
        return urllib.request.urlopen(request, timeout=1).read().decode()
    except OSError:
        return "unknown"


def member_of(config: Path) -> int | None:
    """The ensemble member number (``jobnb``) a config copy carries, if any."""
    try:
        text = config.read_text()
        document = json.loads(text) if config.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):
        return None
    value = document.get("jobnb") if isinstance(document, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def default_script() -> Path:
    """Without a fifth argument: $NEUROCAAS_ANALYSIS_SCRIPT, else analysis.sh in the image's home."""
    return Path(os.environ.get("NEUROCAAS_ANALYSIS_SCRIPT") or Path.cwd() / "analysis.sh")


def run(bucket: str, dataset: str, resultpath: str, config: str, script: str | None, root: Path) -> int:
    paths = JobPaths(bucket, dataset, config, resultpath)
    work = Path(os.environ.get("NEUROCAAS_WORKDIR") or Path.home() / "neurocaas_data") / paths.dataname
    inputs, configs, outputs = work / "inputs", work / "configs", work / "results"
    outputs.mkdir(parents=True, exist_ok=True)
    counter = s3io.RequestCounter()
    started = time.monotonic()
    s3 = s3io.client(counter)
    result_bucket, job_prefix = paths.result_location
    reporter = StatusReporter(
        s3, bucket=result_bucket, job_prefix=job_prefix, label=paths.dataname, dataname=dataset,
        input_key=dataset, instance=instance_id(),
        interval=float(os.environ.get("NEUROCAAS_STATUS_INTERVAL", DEFAULT_INTERVAL)),
    )
    config_file = configs / paths.configname
    try:
        s3io.download(s3, *paths.config_location, config_file)
        member = member_of(config_file)
        if member is not None:
            reporter.label = f"{paths.dataname}-member{member}"
            reporter.dataname = f"{dataset} [member {member}]"
        reporter.step("downloading the dataset")
        reporter.started()
        local_data = inputs / paths.dataname
        s3io.download(s3, *paths.input_location, local_data)
    except Exception as error:
        reporter.finished(DatasetState.FAILED, f"Could not download the inputs: {error}")
        return 1
    analysis = Path(script) if script else default_script()
    if not analysis.is_absolute():
        analysis = (Path.cwd() / analysis)
    if not analysis.is_file():
        reporter.finished(DatasetState.FAILED, f"The analysis script {analysis} is not on this image.")
        return 127
    environment = {
        **os.environ, **paths.exported(),
        "neurocaasrootdir": str(root),
        "localdatapath": str(local_data), "localconfigpath": str(config_file), "localoutdir": str(outputs),
    }
    reporter.step(f"running {analysis.name}")
    code = _run_streaming(["bash", str(analysis)], environment, work / "analysis.log", reporter)
    try:
        reporter.step("uploading results")
        s3io.upload_tree(s3, outputs, result_bucket, f"{job_prefix}/process_results")
        s3.upload_file(str(work / "analysis.log"), result_bucket,
                       f"{job_prefix}/internal_ec2_logs/{reporter.label}.log")
    except Exception as error:
        reporter.finished(DatasetState.FAILED, f"The analysis finished but its results could not be uploaded: {error}")
        return code or 1
    if code == 0:
        reporter.finished(DatasetState.SUCCESS, "")
    else:
        reporter.finished(DatasetState.FAILED, f"The analysis exited with code {code}; see `std` for its last output.")
    print(f"NeuroCAAS remote: {counter.count} S3 requests in {time.monotonic() - started:.1f}s "
          f"({reporter.writes} status writes, {reporter.failures} failed)", file=sys.stderr)
    return code


def _run_streaming(command: list[str], environment: dict[str, str], log: Path, reporter: StatusReporter) -> int:
    """Run the analysis, copying its combined output to our stdout, a log file and the reporter."""
    stop = threading.Event()

    def ticker() -> None:
        while not stop.wait(min(1.0, reporter.interval)):
            reporter.tick()

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment,
                                   text=True, errors="replace", bufsize=1)
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sink.write(line)
            reporter.output(line)
        code = process.wait()
    stop.set()
    thread.join()
    return code
