"""``neurocaas develop ...``: build, test and save an analysis image (``devtools.NeuroCAASAMI``) from the shell."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from devtools import DevToolsError

console = Console()
errors = Console(stderr=True)

BLUEPRINT = typer.Argument(..., help="The blueprint folder (or its stack_config_template.json).")
AWS = typer.Option(False, "--aws", help="Develop on your AWS account instead of the local stack.")
YES = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
INDEX = typer.Option(-1, "--index", "-i", help="Which submitted job (default: the last one).")


def fail(message: str) -> None:
    errors.print(f"[red]✗[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def say(line: str) -> None:
    console.print(line, highlight=False, markup=False, soft_wrap=True)


def developer(blueprint: Path, aws: bool):  # type: ignore[no-untyped-def]
    from devtools import NeuroCAASAMI

    try:
        return NeuroCAASAMI(blueprint, target="aws" if aws else None, say=say)
    except DevToolsError as error:
        fail(error.message)


def confirm(question: str, yes: bool) -> None:
    if not yes:
        typer.confirm(question, abort=True)


def register(app: typer.Typer) -> None:
    develop = typer.Typer(help="Develop an analysis image: launch, test, save, update the blueprint.",
                          no_args_is_help=True)
    app.add_typer(develop, name="develop")

    @develop.command("launch")
    def launch(blueprint: Path = BLUEPRINT,
               ami: str = typer.Option(None, "--ami", help="An AMI id or a code (ubuntu24, ubuntu22, dlami24, "
                                       "dlami22; NeuroCAAS's ubuntu18/16, dlami18/16). Default: the blueprint's."),
               instance_type: str = typer.Option(None, "--instance-type", help="Default: the blueprint's."),
               volume_size: int = typer.Option(None, "--volume-size", help="Root disk in GB (AWS)."),
               lifetime: int = typer.Option(60, "--lifetime", help="Minutes before it stops itself."),
               another: bool = typer.Option(False, "--another", help="Launch even if one is already up."),
               aws: bool = AWS) -> None:
        """Launch a development instance (at most one per blueprint unless --another)."""
        dev = developer(blueprint, aws)
        try:
            dev.launch_ami(ami, instance_type, volume_size, lifetime, another=another)
        except DevToolsError as error:
            fail(error.message)

    @develop.command("start")
    def start(blueprint: Path = BLUEPRINT, lifetime: int = typer.Option(60, "--lifetime", help="Minutes."),
              aws: bool = AWS) -> None:
        """Start the stopped development instance with a fresh lifetime."""
        dev = developer(blueprint, aws)
        try:
            dev.start_devinstance(lifetime)
        except DevToolsError as error:
            fail(error.message)

    @develop.command("stop")
    def stop(blueprint: Path = BLUEPRINT, yes: bool = YES, aws: bool = AWS) -> None:
        """Stop the development instance (its files are kept; anything running on it ends)."""
        dev = developer(blueprint, aws)
        try:
            instance = dev.current()
            confirm(f"Stop {instance.instance_id}? Anything running on it ends; its files are kept.", yes)
            dev.stop_devinstance()
        except DevToolsError as error:
            fail(error.message)

    @develop.command("terminate")
    def terminate(blueprint: Path = BLUEPRINT,
                  force: bool = typer.Option(False, "--force", help="Even if its work was never saved as an image."),
                  yes: bool = YES, aws: bool = AWS) -> None:
        """End the development instance for good (refused while its work is unsaved, unless --force)."""
        dev = developer(blueprint, aws)
        try:
            instance = dev.current()
            lost = "" if dev.instance_saved else " Its work was never saved as an image and will be lost."
            if force or dev.instance_saved:
                confirm(f"Terminate {instance.instance_id}? Its disk is deleted.{lost}", yes)
            dev.terminate_devinstance(force=force)
        except DevToolsError as error:
            fail(error.message)

    @develop.command("lifetime")
    def lifetime(blueprint: Path = BLUEPRINT, aws: bool = AWS) -> None:
        """How long the development instance has left before it stops itself."""
        dev = developer(blueprint, aws)
        try:
            say(str(dev.get_lifetime()))
        except DevToolsError as error:
            fail(error.message)

    @develop.command("extend")
    def extend(blueprint: Path = BLUEPRINT, minutes: float = typer.Argument(..., help="Minutes to add."),
               aws: bool = AWS) -> None:
        """Give the development instance more time before it stops itself."""
        dev = developer(blueprint, aws)
        try:
            say(str(dev.extend_lifetime(minutes)))
        except DevToolsError as error:
            fail(error.message)

    @develop.command("submit")
    def submit(blueprint: Path = BLUEPRINT, submit_file: Path = typer.Argument(..., help="A local submit.json."),
               group: str = typer.Option(None, "--group", "-g", help="Default: the first dataset's group folder."),
               aws: bool = AWS) -> None:
        """Run a submit.json on the development instance, planned and logged like a real job."""
        dev = developer(blueprint, aws)
        try:
            dev.submit_job_log(submit_file, group)
        except DevToolsError as error:
            fail(error.message)

    @develop.command("status")
    def status(blueprint: Path = BLUEPRINT, index: int = INDEX, aws: bool = AWS) -> None:
        """The development instance and how a submitted job is doing."""
        dev = developer(blueprint, aws)
        try:
            instance = dev.instance
            say(f"instance {instance.instance_id}: {instance.state} at {instance.address}" if instance else
                "no development instance")
            if dev.commands:
                say(str(dev.job_status(index)))
        except DevToolsError as error:
            fail(error.message)

    @develop.command("output")
    def output(blueprint: Path = BLUEPRINT, index: int = INDEX, aws: bool = AWS) -> None:
        """What a submitted job's commands printed so far."""
        dev = developer(blueprint, aws)
        try:
            for label, streams in dev.job_output(index).items():
                console.rule(label)
                for stream, text in streams.items():
                    if text.strip():
                        say(f"--- {stream}")
                        say(text.rstrip())
        except DevToolsError as error:
            fail(error.message)

    @develop.command("create-image")
    def create_image(blueprint: Path = BLUEPRINT, name: str = typer.Argument(..., help="The image's name."),
                     yes: bool = YES, aws: bool = AWS) -> None:
        """Save the development instance as a machine image."""
        dev = developer(blueprint, aws)
        try:
            instance = dev.current()
            if dev.backend.target == "aws":
                confirm(f"Saving the image reboots {instance.instance_id}; anything running on it ends. Continue?", yes)
            dev.create_image(name)
        except DevToolsError as error:
            fail(error.message)

    @develop.command("update-blueprint")
    def update_blueprint(blueprint: Path = BLUEPRINT,
                         ami: str = typer.Option(None, "--ami", help="Default: the last image saved."),
                         message: str = typer.Option(None, "--message", "-m", help="Why (goes in both commits)."),
                         aws: bool = AWS) -> None:
        """Write the image into the blueprint, with a git commit before and one after."""
        dev = developer(blueprint, aws)
        try:
            dev.update_blueprint(ami, message)
        except DevToolsError as error:
            fail(error.message)
