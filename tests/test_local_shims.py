"""The stand-ins a local instance finds on PATH (``aws``, ``sudo``) and its view of /home/ubuntu
behave as an EC2 instance's do for the commands NeuroCAAS images run (issue 16)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from service.local.homemount import HomeMount
from service.local.layout import lay_out

BUCKET = "shim-bucket"


@pytest.fixture
def s3(endpoint: str) -> object:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", ()):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])


def aws(endpoint: str, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
    return subprocess.run([sys.executable, "-m", "service.local.awsshim", *argv], capture_output=True, text=True,
                          env=environment, cwd=cwd, timeout=60)


def keys(s3: object) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", ()))  # type: ignore[attr-defined]


def test_cp_between_two_s3_locations_as_run_main_copies_the_config(s3, endpoint: str) -> None:
    s3.put_object(Bucket=BUCKET, Key="lab/configs/config.yaml", Body=b"a: 1\n")

    done = aws(endpoint, "s3", "cp", f"s3://{BUCKET}/lab/configs/config.yaml",
               f"s3://{BUCKET}/lab/results/job__x/process_results/config.yaml")

    assert done.returncode == 0, done.stderr
    assert s3.get_object(Bucket=BUCKET, Key="lab/results/job__x/process_results/config.yaml")["Body"].read() == b"a: 1\n"


def test_recursive_cp_between_s3_locations_and_into_a_folder(s3, endpoint: str) -> None:
    for name in ("a.txt", "sub/b.txt"):
        s3.put_object(Bucket=BUCKET, Key=f"src/{name}", Body=name.encode())

    assert aws(endpoint, "s3", "cp", f"s3://{BUCKET}/src", f"s3://{BUCKET}/dst/", "--recursive").returncode == 0
    assert aws(endpoint, "s3", "cp", f"s3://{BUCKET}/src/a.txt", f"s3://{BUCKET}/one/").returncode == 0

    assert keys(s3) == ["dst/a.txt", "dst/sub/b.txt", "one/a.txt", "src/a.txt", "src/sub/b.txt"]


def test_sync_uploads_only_what_changed_honours_filters_and_deletes(s3, endpoint: str, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    for name, body in (("a.csv", "1"), ("b.csv", "22"), ("skip.tmp", "x")):
        (tmp_path / "out" / name).write_text(body)
    s3.put_object(Bucket=BUCKET, Key="res/a.csv", Body=b"1")
    s3.put_object(Bucket=BUCKET, Key="res/old.csv", Body=b"gone")

    done = aws(endpoint, "s3", "sync", str(tmp_path / "out"), f"s3://{BUCKET}/res", "--exclude", "*.tmp", "--delete")

    assert done.returncode == 0, done.stderr
    assert "upload:" in done.stdout and "a.csv" not in done.stdout  # unchanged, not sent again
    assert keys(s3) == ["res/a.csv", "res/b.csv"]
    assert aws(endpoint, "s3", "sync", f"s3://{BUCKET}/res", f"s3://{BUCKET}/copy", "--only-show-errors").stdout == ""
    assert keys(s3) == ["copy/a.csv", "copy/b.csv", "res/a.csv", "res/b.csv"]
    assert aws(endpoint, "s3", "sync", f"s3://{BUCKET}/res", str(tmp_path / "back")).returncode == 0
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == ["a.csv", "b.csv"]


def test_a_missing_source_fails_in_one_line_so_scripts_can_fall_back(s3, endpoint: str, tmp_path: Path) -> None:
    done = aws(endpoint, "s3", "cp", f"s3://{BUCKET}/lab/missing.json", str(tmp_path / "x.json"))

    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["sudo -u ubuntu echo hi", "sudo -E -H echo hi", "sudo -n -- echo hi",
                                     "sudo --user=ubuntu echo hi", "sudo GREETING=hi sh -c 'echo $GREETING'"])
def test_sudo_runs_the_command_whatever_its_options(tmp_path: Path, command: str) -> None:
    lay_out(tmp_path / "instance", None)
    environment = {**os.environ, "PATH": f"{tmp_path / 'instance' / 'bin'}:{os.environ['PATH']}"}

    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=environment, timeout=10)

    assert (done.returncode, done.stdout) == (0, "hi\n"), done.stderr


def test_an_instance_sees_its_image_at_home_ubuntu_or_the_log_says_why_not(tmp_path: Path) -> None:
    logged: list[str] = []
    mount = HomeMount.probe(logged.append)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".dlamirc").write_text("export FROM_IMAGE=yes\n")
    script = "source /home/ubuntu/.dlamirc && echo $FROM_IMAGE > /home/ubuntu/seen.txt"

    command, unmount = mount.command(home, ["bash", "-c", mount.user_data(script, home)])
    done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    unmount()

    assert done.returncode == 0, done.stderr
    assert (home / "seen.txt").read_text() == "yes\n"
    if mount.private:
        assert logged == [] and mount.seen_home(home) == Path("/home/ubuntu")
    else:
        assert "/home/ubuntu is mapped in boot scripts only" in logged[0]


def test_without_a_private_namespace_the_boot_script_alone_is_rewritten(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr("service.local.homemount.shutil.which", lambda name: None)
    logged: list[str] = []

    mount = HomeMount.probe(logged.append)

    assert not mount.private and "unshare is not available" in logged[0]
    assert mount.user_data("cd /home/ubuntu; ls", tmp_path) == f"cd {tmp_path}; ls"
    assert mount.command(tmp_path, ["true"])[0] == ["true"]
