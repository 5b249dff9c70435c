"""``neurocaas init``: what every analysis in an account and region shares (pure planning).

A job security group with no inbound rule, a development security group that allows SSH only from
the CIDR the developer gives, and an SSH key pair whose private key is kept encrypted in SSM.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from service.deploy import naming
from service.deploy.awsstate import SecurityGroup, SharedState
from service.deploy.changes import Action, Call, Change, Plan, Ref
from service.deploy.exceptions import DeployError
from service.deploy.records import InitRecord

SSH_DESCRIPTION = "SSH for analysis developers"


def check_cidr(cidr: str) -> str:
    """The CIDR in canonical form; refuses malformed ones and the whole internet."""
    try:
        network = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        raise DeployError(f"--ssh-cidr {cidr!r} is not an address range: give one like 203.0.113.7/32.") from None
    if network.prefixlen == 0:
        raise DeployError(f"--ssh-cidr {cidr} would open SSH to the whole internet: give your own address range "
                          "(e.g. 203.0.113.7/32).")
    return str(network)


def ssh_permission(cidr: str) -> dict[str, Any]:
    ranges = ("Ipv6Ranges", "CidrIpv6") if ipaddress.ip_network(cidr).version == 6 else ("IpRanges", "CidrIp")
    return {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
            ranges[0]: [{ranges[1]: cidr, "Description": SSH_DESCRIPTION}]}


def rules(permissions: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> frozenset[tuple[Any, ...]]:
    """Ingress permissions as comparable (protocol, from, to, source) rules."""
    found = set()
    for p in permissions:
        ports = (p.get("IpProtocol"), p.get("FromPort"), p.get("ToPort"))
        found |= {(*ports, r["CidrIp"]) for r in p.get("IpRanges", ())}
        found |= {(*ports, r["CidrIpv6"]) for r in p.get("Ipv6Ranges", ())}
        found |= {(*ports, r.get("GroupId")) for r in p.get("UserIdGroupPairs", ())}
        found |= {(*ports, r.get("PrefixListId")) for r in p.get("PrefixListIds", ())}
    return frozenset(found)


def _tags(resource: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource, "Tags": [naming.SHARED_TAG]}]


# EC2 refuses descriptions outside its charset (no apostrophe): awslimits checks them.
SECURITY_GROUPS = {naming.JOB_SECURITY_GROUP: "NeuroCAAS job instances: no inbound rule",
                   naming.DEV_SECURITY_GROUP: "NeuroCAAS development instances: SSH from the developers CIDR"}


def _security_group(name: str, detail: str, state: SharedState, current: SecurityGroup | None,
                    wanted: list[dict[str, Any]] | None) -> Change | None:
    """Create the group or make its inbound rules exactly ``wanted`` (None: leave them as they are)."""
    if current is None:
        steps: list[Call] = [Call("ec2", "create_security_group", {
            "GroupName": name, "Description": SECURITY_GROUPS[name], "VpcId": state.vpc_id,
            "TagSpecifications": _tags("security-group")}, save={name: "GroupId"})]
        if wanted:
            steps.append(Call("ec2", "authorize_security_group_ingress", {"GroupId": Ref(name), "IpPermissions": wanted}))
        return Change(Action.CREATE, f"security group {name}", detail, tuple(steps))
    if wanted is None or rules(current.ingress) == rules(wanted):
        return None
    steps = []
    if current.ingress:
        steps.append(Call("ec2", "revoke_security_group_ingress",
                          {"GroupId": current.group_id, "IpPermissions": list(current.ingress)}))
    if wanted:
        steps.append(Call("ec2", "authorize_security_group_ingress", {"GroupId": current.group_id, "IpPermissions": wanted}))
    return Change(Action.UPDATE, f"security group {name} ({current.group_id})", "inbound rules: " + detail,
                  tuple(steps))


def _key_pair(state: SharedState) -> Change:
    """Make the key pair and store its private key; a key pair an interrupted init made without
    storing its key is useless (AWS shows a private key once), so it is made again."""
    put: dict[str, Any] = {"Name": naming.KEY_PARAMETER, "Value": Ref("private key"), "Type": "SecureString",
                           "Description": f"Private key of the EC2 key pair {naming.KEY_NAME}"}
    put.update({"Overwrite": True} if state.key_stored else {"Tags": [naming.SHARED_TAG]})
    steps = [Call("ec2", "create_key_pair", {"KeyName": naming.KEY_NAME, "KeyType": "ed25519",
                                             "TagSpecifications": _tags("key-pair")}, save={"private key": "KeyMaterial"}),
             Call("ssm", "put_parameter", put)]
    if state.key_exists:
        steps.insert(0, Call("ec2", "delete_key_pair", {"KeyName": naming.KEY_NAME}))
        return Change(Action.UPDATE, f"SSH key pair {naming.KEY_NAME}", "made again: an interrupted init did not "
                      f"store its private key in SSM {naming.KEY_PARAMETER}", tuple(steps))
    return Change(Action.CREATE, f"SSH key pair {naming.KEY_NAME}",
                  f"private key stored encrypted in SSM {naming.KEY_PARAMETER}", tuple(steps))


def plan_init(state: SharedState, ssh_cidr: str | None = None) -> Plan:
    """The changes that make the shared resources what they should be; empty when they are."""
    if state.vpc_id is None:
        raise DeployError(f"Region {state.region} has no default VPC for job instances: create one with "
                          f"`aws ec2 create-default-vpc --region {state.region}` and run init again.")
    changes: list[Change | None] = []
    changes.append(_security_group(naming.JOB_SECURITY_GROUP, "job instances: no inbound rule", state,
                                   state.job_group, []))
    cidr = check_cidr(ssh_cidr) if ssh_cidr else None
    # Without --ssh-cidr a new group gets no inbound rule, and an existing one keeps its rules.
    dev_rules = [ssh_permission(cidr)] if cidr else None if state.dev_group else []
    dev_purpose = f"developers: SSH from {cidr} only" if cidr else "developers: no inbound rule yet"
    changes.append(_security_group(naming.DEV_SECURITY_GROUP, dev_purpose, state, state.dev_group, dev_rules))
    notes = []
    if not state.key_exists or (not state.key_stored and state.key_ours):
        changes.append(_key_pair(state))
    elif not state.key_stored:
        notes.append(f"The key pair {naming.KEY_NAME} exists but its private key is not in {naming.KEY_PARAMETER} "
                     f"(it was made elsewhere): delete the key pair and run init again to get one NeuroCAAS keeps.")
    if state.dev_group is None and cidr is None:
        notes.append("No SSH access for developers yet: run init again with --ssh-cidr YOUR.IP.ADDRESS/32.")
    return Plan(f"NeuroCAAS shared resources in account {state.account}, {state.region}:",
                tuple(c for c in changes if c is not None), tuple(notes))


def init_record(state: SharedState) -> InitRecord:
    """The record of a fully initialised account and region (``state`` read after applying the plan)."""
    if not (state.vpc_id and state.job_group and state.dev_group and state.key_exists):
        raise DeployError("Initialisation is incomplete (some shared resources are missing): run init again.")
    ssh = sorted(r[3] for r in rules(state.dev_group.ingress) if r[1] == 22)
    return InitRecord(
        account=state.account, region=state.region, vpc_id=state.vpc_id, job_security_group=state.job_group.group_id, dev_security_group=state.dev_group.group_id,
        ssh_cidr=", ".join(ssh) or None, key_name=naming.KEY_NAME, key_parameter=naming.KEY_PARAMETER,
    )
