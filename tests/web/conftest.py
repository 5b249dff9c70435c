"""One local stack (calcium-events and the echo test analysis) and one page server for the web tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chalicelib.blueprint import load_blueprint
from service.connection import Connection
from service.local.stack import CREDENTIALS, REGION, LocalStack, LocalStackOptions
from service.web.server import WebServer
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
CALCIUM = ROOT / "blueprints" / "calcium-events"
ECHO = FIXTURES / "echo_analysis"


@dataclass
class Site:
    stack: LocalStack
    server: WebServer
    data: Path

    def http(self) -> httpx.Client:
        """A client that has been given the token (it holds the page's cookie)."""
        client = httpx.Client(base_url=self.server.base, follow_redirects=True, timeout=30)
        client.get(f"/?token={self.server.keys.token}")
        return client


def movies(folder: Path, count: int) -> list[Path]:
    image = str(CALCIUM / "image")
    if image not in sys.path:
        sys.path.insert(0, image)
    from calcium_events.synthetic import write_dataset

    return [write_dataset(folder / f"session{i + 1}.npz", seed=i + 1, n_frames=300)[0] for i in range(count)]


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web")
    options = LocalStackOptions(state_dir=root / "stack", minute_seconds=2.0, status_interval=0.3,
                                snapshot_seconds=60.0, log=lambda _: None)
    with LocalStack(options) as stack:
        for blueprint in (CALCIUM, ECHO):
            stack.deploy(load_blueprint(blueprint))
        connection = Connection(stack.endpoint, CREDENTIALS, REGION, ("calcium-events", "echo-analysis"))
        server = WebServer(connection=connection, blueprints=[CALCIUM, ECHO]).start()
        try:
            yield Site(stack, server, root / "data")
        finally:
            server.stop()
