"""``neurocaas users add|remove|list``: who belongs to an analysis's groups (pure planning)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from chalicelib import awslimits
from chalicelib.blueprint import Blueprint
from service.deploy import naming
from service.deploy.awsstate import GroupState
from service.deploy.changes import Action, Call, Change, Plan
from service.deploy.exceptions import DeployError

USER_NAME = re.compile(r"^[\w+=,.@-]{1,64}$", re.ASCII)


def membership_problem(user: str, current: int, joining: int) -> str | None:
    """IAM puts a user in at most 10 groups (not adjustable): refuse, with advice, what goes over."""
    if current + joining <= awslimits.GROUPS_PER_USER:
        return None
    return (f"IAM user {user} is in {current} IAM group(s) and would join {joining} more; IAM allows "
            f"{awslimits.GROUPS_PER_USER}. Remove them from groups they no longer need (`aws iam list-groups-for-user "
            f"--user-name {user}`), or give them a separate IAM user for this analysis.")


def group_of(blueprint: Blueprint, affiliate: str, groups: dict[str, GroupState]) -> GroupState:
    """The IAM group of ``affiliate``; refuses groups the blueprint does not name or deploy has not made."""
    names = [a.name for a in blueprint.affiliates]
    if affiliate not in names:
        raise DeployError(f"{blueprint.name} has no group {affiliate!r} (its groups: {', '.join(names) or 'none'}); "
                          "add it to UXData.Affiliates and deploy first.")
    name = naming.iam_group_name(blueprint.name, affiliate)
    if name not in groups:
        raise DeployError(f"The IAM group {name} does not exist yet: run `neurocaas deploy {blueprint.name}` first.")
    return groups[name]


def check_user_names(users: Sequence[str]) -> None:
    bad = [u for u in users if not USER_NAME.match(u)]
    if bad:
        raise DeployError(f"Not an IAM user name: {', '.join(bad)} (up to 64 letters, digits and + = , . @ _ -).")


def plan_add(group: GroupState, users: Sequence[str], existing: frozenset[str], create: bool,
             memberships: Mapping[str, int] | None = None) -> Plan:
    """Add users to the group; missing users are refused unless ``create`` (made without credentials),
    and so is a user IAM's 10-group limit would not take (``memberships``: groups each user is in)."""
    check_user_names(users)
    for user in dict.fromkeys(users):
        if user not in group.members:
            problem = membership_problem(user, (memberships or {}).get(user, 0), 1)
            if problem:
                raise DeployError(problem)
    missing = [u for u in dict.fromkeys(users) if u not in existing]
    if missing and not create:
        raise DeployError(f"No IAM user {', '.join(missing)}: create it first, or pass --create to have NeuroCAAS "
                          "create it (without credentials).")
    changes = [Change(Action.CREATE, f"IAM user {u}", "without credentials: give them a password or access key",
                      (Call("iam", "create_user", {"UserName": u}),)) for u in missing]
    changes += [Change(Action.UPDATE, f"IAM group {group.name}", f"add {u}",
                       (Call("iam", "add_user_to_group", {"GroupName": group.name, "UserName": u}),))
                for u in dict.fromkeys(users) if u not in group.members]
    return Plan(f"Members of {group.name}:", tuple(changes))


def plan_remove(group: GroupState, users: Sequence[str], listed: Sequence[str] = ()) -> Plan:
    """Remove users from the group (the users themselves are kept); ``listed``: the blueprint's UserNames."""
    check_user_names(users)
    changes = [Change(Action.UPDATE, f"IAM group {group.name}", f"remove {u}",
                      (Call("iam", "remove_user_from_group", {"GroupName": group.name, "UserName": u}),))
               for u in dict.fromkeys(users) if u in group.members]
    notes = [f"{u} is not a member of {group.name}." for u in dict.fromkeys(users) if u not in group.members]
    notes += [f"{u} is in the blueprint's UserNames: the next deploy adds them back unless you remove them there."
              for u in dict.fromkeys(users) if u in listed]
    return Plan(f"Members of {group.name}:", tuple(changes), tuple(notes))
