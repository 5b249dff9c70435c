"""The page in a real browser (Debian's chromium, driven by Playwright) on the local stack.

Set NEUROCAAS_SCREENSHOTS=1 to write the screenshots into docs/screenshots/ (the README shows them).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import ROOT, Site, movies

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install -e '.[dev]'.")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="No chromium browser on this machine: install Debian's "
                                "`chromium` package (.ci/run does) to run the browser tests.")
expect = sync_api.expect
SHOTS = ROOT / "docs" / "screenshots"
PARAMS = (ROOT / "blueprints" / "calcium-events" / "image" / "params.yaml")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    opened.goto(site.server.url)
    yield opened
    context.close()


def screenshot(page: Any, name: str, tmp_path: Path) -> None:
    folder = SHOTS if os.environ.get("NEUROCAAS_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def until(page: Any, predicate: str, seconds: float = 20) -> None:
    """Wait until a JavaScript predicate holds (the page's CSP forbids Playwright's eval-based waiting)."""
    for _ in range(int(seconds * 10)):
        if page.evaluate(predicate):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"never true: {predicate}")


def drop_files(page: Any, files: list[tuple[str, bytes]]) -> None:
    """Drop files on the page's drop zone as a person dragging them from their desktop would."""
    payload = [{"name": name, "data": base64.b64encode(data).decode()} for name, data in files]
    page.evaluate("""(files) => {
        const transfer = new DataTransfer();
        for (const f of files) {
            const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
            transfer.items.add(new File([bytes], f.name));
        }
        const zone = document.getElementById("drop");
        zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""", payload)


def keys(site: Site, bucket: str, prefix: str) -> dict[str, int]:
    s3 = site.stack.client("s3")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {item["Key"]: item["Size"] for item in listing.get("Contents", ()) if not item["Key"].endswith("/")}


def test_a_wrong_token_is_refused(browser: Any, site: Site) -> None:
    context = browser.new_context()
    page = context.new_page()
    response = page.goto(f"{site.server.base}/?token=not-the-token")
    assert response.status == 403
    assert "token in this link is wrong" in page.inner_text("body")
    response = page.goto(f"{site.server.base}/a/calcium-events/demolab")
    assert response.status == 403 and "demolab" not in page.content()
    context.close()


def test_submit_two_datasets_watch_the_job_live_and_download_its_results(page: Any, site: Site,
                                                                          tmp_path: Path) -> None:
    page.wait_for_selector("#analysis-calcium-events")
    assert "ΔF/F extraction" in page.inner_text("#analysis-calcium-events")
    screenshot(page, "analyses", tmp_path)
    page.click("#analysis-calcium-events >> text=Submit data")
    data = movies(tmp_path, 2)
    drop_files(page, [(path.name, path.read_bytes()) for path in data])
    page.set_input_files("#param-file", str(PARAMS))
    page.select_option("#instance-type", "m5.xlarge")
    expect(page.locator("#estimate")).to_contain_text("m5.xlarge")
    assert "2 dataset(s)" in page.inner_text("#estimate")
    screenshot(page, "submit", tmp_path)
    page.evaluate("window.notReloaded = true")
    page.click("#submit")
    page.wait_for_url("**/jobs/**")
    page.evaluate("window.notReloaded = true")
    seen = set()
    for _ in range(120):
        seen.add(page.inner_text("#job-state"))
        if "SUCCEEDED" in seen or "FAILED" in seen:
            break
        page.wait_for_timeout(500)
    assert "SUCCEEDED" in seen, seen
    assert seen & {"RUNNING", "QUEUED", "SUBMITTED"}, "the page never showed the job before it ended"
    assert page.evaluate("window.notReloaded") is True  # updated live, never reloaded
    assert page.inner_text("#progress") == "2 of 2 finished"
    assert "results written" in page.inner_text("#datasets")
    expect(page.locator("#figures img")).to_have_count(2)
    until(page, "() => [...document.querySelectorAll('#figures img')].every((i) => i.complete && i.naturalWidth > 0)")
    log = page.request.get(site.server.base + page.get_attribute("#datasets tr[data-dataset='session1.npz'] a", "href"))
    assert "calcium-events: analysing session1.npz" in log.text()
    page.click("text=Certificate")
    assert "calcium-events" in page.inner_text("#certificate")
    screenshot(page, "job", tmp_path)
    with page.expect_download() as download:
        page.click("#download-all")
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    names = {name.split("/", 1)[1] for name in archive.namelist()}
    assert {"session1.png", "session2.png", "session1.events.csv"} <= names
    with page.expect_download() as one:
        page.click("#result-files li:has-text('session2.events.csv') >> text=download")
    assert Path(one.value.path()).read_text().startswith(archive.read(f"{archive.namelist()[0].split('/')[0]}/session2.events.csv").decode()[:20])
    page.click("nav >> text=demolab")
    expect(page.locator("table.jobs")).to_contain_text("SUCCEEDED")
    assert "2 / 2" in page.inner_text("table.jobs")
    screenshot(page, "jobs", tmp_path)
    uploaded = keys(site, "calcium-events", "demolab/inputs/")
    assert uploaded == {f"demolab/inputs/{p.name}": p.stat().st_size for p in data}


def test_a_malformed_parameter_file_is_refused_in_the_page_with_nothing_uploaded(page: Any, site: Site) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{site.server.base}/a/echo-analysis/lab/submit")
    drop_files(page, [("never-uploaded.bin", b"x" * 1000)])
    page.fill("#param-name", "params.json")
    page.fill("#param-text", '{"mode": "ok",')
    page.click("#submit")
    expect(page.locator("#param-error")).not_to_be_empty()
    assert "does not parse" in page.inner_text("#param-error")
    assert [url.rsplit("/", 1)[-1] for url in requests if "/api/" in url] == ["check"] * len(
        [url for url in requests if "/api/" in url]), requests  # only checks: no upload, no submit
    assert "lab/inputs/never-uploaded.bin" not in keys(site, "echo-analysis", "lab/inputs/")


def test_a_large_file_goes_up_in_parts_and_resumes_after_a_dropped_connection(page: Any, site: Site) -> None:
    size = 8 * 1024 * 1024 + 12345  # two parts
    parts: list[int] = []
    dropped: list[int] = []

    def flaky(route: Any) -> None:
        number = int(route.request.url.split("?")[0].rsplit("/", 1)[1])
        parts.append(number)
        if number == 2 and not dropped:
            dropped.append(number)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(re.compile(r"/uploads/parts/\d+\?"), flaky)
    page.goto(f"{site.server.base}/a/echo-analysis/lab/submit")
    page.set_input_files("#files", files=[{"name": "big.bin", "mimeType": "application/octet-stream",
                                          "buffer": bytes(range(256)) * (size // 256) + b"z" * (size % 256)}])
    page.fill("#param-name", "params.json")
    page.fill("#param-text", '{"mode": "ok"}')
    page.click("#submit")
    page.wait_for_url("**/jobs/**")
    assert dropped == [2]
    assert parts == [1, 2, 2], "part 1 was sent again after the connection dropped"
    assert keys(site, "echo-analysis", "lab/inputs/")["lab/inputs/big.bin"] == size


def test_cancel_a_running_job(page: Any, site: Site) -> None:
    page.goto(f"{site.server.base}/a/echo-analysis/lab/submit")
    drop_files(page, [("slow.bin", b"slow")])
    page.fill("#param-name", "hang.json")
    page.fill("#param-text", '{"mode": "hang"}')
    page.click("#submit")
    page.wait_for_url("**/jobs/**")
    expect(page.locator("#datasets")).to_contain_text("IN PROGRESS", timeout=30_000)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    expect(page.locator("#job-state")).to_have_text("CANCELLED", timeout=30_000)
    # The dataset's own row ends too (CANCELLED, or FAILED when its killed process reported first).
    expect(page.locator("#datasets")).not_to_contain_text("IN PROGRESS", timeout=30_000)
    assert page.is_hidden("#cancel")
