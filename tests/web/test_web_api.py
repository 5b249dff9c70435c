"""The page's server without a browser: who may drive it, what it refuses, and how it says so."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from service.connection import Connection
from service.local.stack import CREDENTIALS, REGION
from service.web.server import WebServer
from service.web.uploads import PART_SIZE
from tests.web.conftest import CALCIUM, ECHO, Site

API = "/api/a/echo-analysis/lab"


def csrf(site: Site) -> dict[str, str]:
    return {"x-csrf-token": site.server.keys.csrf}


def test_every_page_needs_the_token(site: Site) -> None:
    stranger = httpx.Client(base_url=site.server.base)
    for path in ("/", "/a/echo-analysis/lab", "/static/job.js", f"{API}/jobs/x"):
        answer = stranger.get(path)
        assert answer.status_code == 403 and "needs its link" in answer.text
    assert stranger.get("/?token=guess").status_code == 403
    welcomed = stranger.get(f"/?token={site.server.keys.token}")
    assert welcomed.status_code == 303 and welcomed.headers["location"] == "/"  # the token leaves the address bar
    cookie = welcomed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_state_changes_need_the_csrf_token_and_this_origin(site: Site) -> None:
    page = site.http()
    body = {"name": "p.json", "text": "{}"}
    assert page.post(f"{API}/check", json=body).status_code == 403
    assert page.post(f"{API}/check", json=body, headers={"x-csrf-token": "0" * 64}).status_code == 403
    assert page.post(f"{API}/check", json=body, headers={**csrf(site), "origin": "http://evil.example"}).status_code == 403
    assert page.post(f"{API}/check", json=body, headers=csrf(site)).json()["ok"] is True


def test_a_foreign_host_name_is_refused(site: Site) -> None:
    page = site.http()
    assert page.get("/", headers={"host": f"attacker.example:{site.server.port}"}).status_code == 403


def test_pages_never_carry_credentials_and_have_a_strict_policy(site: Site) -> None:
    page = site.http()
    for path in ("/", "/a/calcium-events/demolab", "/a/calcium-events/demolab/submit", "/costs/calcium-events"):
        answer = page.get(path)
        assert answer.status_code == 200
        assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in answer.text
        assert "script-src 'self'" in answer.headers["content-security-policy"]


def test_a_group_sees_only_its_own_folder(site: Site) -> None:
    page = site.http()
    s3 = site.stack.client("s3")
    s3.put_object(Bucket="echo-analysis", Key="other/inputs/secret.bin", Body=b"secret")
    s3.put_object(Bucket="echo-analysis", Key="lab/results/job__echo-analysis_stolen/logs/job.json", Body=json.dumps({
        "job_id": "stolen", "analysis": "echo-analysis", "group": "other", "submit_key": "other/submissions/x",
        "submit_etag": "x", "created": "2026-11-25T10:00:00+00:00", "updated": "2026-11-25T10:00:00+00:00"}))
    assert "other" not in page.get("/").text.replace("another", "")
    refused = page.get("/a/echo-analysis/other")
    assert refused.status_code == 400 and "cannot use analysis &#39;echo-analysis&#39; as group &#39;other&#39;" in refused.text
    assert page.get("/api/a/echo-analysis/other/jobs/anything").status_code == 400
    assert "does not belong to group lab" in page.get(f"{API}/jobs/stolen").json()["error"]
    assert page.get(f"{API}/jobs/..%2F..%2Fother").status_code in (400, 404)
    assert page.get("/a/echo-analysis/lab/jobs/stolen/results/../../../other/inputs/secret.bin").status_code in (400, 404)


def test_a_bad_parameter_file_is_named_next_to_its_field(site: Site) -> None:
    page = site.http()
    cases = {
        ("p.yaml", "threshold: [1"): "does not parse",
        ("p.txt", "a: 1"): "must end in .json, .yaml or .yml",
        ("p.yaml", "- 1\n- 2"): "must hold a mapping",
        ("p.json", '{"__duration__": -5}'): "__duration__",
    }
    for (name, text), expected in cases.items():
        answer = page.post(f"{API}/check", json={"name": name, "text": text}, headers=csrf(site))
        assert answer.status_code == 400 and answer.json()["field"] == "parameters"
        assert expected in answer.json()["error"]


def test_the_estimate_is_the_planners(site: Site) -> None:
    page = site.http()
    answer = page.post("/api/a/calcium-events/demolab/check", headers=csrf(site), json={
        "name": "p.yaml", "text": "__duration__: 90", "count": 3, "instance_type": "c5.xlarge"}).json()
    from chalicelib.pricing import estimate

    assert answer["estimate"] == {"instance_type": "c5.xlarge", "minutes": 90, "dollars": estimate("c5.xlarge", 3, 90)}
    refused = page.post("/api/a/calcium-events/demolab/check", headers=csrf(site), json={
        "name": "p.yaml", "text": "", "instance_type": "p3.16xlarge"})
    assert refused.status_code == 400 and "runs on m5.large, m5.xlarge, c5.xlarge" in refused.json()["error"]


def test_uploads_refuse_bad_names_short_parts_and_missing_parts(site: Site) -> None:
    page = site.http()
    for name in ("../x", "a/b", "", "bad\x07name"):
        answer = page.post(f"{API}/uploads", json={"name": name, "size": 3}, headers=csrf(site))
        assert answer.status_code == 400, name
    size = PART_SIZE + 10
    begun = page.post(f"{API}/uploads", json={"name": "two.bin", "size": size}, headers=csrf(site)).json()
    assert begun["parts"] == 2 and begun["done"] == []
    part = f"{API}/uploads/parts"
    query = f"?upload_id={begun['upload_id']}&name=two.bin&size={size}"
    ending = {"upload_id": begun["upload_id"], "name": "two.bin", "size": size}
    short = page.put(f"{part}/1{query}", content=b"x" * 100, headers=csrf(site))
    assert short.status_code == 400 and "arrived incomplete" in short.json()["error"]
    assert page.put(f"{part}/1{query}", content=b"x" * PART_SIZE, headers=csrf(site)).status_code == 200
    early = page.post(f"{API}/uploads/complete", json=ending, headers=csrf(site))
    assert early.status_code == 400 and "1 part(s) of two.bin are missing" in early.json()["error"]
    resumed = page.post(f"{API}/uploads", json={"name": "two.bin", "size": size, "upload_id": begun["upload_id"]},
                        headers=csrf(site)).json()
    assert resumed["upload_id"] == begun["upload_id"] and resumed["done"] == [1]
    assert page.put(f"{part}/2{query}", content=b"y" * 10, headers=csrf(site)).status_code == 200
    assert page.post(f"{API}/uploads/complete", json=ending, headers=csrf(site)).status_code == 200
    again = page.post(f"{API}/uploads/complete", json=ending, headers=csrf(site))  # the first answer was lost
    assert again.status_code == 200
    nonsense = page.post(f"{API}/uploads", json={"name": "x.bin", "size": "big"}, headers=csrf(site))
    assert nonsense.status_code == 400 and "not understood" in nonsense.json()["error"]
    assert page.post(f"{API}/uploads", json=[1], headers=csrf(site)).status_code == 400
    head = site.stack.client("s3").head_object(Bucket="echo-analysis", Key="lab/inputs/two.bin")
    assert head["ContentLength"] == size


def test_submitting_data_that_was_never_uploaded_is_refused(site: Site) -> None:
    page = site.http()
    answer = page.post(f"{API}/submit", headers=csrf(site), json={
        "datasets": ["nowhere.bin"], "config_name": "p.json", "config_text": "{}"})
    assert answer.status_code == 400 and "Not uploaded yet: nowhere.bin" in answer.json()["error"]


def test_a_stopped_stack_is_explained_with_how_to_start_it() -> None:
    dead = Connection("http://127.0.0.1:9", CREDENTIALS, REGION, ("echo-analysis",))
    server = WebServer(connection=dead, blueprints=[CALCIUM, ECHO]).start()
    try:
        page = httpx.Client(base_url=server.base, follow_redirects=True)
        answer = page.get(f"/?token={server.keys.token}")
        assert answer.status_code == 503
        assert "is not answering. Start it with `neurocaas local up`" in answer.text
        assert "Traceback" not in answer.text
        api = page.get("/api/a/echo-analysis/lab/jobs/x")
        assert api.status_code == 503 and "neurocaas local up" in api.json()["error"]
    finally:
        server.stop()


def test_the_web_command_prints_its_link_and_a_missing_stack_says_how_to_start_it(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "from service.cli import main; main()", "web", "--port", "0", "--no-browser"]
    process = subprocess.Popen(command, env={**os.environ, "NEUROCAAS_HOME": str(tmp_path), "COLUMNS": "300"},
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = next(found.group(0) for line in process.stdout
                   if (found := re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line)))
        answer = httpx.get(url, follow_redirects=True)
        assert answer.status_code == 503
        assert "No local stack is running. Start one with `neurocaas local up`" in answer.text
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_aws_failures_read_as_sentences() -> None:
    from botocore.exceptions import ClientError, NoCredentialsError

    from service.web.backend import explain

    def refused(code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}}, "ListObjectsV2")

    assert "credentials have expired" in explain(refused("ExpiredToken"), "AWS")[1]
    assert "not allowed" in explain(refused("AccessDenied"), "AWS")[1]
    assert "No AWS credentials were found" in explain(NoCredentialsError(), "AWS")[1]
    status, message = explain(KeyError("boom"), "AWS")
    assert status == 500 and "KeyError" in message and "terminal" in message


def test_costs_are_shown_per_group(site: Site) -> None:
    answer = site.http().get("/costs/calcium-events")
    assert answer.status_code == 200 and "<th>demolab</th>" in answer.text
