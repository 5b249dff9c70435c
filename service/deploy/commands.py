"""The deployment commands end to end: read what exists, plan, and (unless only planning) apply.

The CLI (:mod:`service.cli_deploy`) prints what these return; tests call them directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chalicelib.blueprint import Blueprint
from service.deploy import awsstate, records, rulebook
from service.deploy.awsstate import Clients
from service.deploy.changes import Plan
from service.deploy.exceptions import DeployError
from service.deploy.executor import ChaliceRunner, Executor, run_chalice
from service.deploy.init import init_record, plan_init
from service.deploy.plan import bucket_objects, plan_deploy, plan_destroy, refusals
from service.deploy.stagefiles import read_local
from service.deploy.users import group_of, plan_add, plan_remove

Show = Callable[[Plan], None]


@dataclass(frozen=True)
class Outcome:
    """The plan, whether it was applied, and the local record it concerns (if any)."""

    plan: Plan
    applied: bool
    record: Path | None = None


def _quiet(_: Plan) -> None:
    pass


def initialise(clients: Clients, ssh_cidr: str | None = None, plan_only: bool = False,
               home: Path | None = None, show: Show = _quiet) -> Outcome:
    """``neurocaas init``: make the shared resources, then record them for later commands."""
    state = awsstate.read_shared(clients)
    plan = plan_init(state, ssh_cidr)
    rulebook.refuse(plan)
    path = records.init_path(state.account, state.region, home)
    show(plan)
    if plan_only:
        return Outcome(plan, False, path)
    Executor(clients).apply(plan)
    record = init_record(awsstate.read_shared(clients) if plan.changes else state)
    if not path.is_file() or path.read_text() != records.init_text(record):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(records.init_text(record))
    return Outcome(plan, True, path)


def check_blueprint(blueprint: Blueprint) -> None:
    """Refuse, before any AWS call, a blueprint that cannot become an AWS deployment."""
    problems = refusals(blueprint)
    if problems:
        raise DeployError(" ".join(problems))


def deploy(clients: Clients, blueprint: Blueprint, project: Path, plan_only: bool = False,
           home: Path | None = None, chalice: ChaliceRunner = run_chalice, show: Show = _quiet) -> Outcome:
    """``neurocaas deploy``: bring the analysis's resources and Chalice stage to what the blueprint says."""
    check_blueprint(blueprint)
    shared = records.read_init(clients.account, clients.region, home)
    record = records.deployed_path(clients.account, clients.region, blueprint.name, home)
    local = read_local(project, blueprint.name, record)
    users = [u for a in blueprint.affiliates for u in a.usernames]
    state = awsstate.read_analysis(clients, blueprint.name, bucket_objects(a.name for a in blueprint.affiliates),
                                   users, blueprint.settings.ami)
    plan = plan_deploy(blueprint, shared, state, local, record)
    show(plan)
    if not plan_only:
        Executor(clients, chalice).apply(plan)
    return Outcome(plan, not plan_only, record)


def destroy(clients: Clients, blueprint: Blueprint, project: Path, plan_only: bool = False,
            delete_data: bool = False, home: Path | None = None, chalice: ChaliceRunner = run_chalice,
            show: Show = _quiet) -> Outcome:
    """``neurocaas destroy``: remove what deploy made; the bucket's data only with ``delete_data``."""
    record = records.deployed_path(clients.account, clients.region, blueprint.name, home)
    local = read_local(project, blueprint.name, record)
    state = awsstate.read_analysis(clients, blueprint.name, (), (), None)
    plan = plan_destroy(blueprint, state, local, record, delete_data)
    show(plan)
    if not plan_only:
        Executor(clients, chalice).apply(plan)
    return Outcome(plan, not plan_only, record)


def change_members(clients: Clients, blueprint: Blueprint, affiliate: str, users: Sequence[str],
                   remove: bool = False, create: bool = False, plan_only: bool = False,
                   show: Show = _quiet) -> Outcome:
    """``neurocaas users add|remove``."""
    group = group_of(blueprint, affiliate, awsstate.read_groups(clients, blueprint.name))
    if remove:
        listed = [u for a in blueprint.affiliates if a.name == affiliate for u in a.usernames]
        plan = plan_remove(group, users, listed)
    else:
        existing = awsstate.existing_users(clients, users)
        plan = plan_add(group, users, existing, create, awsstate.memberships(clients, existing))
    rulebook.refuse(plan, blueprint)
    show(plan)
    if not plan_only:
        Executor(clients).apply(plan)
    return Outcome(plan, not plan_only)


def members(clients: Clients, blueprint: Blueprint, affiliate: str) -> tuple[str, ...]:
    """``neurocaas users list``."""
    return group_of(blueprint, affiliate, awsstate.read_groups(clients, blueprint.name)).members
