"""The remote side as its own distribution: the Python it claims, only the standard library, the
facts the job manager copies, a reproducible agent file and signatures AWS would accept."""

from __future__ import annotations

import ast
import datetime
import hashlib
import re
import subprocess
import sys
import tomllib
from unittest import mock
from pathlib import Path

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from chalicelib import agent, paths
from chalicelib.jobstate.statusfile import ALIASES, FINAL
from chalicelib.records import DatasetState
from neurocaas_agent import __version__, build, core, install

ROOT = Path(__file__).parent.parent
DISTRIBUTION = ROOT / "remote"
PACKAGE = DISTRIBUTION / "neurocaas_agent"
VERMIN = Path(sys.executable).parent / "vermin"


def declared_python() -> str:
    requires = tomllib.loads((DISTRIBUTION / "pyproject.toml").read_text())["project"]["requires-python"]
    found = re.fullmatch(r">=\s*(3\.\d+)", requires)
    assert found, requires
    return found.group(1)


def test_the_declared_oldest_python_is_what_vermin_finds() -> None:
    """Ubuntu 20.04's Python is 3.8: the claim holds for every file of the distribution."""
    oldest = declared_python()
    assert oldest == "3.8"
    if not VERMIN.exists():
        pytest.fail("vermin is not installed in this environment: pip install -e '.[dev]'")
    done = subprocess.run([str(VERMIN), "--no-tips", "--violations", f"-t={oldest}-", str(PACKAGE)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    minimum = re.search(r"Minimum required versions: (3\.\d+)", done.stdout)
    assert minimum and tuple(map(int, minimum.group(1).split("."))) <= tuple(map(int, oldest.split(".")))


def test_the_agent_imports_only_the_standard_library_and_itself() -> None:
    allowed = set(sys.stdlib_module_names) | {"neurocaas_agent", "__future__"}
    for source in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                assert name.split(".")[0] in allowed, f"{source.name} imports {name}"
    assert tomllib.loads((DISTRIBUTION / "pyproject.toml").read_text())["project"]["dependencies"] == []


def test_the_job_manager_copies_agree_with_the_agent() -> None:
    assert agent.CORE.read_bytes() == (PACKAGE / "core.py").read_bytes(), \
        "copy remote/neurocaas_agent/core.py over chalicelib/agent_core.py"
    assert agent.VERSION == __version__
    assert agent.SHA256 == build.sha256(), "update SHA256 in chalicelib/agent.py (see its docstring)"
    assert agent.HOME_PATH == install.AGENT_PATH
    assert core.STATUS_FILE.format("x.bin") == paths.status_file_name("x.bin")
    assert set(core.FINAL) == {state.value for state in FINAL}
    for spelling, state in [*ALIASES.items(), ("success", DatasetState.SUCCESS), ("Timed_Out", DatasetState.TIMED_OUT)]:
        assert core.is_final(spelling) == (state in FINAL), spelling
    assert not core.is_final(None) and not core.is_final(["FAILED"])
    assert (core.SUCCESS, core.FAILED) == (DatasetState.SUCCESS.value, DatasetState.FAILED.value)


def test_the_agent_file_is_reproducible_and_runs_on_its_own(tmp_path: Path) -> None:
    assert build.archive() == build.archive()
    pyz = tmp_path / "agent.pyz"
    pyz.write_bytes(build.archive())
    done = subprocess.run(["/usr/bin/python3", "-I", str(pyz), "version"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert done.stdout.strip() == __version__, done.stderr
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run(["/usr/bin/python3", "-I", str(pyz), "bake", str(home)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (home / agent.HOME_PATH).read_bytes() == pyz.read_bytes()
    assert (home / "neurocaas_remote" / "run_main.sh").stat().st_mode & 0o111


def test_an_image_keeps_neurocaas_own_scripts(tmp_path: Path) -> None:
    for folder in install.NEUROCAAS_FOLDERS:
        home = tmp_path / folder
        (home / folder).mkdir(parents=True)
        (home / folder / "run_main.sh").write_text("original\n")
        install.bake(home)
        assert (home / folder / "run_main.sh").read_text() == "original\n"
        assert not (home / "neurocaas_remote" / "ncap_utils").exists()


@pytest.mark.parametrize("key,query", [
    ("lab/inputs/my data (1)+~'$x'.tif", {}),
    ("", {"list-type": "2", "prefix": "lab/results/job__a b/", "continuation-token": "a+b/c="}),
    ("lab/x.bin", {"partNumber": "3", "uploadId": "abc~_-."}),
])
def test_signatures_match_the_aws_sdk(key: str, query: dict[str, str]) -> None:
    """The standard-library signer signs exactly as botocore's S3 signer does."""
    now = datetime.datetime(2026, 12, 2, 6, 0, 0, tzinfo=datetime.timezone.utc)
    keys = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session/token+=")
    host = "my-bucket.s3.eu-west-2.amazonaws.com"
    path = core.quote("/" + key, safe="/~")
    body = b'{"status": "SUCCESS"}'
    ours = core.signature_headers("PUT", host, path, query, {"If-None-Match": "*", "Content-Type": "application/json"},
                                  hashlib.sha256(body).hexdigest(), keys, "eu-west-2", now)

    url = f"https://{host}{path}" + ("?" + "&".join(f"{core.quote(k)}={core.quote(v)}" for k, v in query.items())
                                     if query else "")
    request = AWSRequest(method="PUT", url=url, data=body, headers={
        "If-None-Match": "*", "Content-Type": "application/json", "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    signer = S3SigV4Auth(Credentials(*keys), "s3", "eu-west-2")
    with mock.patch("botocore.auth.get_current_datetime", lambda: now.replace(tzinfo=None)):
        signer.add_auth(request)
    theirs = request.headers["Authorization"]
    assert ours["authorization"].split("Signature=")[1] == theirs.split("Signature=")[1], (ours, theirs)


def test_a_yaml_config_member_number_is_read_without_pyyaml(tmp_path: Path) -> None:
    from neurocaas_agent.run import member_of

    config = tmp_path / "c.yaml"
    config.write_text("threshold: 2\njobnb: 3  # ensemble member\nnested:\n  jobnb: 9\n")
    assert member_of(config) == 3
    config.write_text("threshold: 2\n")
    assert member_of(config) is None
