"""The ``neurocaas`` command line.

Start-up stays fast (every ``--help`` under half a second): modules import only typer and rich at
the top; what a command needs (boto3, moto, the blueprint schema) is imported when it runs.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from service import cli_deploy, cli_develop, cli_jobs, cli_local, cli_retry
from service.failures import SafeGroup

app = typer.Typer(help="NeuroCAAS: run neuroscience analyses in the cloud as a service.", no_args_is_help=True,
                  cls=SafeGroup, pretty_exceptions_enable=False)
blueprint_app = typer.Typer(help="Create and check analysis blueprints.", no_args_is_help=True)
app.add_typer(blueprint_app, name="blueprint")
console = Console()
errors = Console(stderr=True)


@blueprint_app.command("check")
def blueprint_check(path: Path = typer.Argument(..., help="Blueprint folder or stack_config_template.json"),
                    local: bool = typer.Option(True, "--local/--no-local",
                                               help="Also say what the local stack cannot honour.")) -> None:
    """Validate a blueprint (and its declared parameters) against the published schema and AWS's limits,
    naming every invalid key."""
    from chalicelib.blueprint import load_blueprint
    from chalicelib.exceptions import BlueprintError
    from service.deploy.plan import refusals

    try:
        blueprint = load_blueprint(path)
    except BlueprintError as error:
        errors.print(f"[red]✗[/red] {error.message}", highlight=False)
        for problem in error.problems:
            errors.print(f"  • {problem}", highlight=False, markup=False)
        raise typer.Exit(1)
    problems = refusals(blueprint)  # what AWS would refuse, checked without calling it
    if problems:
        errors.print(f"[red]✗[/red] {blueprint.name} cannot be deployed to AWS as it is:", highlight=False)
        for problem in problems:
            errors.print(f"  • {problem}", highlight=False, markup=False)
        raise typer.Exit(1)
    settings = blueprint.settings
    console.print(f"[green]✓[/green] {blueprint.name}: {settings.ami} on {', '.join(settings.instance_types_allowed)}; "
                  f"{len(blueprint.affiliates)} group(s)", highlight=False)
    declared = (blueprint.parameters_schema or {}).get("properties")
    if declared:
        console.print(f"  parameters: {', '.join(declared)} (unknown keys and bad values are refused before anything "
                      "starts)", highlight=False, markup=False)
    else:
        console.print("  parameters: not declared (add parameters.schema.json beside the blueprint so typos and bad "
                      "values are refused before anything starts)", highlight=False, markup=False)
    if local:
        import os

        from service.local.fidelity import local_stack_notes

        for note in local_stack_notes(blueprint, os.cpu_count() or 1):
            console.print(f"  [yellow]![/yellow] local stack: {note}", highlight=False)


@blueprint_app.command("new")
def blueprint_new(
    name: str = typer.Argument(..., help="The analysis name: lowercase letters, digits and dashes (its bucket name)."),
    folder: Path = typer.Option(Path("blueprints"), help="Where the blueprint folder is created."),
) -> None:
    """Create blueprints/NAME/ from a template that validates and runs on the local stack."""
    from service.deploy.exceptions import DeployError
    from service.deploy.template import create_blueprint

    try:
        created = create_blueprint(name, folder)
    except DeployError as error:
        errors.print(f"✗ {error.message}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"Created {created}. Set its AMI, groups and command, then check it with "
                  f"`neurocaas blueprint check {created}`.", highlight=False)


@blueprint_app.command("stage")
def blueprint_stage(
    path: Path = typer.Argument(..., help="Blueprint folder or stack_config_template.json"),
    project: Path = typer.Option(Path("."), help="The project folder holding .chalice/config.json"),
) -> None:
    """Write the analysis's Chalice stage (its Lambda environment) into .chalice/config.json."""
    from chalicelib.blueprint import load_blueprint
    from chalicelib.exceptions import BlueprintError
    from service.stages import write_stage

    try:
        blueprint = load_blueprint(path)
    except BlueprintError as error:
        errors.print("[red]✗[/red] ", end="")
        errors.print(str(error), highlight=False, markup=False)
        raise typer.Exit(1)
    config, changed = write_stage(blueprint, project)
    state = "updated" if changed else "already up to date"
    console.print(f"Stage [bold]{blueprint.name}[/bold] {state} in {config}. Deploy it with:\n"
                  f"  BUCKET_NAME={blueprint.name} chalice deploy --stage {blueprint.name}", highlight=False)


@app.command()
def demo(
    datasets: int = typer.Option(3, help="How many synthetic movies to analyse."),
    frames: int = typer.Option(600, help="Frames per movie."),
    output: Path = typer.Option(Path("neurocaas-demo-results"), "--output", "-o", help="Where results go."),
) -> None:
    """Run the calcium-imaging example end to end on the embedded local stack."""
    from service.demo import demo_command

    raise typer.Exit(demo_command(datasets, frames, output))


@app.command()
def web(
    port: int = typer.Option(8765, help="Port on 127.0.0.1 (0: any free port)."),
    aws: bool = typer.Option(False, "--aws", help="Use your AWS account instead of the local stack."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the address without opening a browser."),
    blueprint: list[Path] = typer.Option(None, "--blueprint", "-b", help="Blueprint folders that describe the "
                                         "analyses (repeatable; default: ./blueprints)."),
) -> None:
    """Serve the web page for submitting data and following jobs, on 127.0.0.1."""
    from service.web.server import web_command

    raise typer.Exit(web_command(port, aws, not no_browser, list(blueprint or ())))


cli_local.register(app)
cli_jobs.register(app)
cli_retry.register(app)
cli_deploy.register(app)
cli_develop.register(app)


def main() -> None:
    app()
