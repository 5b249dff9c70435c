"""``neurocaas init | deploy | destroy | users``: taking an analysis to an AWS account.

Every command prints its plan; ``--plan`` stops there and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from service.deploy.exceptions import DeployError

if TYPE_CHECKING:  # imported when a command runs: `neurocaas --help` must not pay for boto3
    from chalicelib.blueprint import Blueprint
    from service.deploy.awsstate import Clients
    from service.deploy.changes import Plan
    from service.deploy.commands import Outcome

console = Console()
errors = Console(stderr=True)

PLAN = typer.Option(False, "--plan", help="Print every change and make none.")
PROJECT = typer.Option(Path("."), "--project", help="The project folder holding app.py and .chalice/.")
VERBOSE = typer.Option(False, "--verbose", "-v", help="Also print each AWS call and file a change makes.")
BLUEPRINT = typer.Argument(..., help="Blueprint folder, or the name of a folder in ./blueprints.")


def fail(message: str) -> NoReturn:
    errors.print(f"[red]✗[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def blueprint_at(location: str, project: Path) -> Blueprint:
    """Load a blueprint from a path, or from ``blueprints/NAME`` in the project."""
    from chalicelib.blueprint import load_blueprint
    from chalicelib.exceptions import BlueprintError

    path = Path(location)
    if not path.exists() and (project / "blueprints" / location).exists():
        path = project / "blueprints" / location
    try:
        return load_blueprint(path)
    except BlueprintError as error:
        problems = "; ".join(error.problems)
        fail(f"{error.message} {problems}".strip() + (" Check it with `neurocaas blueprint check`." if problems else ""))


def printer(verbose: bool) -> Callable[[Plan], None]:
    """What prints a plan before it is applied."""
    def show(plan: Plan) -> None:
        console.print(plan.describe(verbose), highlight=False, markup=False, soft_wrap=True)
    return show


def finished(outcome: Outcome) -> None:
    if not outcome.applied:
        console.print("Nothing was changed (--plan).", highlight=False)
    elif outcome.plan.changes:
        console.print(f"[green]Done[/green]: {len(outcome.plan.changes)} change(s) made.", highlight=False)


def clients_for(region: str | None) -> Clients:
    from service.deploy.awsstate import Clients

    try:
        return Clients.create(region)
    except DeployError as error:
        fail(error.message)


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(
        region: str = typer.Option(None, "--region", help="AWS region (default: your profile's)."),
        ssh_cidr: str = typer.Option(None, "--ssh-cidr", help="Address range developers SSH from, e.g. 203.0.113.7/32."),
        plan: bool = PLAN,
        show_key: bool = typer.Option(False, "--show-key", help="Print the developers' SSH private key."),
        verbose: bool = VERBOSE,
    ) -> None:
        """Once per account and region: the instance role, security groups and SSH key analyses share."""
        from service.deploy import commands
        from service.deploy.awsstate import read_private_key

        clients = clients_for(region)
        try:
            outcome = commands.initialise(clients, ssh_cidr, plan, show=printer(verbose))
            finished(outcome)
            if outcome.applied:
                console.print(f"Recorded in {outcome.record}.", highlight=False)
            if show_key:
                console.print(read_private_key(clients), highlight=False, markup=False, soft_wrap=True)
        except DeployError as error:
            fail(error.message)

    @app.command("deploy")
    def deploy(blueprint: str = BLUEPRINT, plan: bool = PLAN, project: Path = PROJECT,
               verbose: bool = VERBOSE) -> None:
        """Create or update an analysis's bucket, groups, budgets and job manager; run twice, change nothing."""
        from service.deploy import commands

        loaded = blueprint_at(blueprint, project)
        try:
            commands.check_blueprint(loaded)
            finished(commands.deploy(clients_for(loaded.settings.region), loaded, project, plan,
                                     show=printer(verbose)))
        except DeployError as error:
            fail(error.message)

    @app.command("destroy")
    def destroy(blueprint: str = BLUEPRINT, plan: bool = PLAN, project: Path = PROJECT,
                delete_data: bool = typer.Option(False, "--delete-data", help="Also delete the bucket and ALL its data."),
                verbose: bool = VERBOSE) -> None:
        """Remove what deploy made (refused while jobs run); the bucket's data stays unless --delete-data."""
        from service.deploy import commands

        loaded = blueprint_at(blueprint, project)
        try:
            finished(commands.destroy(clients_for(loaded.settings.region), loaded, project, plan, delete_data,
                                      show=printer(verbose)))
        except DeployError as error:
            fail(error.message)

    users = typer.Typer(help="Who belongs to an analysis's user groups (IAM).", no_args_is_help=True)
    app.add_typer(users, name="users")

    @users.command("add")
    def users_add(blueprint: str = BLUEPRINT, group: str = typer.Argument(..., help="The group (AffiliateName)."),
                  user: list[str] = typer.Argument(..., help="IAM user names."),
                  create: bool = typer.Option(False, "--create", help="Create missing IAM users (without credentials)."),
                  plan: bool = PLAN, project: Path = PROJECT) -> None:
        """Add IAM users to a group: they get its folder and nothing else."""
        _members(blueprint, group, user, project, plan, remove=False, create=create)

    @users.command("remove")
    def users_remove(blueprint: str = BLUEPRINT, group: str = typer.Argument(..., help="The group (AffiliateName)."),
                     user: list[str] = typer.Argument(..., help="IAM user names."),
                     plan: bool = PLAN, project: Path = PROJECT) -> None:
        """Remove IAM users from a group (the users themselves are kept)."""
        _members(blueprint, group, user, project, plan, remove=True)

    @users.command("list")
    def users_list(blueprint: str = BLUEPRINT, group: str = typer.Argument(..., help="The group (AffiliateName)."),
                   project: Path = PROJECT) -> None:
        """The IAM users in a group."""
        from service.deploy import commands

        loaded = blueprint_at(blueprint, project)
        try:
            found = commands.members(clients_for(loaded.settings.region), loaded, group)
        except DeployError as error:
            fail(error.message)
        console.print("\n".join(found) if found else f"No users in group {group}.", highlight=False, markup=False)


def _members(blueprint: str, group: str, users: list[str], project: Path, plan: bool, remove: bool,
             create: bool = False) -> None:
    from service.deploy import commands

    loaded = blueprint_at(blueprint, project)
    try:
        finished(commands.change_members(clients_for(loaded.settings.region), loaded, group, users, remove=remove,
                                         create=create, plan_only=plan, show=printer(False)))
    except DeployError as error:
        fail(error.message)

