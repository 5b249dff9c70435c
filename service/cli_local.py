"""``neurocaas local up``: the embedded stack in the foreground until interrupted."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer
from rich.console import Console

from chalicelib.blueprint import Blueprint, load_blueprint
from chalicelib.exceptions import BlueprintError
from service.connection import default_state_dir, remove_connection, write_connection
from service.local.stack import (
    CREDENTIALS,
    REGION,
    LocalStack,
    LocalStackOptions,
    environment_for_clients,
)

console = Console()
errors = Console(stderr=True)
BLUEPRINTS_DIR = Path("blueprints")


def default_blueprints() -> list[Path]:
    return sorted(p.parent for p in BLUEPRINTS_DIR.glob("*/stack_config_template.json"))


def load_all(paths: list[Path]) -> list[Blueprint]:
    loaded = []
    for path in paths:
        try:
            loaded.append(load_blueprint(path))
        except BlueprintError as error:
            errors.print("[red]✗[/red] ", end="")
            errors.print(str(error), highlight=False, markup=False)
            raise typer.Exit(1)
    return loaded


def parse_images(pairs: list[str]) -> dict[str, Path]:
    """``AMI=FOLDER`` options as a mapping; a malformed one or a missing folder ends the command."""
    images = {}
    for pair in pairs:
        ami, _, folder = pair.partition("=")
        if not ami.startswith("ami-") or not folder or not Path(folder).is_dir():
            errors.print(f"[red]✗[/red] --image {pair}: expected AMI=FOLDER with an existing folder, "
                         "e.g. --image ami-0123456789abcdef0=./my-image", highlight=False)
            raise typer.Exit(1)
        images[ami] = Path(folder)
    return images


def register(app: typer.Typer) -> None:
    local = typer.Typer(help="The embedded local stack: the whole system on this machine.", no_args_is_help=True)
    app.add_typer(local, name="local")

    @local.command("up")
    def up(
        port: int = typer.Option(5566, help="Port on 127.0.0.1 (0: any free port)."),
        state_dir: Path = typer.Option(None, help="Where buckets, objects and instances are kept "
                                       "(default: $NEUROCAAS_HOME/local, else ~/.neurocaas/local)."),
        blueprint: list[Path] = typer.Option(None, "--blueprint", "-b", help="Blueprint to serve (repeatable; "
                                             "default: every folder in ./blueprints)."),
        slots: int = typer.Option(None, help="Instances run at once (default: the number of cores)."),
        image: list[str] = typer.Option(None, "--image", help="AMI=FOLDER: the folder that stands in for a "
                                        "machine image, for blueprints without LocalImage (repeatable)."),
    ) -> None:
        """Start the local stack in the foreground; Ctrl-C stops it (its state is kept)."""
        blueprints = load_all(list(blueprint or default_blueprints()))
        images = parse_images(image or [])
        if not blueprints:
            errors.print("[red]✗[/red] No blueprint to serve: pass --blueprint PATH or run from the project folder.")
            raise typer.Exit(1)
        stack = LocalStack(LocalStackOptions(state_dir=state_dir or default_state_dir(), port=port, slots=slots,
                                             log=lambda line: console.print(f"[dim]{line}[/dim]", highlight=False)))
        try:
            stack.start()
        except OSError as error:
            errors.print(f"[red]✗[/red] Cannot listen on 127.0.0.1:{port}: {error.strerror}. Try --port 0.")
            raise typer.Exit(1)
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        try:
            for ami, folder in images.items():
                stack.register_image(ami, folder)
            for item in blueprints:
                stack.deploy(item)
            write_connection(stack.state_dir, stack.endpoint, CREDENTIALS, REGION, [b.name for b in blueprints])
            console.print(f"[green]Local NeuroCAAS stack[/green] at [bold]{stack.endpoint}[/bold] "
                          f"(state in {stack.state_dir})", highlight=False)
            for item in blueprints:
                groups = ", ".join(a.name for a in item.affiliates)
                console.print(f"  analysis [bold]{item.name}[/bold] · groups: {groups}", highlight=False)
            console.print("Point any S3 client at it:", highlight=False)
            for name, value in environment_for_clients(stack).items():
                console.print(f"  export {name}={value}", highlight=False, markup=False)
            console.print("Press Ctrl-C to stop.")
            while not stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            console.print("Stopping; saving state…")
            remove_connection(stack.state_dir)
            stack.stop()

    @local.command("interrupt")
    def interrupt(
        instance_id: str = typer.Argument(..., help="The instance (see `neurocaas status JOB`)."),
        state_dir: Path = typer.Option(None, help="The running stack's state folder (default as for `up`)."),
    ) -> None:
        """Play EC2 reclaiming a Spot instance on the running local stack: the warning, the relaunch
        of its dataset, and the reclaim two (local) minutes later."""
        folder = state_dir or default_state_dir()
        if not instance_id.startswith("i-") or "/" in instance_id:
            errors.print(f"[red]✗[/red] {instance_id!r} is not an instance id (i-...).", highlight=False,
                         soft_wrap=True)
            raise typer.Exit(1)
        if not (folder / "instances" / instance_id).exists():
            errors.print(f"[red]✗[/red] The local stack in {folder} has run no instance {instance_id}.",
                         highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        LocalStack.request_interruption(folder, instance_id)
        console.print(f"Interruption of {instance_id} requested; watch it with `neurocaas status JOB`.",
                      highlight=False)
