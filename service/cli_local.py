"""``neurocaas local up``: the embedded stack in the foreground until interrupted."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from service.failures import fail

if TYPE_CHECKING:
    from chalicelib.blueprint import Blueprint
    from service.local.stack import LocalStack

console = Console(highlight=False)
BLUEPRINTS_DIR = Path("blueprints")
WATCH_SECONDS = 2.0


def default_blueprints() -> list[Path]:
    return sorted(p.parent for p in BLUEPRINTS_DIR.glob("*/stack_config_template.json"))


def load_all(paths: list[Path]) -> list[Blueprint]:
    from chalicelib.blueprint import load_blueprint
    from chalicelib.exceptions import BlueprintError

    loaded = []
    for path in paths:
        try:
            loaded.append(load_blueprint(path))
        except BlueprintError as error:
            fail(str(error))
    return loaded


def parse_images(pairs: list[str]) -> dict[str, Path]:
    """``AMI=FOLDER`` options as a mapping; a malformed one or a missing folder ends the command."""
    images = {}
    for pair in pairs:
        ami, _, folder = pair.partition("=")
        if not ami.startswith("ami-") or not folder or not Path(folder).is_dir():
            fail(f"--image {pair}: expected AMI=FOLDER with an existing folder, "
                 "e.g. --image ami-0123456789abcdef0=./my-image")
        images[ami] = Path(folder)
    return images


def say(line: str) -> None:
    """One console line per event, with the time."""
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {line}", markup=True, soft_wrap=True)


class BlueprintWatcher:
    """Serves blueprints added to (or changed in) the blueprints folder while the stack runs."""

    def __init__(self, stack: LocalStack, paths: list[Path], watch_folder: bool) -> None:
        self.stack, self.paths, self.watch_folder = stack, list(paths), watch_folder
        self.seen = {path.resolve(): self._stamp(path) for path in paths}

    @staticmethod
    def _stamp(folder: Path) -> float:
        files = [folder / "stack_config_template.json", folder / "parameters.schema.json"]
        return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)

    def check(self) -> bool:
        """Deploy what is new or changed; returns whether the served analyses changed."""
        from chalicelib.blueprint import load_blueprint
        from chalicelib.exceptions import BlueprintError

        candidates = default_blueprints() if self.watch_folder else self.paths
        changed = False
        for folder in candidates:
            key, stamp = folder.resolve(), self._stamp(folder)
            if self.seen.get(key) == stamp:
                continue
            self.seen[key] = stamp
            try:
                blueprint = load_blueprint(folder)
            except BlueprintError as error:
                say(f"[red]✗[/red] {folder}: {error.message} {'; '.join(error.problems)}".rstrip())
                continue
            known = blueprint.name in self.stack.served
            self.stack.deploy(blueprint)
            say(f"{'updated' if known else 'now serving'} analysis [bold]{blueprint.name}[/bold] from {folder}")
            changed = True
        return changed


def register(app: typer.Typer) -> None:
    local = typer.Typer(help="The embedded local stack: the whole system on this machine.", no_args_is_help=True)
    app.add_typer(local, name="local")

    @local.command("up")
    def up(
        port: int = typer.Option(5566, help="Port on 127.0.0.1 (0: any free port)."),
        state_dir: Path = typer.Option(None, help="Where buckets, objects and instances are kept "
                                       "(default: $NEUROCAAS_HOME/local, else ~/.neurocaas/local)."),
        blueprint: list[Path] = typer.Option(None, "--blueprint", "-b", help="Blueprint to serve (repeatable; "
                                             "default: every folder in ./blueprints, including new ones)."),
        slots: int = typer.Option(None, help="Instances run at once (default: the number of cores)."),
        image: list[str] = typer.Option(None, "--image", help="AMI=FOLDER: the folder that stands in for a "
                                        "machine image, for blueprints without LocalImage (repeatable)."),
    ) -> None:
        """Start the local stack in the foreground; Ctrl-C stops it (its state is kept)."""
        paths = list(blueprint or default_blueprints())
        blueprints = load_all(paths)
        images = parse_images(image or [])
        if not blueprints:
            fail("No blueprint to serve: pass --blueprint PATH or run from the project folder.")
        from service.connection import default_state_dir, remove_connection, write_connection
        from service.local.events import readable_job_manager_logs
        from service.local.lock import StackBusy
        from service.local.stack import CREDENTIALS, REGION, LocalStack, LocalStackOptions, environment_for_clients

        readable_job_manager_logs(say)
        stack = LocalStack(LocalStackOptions(state_dir=state_dir or default_state_dir(), port=port, slots=slots,
                                             log=say, defer_instances=True))
        try:
            stack.start()
        except StackBusy as error:
            fail(str(error))
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        watcher = BlueprintWatcher(stack, paths, watch_folder=not blueprint)
        try:
            for ami, folder in images.items():
                stack.register_image(ami, folder)
            for item in blueprints:
                stack.deploy(item)
            write_connection(stack.state_dir, stack.endpoint, CREDENTIALS, REGION, sorted(stack.served))
            console.print(f"[green]Local NeuroCAAS stack[/green] at [bold]{stack.endpoint}[/bold] "
                          f"(state in {stack.state_dir})")
            stack.serve_instances()
            for item in blueprints:
                groups = ", ".join(a.name for a in item.affiliates)
                console.print(f"  analysis [bold]{item.name}[/bold] · groups: {groups}")
            console.print("Point any S3 client at it:")
            for name, value in environment_for_clients(stack).items():
                console.print(f"  export {name}={value}", markup=False)
            where = "--blueprint files" if blueprint else f"{BLUEPRINTS_DIR}/"
            console.print(f"New or changed blueprints in {where} are served within seconds. Press Ctrl-C to stop.")
            while not stopped.wait(WATCH_SECONDS):
                if watcher.check():
                    write_connection(stack.state_dir, stack.endpoint, CREDENTIALS, REGION, sorted(stack.served))
        except KeyboardInterrupt:
            pass
        finally:
            console.print("Stopping; saving state…")
            remove_connection(stack.state_dir)
            stack.stop()
            console.print("Stopped.")

    @local.command("interrupt")
    def interrupt(
        instance_id: str = typer.Argument(..., help="The instance (see `neurocaas status JOB`)."),
        state_dir: Path = typer.Option(None, help="The running stack's state folder (default as for `up`)."),
    ) -> None:
        """Play EC2 reclaiming a Spot instance on the running local stack: the warning, the relaunch
        of its dataset, and the reclaim two (local) minutes later."""
        from service.connection import default_state_dir
        from service.local.interruption import request

        folder = state_dir or default_state_dir()
        if not instance_id.startswith("i-") or "/" in instance_id:
            fail(f"{instance_id!r} is not an instance id (i-...).")
        if not (folder / "instances" / instance_id).exists():
            fail(f"The local stack in {folder} has run no instance {instance_id}.")
        request(folder, instance_id)
        console.print(f"Interruption of {instance_id} requested; watch it with `neurocaas status JOB`.",
                      highlight=False)
