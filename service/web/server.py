"""Serving the page with uvicorn on 127.0.0.1: in the foreground (``neurocaas web``) or in a thread."""

from __future__ import annotations

import socket
import threading
import webbrowser
from pathlib import Path

import uvicorn

from service.connection import Connection
from service.web.app import create_app
from service.web.backend import Backend
from service.web.catalog import Catalog, load_blueprints
from service.web.security import Secrets

HOST = "127.0.0.1"


def listen(port: int) -> socket.socket:
    """A socket on 127.0.0.1 (``port`` 0: any free port), or OSError."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


class WebServer:
    """The page for one identity: the local stack (found through connection.json), AWS, or a given connection."""

    def __init__(self, *, port: int = 0, aws: bool = False, connection: Connection | None = None,
                 blueprints: list[Path] | None = None, token: str | None = None) -> None:
        self.keys = Secrets(token)
        catalog = Catalog(load_blueprints(blueprints or [Path("blueprints")]))
        self.app = create_app(Backend(aws=aws, connection=connection), catalog, self.keys)
        self.socket = listen(port)
        self.port = self.socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                    timeout_graceful_shutdown=2))
        self.thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The address to open, with the token that lets a browser in."""
        return f"{self.base}/?token={self.keys.token}"

    def run(self) -> None:
        """Serve in the foreground until interrupted (Ctrl-C)."""
        self.server.run(sockets=[self.socket])

    def start(self) -> "WebServer":
        """Serve in a background thread; returns once the page answers."""
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name="neurocaas-web", daemon=True)
        self.thread.start()
        while not self.server.started and self.thread.is_alive():
            threading.Event().wait(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.socket.close()


def web_command(port: int, aws: bool, open_browser: bool, blueprints: list[Path]) -> int:
    """``neurocaas web``: print the address (with its token), open it, serve until Ctrl-C."""
    from rich.console import Console

    console = Console()
    try:
        server = WebServer(port=port, aws=aws, blueprints=blueprints or None)
    except OSError as error:
        console.print(f"[red]✗[/red] Cannot listen on {HOST}:{port}: {error.strerror}. Try another --port.")
        return 1
    console.print(f"NeuroCAAS web page for {'your AWS account' if aws else 'the local stack'}:", highlight=False)
    console.print(f"  [bold]{server.url}[/bold]", highlight=False, soft_wrap=True)
    console.print("Only this link (its token) opens the page. Press Ctrl-C to stop.", highlight=False)
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    return 0
