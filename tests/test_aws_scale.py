"""Extreme but legal inputs, planned and checked against AWS's rules (the rulebook), not only moto's.

A 63-character bucket, 128-character IAM group names, 50 affiliates, 100 analyses in one account,
1000-dataset jobs: every planned request must be one AWS accepts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib import awslimits
from chalicelib.blueprint import AnalysisSettings
from chalicelib.plan import BudgetState, InputFacts, run_instances_request
from chalicelib.planner import plan_job
from chalicelib.submission import parse_submission
from service.deploy import naming, rulebook
from service.deploy.awsstate import AnalysisState, BucketState, RoleState
from service.deploy.exceptions import DeployError
from service.deploy.plan import plan_deploy
from service.deploy.records import InitRecord
from service.deploy.stagefiles import LocalState
from tests.deploy_support import Account, aws_rules

LONGEST = "a" + "b" * 61 + "c"  # 63 characters: S3's longest bucket name
SHARED = InitRecord(account="123456789012", region="us-east-1", vpc_id="vpc-1", job_security_group="sg-0job",
                    dev_security_group="sg-0dev", key_name="neurocaas-dev", key_parameter="/neurocaas/keys/neurocaas-dev")


def affiliates(count: int, length: int) -> dict[str, list[str]]:
    """``count`` affiliate names of ``length`` characters, each with one user."""
    return {f"{i:02d}" + "g" * (length - 2): [f"user{i:02d}"] for i in range(count)}


@pytest.fixture
def account(aws_mock: None, tmp_path: Path) -> Account:
    return Account(tmp_path)


def test_a_63_character_bucket_with_50_affiliates_of_128_character_group_names_deploys(account: Account) -> None:
    groups = affiliates(50, awslimits.IAM_GROUP_NAME - len(LONGEST) - 1)
    account.users(*(u for users in groups.values() for u in users))
    blueprint = account.blueprint(LONGEST, groups)
    assert {len(naming.iam_group_name(LONGEST, g)) for g in groups} == {awslimits.IAM_GROUP_NAME}

    with aws_rules() as problems:
        account.init()
        outcome = account.deploy(blueprint)
    assert problems == []

    stage = naming.stage_name(LONGEST)
    assert len(stage) <= naming.STAGE_LIMIT and stage != LONGEST
    assert all(awslimits.check_name(kind, name) is None for kind, name in naming.chalice_names(stage))
    (args, _, env), = account.chalice.calls
    assert args == ["deploy", "--stage", stage] and env["BUCKET_NAME"] == LONGEST
    assert len(account.clients("iam").list_groups(PathPrefix=naming.group_path(LONGEST))["Groups"]) == 50
    assert rulebook.plan_problems(outcome.plan) == []


def test_a_65th_character_of_affiliate_name_is_refused_before_any_call_naming_the_longest(account: Account) -> None:
    from service.deploy.commands import check_blueprint

    blueprint = account.blueprint(LONGEST, affiliates(1, 65))
    with pytest.raises(DeployError) as refused:
        check_blueprint(blueprint)
    assert "at most 64 characters" in str(refused.value) and "AffiliateName" in str(refused.value)


def empty_state(bucket: str) -> AnalysisState:
    return AnalysisState(account=SHARED.account, region=SHARED.region, bucket=BucketState(exists=False), groups={},
                         users=frozenset(), budgets={}, role=RoleState(), image_found=True, running=(),
                         iam_summary={"Groups": 0, "GroupsQuota": 300, "Roles": 0, "RolesQuota": 1000})


def test_100_analyses_in_one_account_plan_valid_requests_and_fit_the_account(account: Account, tmp_path: Path) -> None:
    local = LocalState(project=tmp_path, config={"stages": {}}, policies={}, deployed_digest=None,
                       chalice_deployed=False, code_digest="0")
    roles, rules, groups = set(), set(), set()
    for i in range(100):
        bucket = f"analysis-{i:03d}-" + "x" * (63 - 13)
        blueprint = account.blueprint(bucket, {"lab-one": [], "lab-two": []})
        plan = plan_deploy(blueprint, SHARED, empty_state(bucket), local, tmp_path / f"{bucket}.json")
        assert rulebook.plan_problems(plan) == [], bucket
        stage = naming.stage_name(bucket)
        roles |= {name for kind, name in naming.chalice_names(stage) if kind == "IAM role"} | {naming.instance_role(bucket)}
        rules |= {name for kind, name in naming.chalice_names(stage) if kind == "EventBridge rule"}
        groups |= {naming.iam_group_name(bucket, a) for a in ("lab-one", "lab-two")}
    # distinct names although the buckets share their first 21 characters, and within the default quotas
    functions, events = len(naming.LAMBDA_HANDLERS), len(naming.EVENT_HANDLERS)
    assert len(roles) == 100 * (functions + 1) and len(rules) == 100 * events and len(groups) == 200
    assert len(roles) <= 1000 and len(rules) <= 300 and len(groups) <= 300


def test_a_deploy_over_the_accounts_iam_group_quota_is_refused_with_advice(account: Account, tmp_path: Path) -> None:
    local = LocalState(project=tmp_path, config={"stages": {}}, policies={}, deployed_digest=None,
                       chalice_deployed=False, code_digest="0")
    state = empty_state("spikes-test")
    state = AnalysisState(**{**state.__dict__, "iam_summary": {"Groups": 299, "GroupsQuota": 300}})
    with pytest.raises(DeployError, match="299 IAM Groups of the 300"):
        plan_deploy(account.blueprint(), SHARED, state, local, tmp_path / "d.json")


def test_a_1000_dataset_job_launches_with_requests_aws_accepts(analysis_settings: AnalysisSettings) -> None:
    from chalicelib.paths import ObjectRef
    from tests.conftest import GROUP

    names = [f"{GROUP}/inputs/" + f"{i:04d}-" + "d" * 200 + ".tif" for i in range(1000)]
    document = {"dataname": names, "configname": f"{GROUP}/configs/params.yaml", "timestamp": "t" * 100}
    submission = parse_submission(document, f"{GROUP}/submissions/" + "s" * 300 + "_submit.json", analysis_settings)
    settings = analysis_settings.model_copy(update={"deploy_limit": 1000, "iam_role": naming.instance_profile(LONGEST),
                                                    "security_groups": ("sg-0job",)})
    facts = InputFacts(existing=frozenset(submission.datasets), config_body=b"__duration__: 30\n")
    plan = plan_job(settings, submission, '"etag"', facts, BudgetState(limit=None, limit_source="none"))

    assert sum(b.count for b in plan.batches) == 1000
    for batch in plan.batches:
        assert awslimits.check_call("ec2", "run_instances", run_instances_request(plan, batch)) == []
    assert all(len(v) <= awslimits.TAG_VALUE for v in plan.tags.values())
    assert ObjectRef(settings.bucket_name, names[0]) in submission.datasets


def test_a_group_name_longer_than_a_tag_value_still_launches_with_tags_that_fit(
        analysis_settings: AnalysisSettings) -> None:
    group = "g" * 300
    document = {"dataname": f"{group}/inputs/a.tif", "configname": f"{group}/configs/p.yaml", "timestamp": "t1"}
    submission = parse_submission(document, f"{group}/submissions/submit.json", analysis_settings)
    facts = InputFacts(existing=frozenset(submission.datasets), config_body=b"__duration__: 30\n")
    plan = plan_job(analysis_settings, submission, '"etag"', facts, BudgetState(limit=None, limit_source="none"))

    assert "jobfolder" not in plan.tags  # the job is found from the markers, not a tag that may not fit
    assert plan.tags["group"] == awslimits.tag_value(group) and len(plan.tags["group"]) == awslimits.TAG_VALUE
    [batch] = plan.batches
    assert awslimits.check_call("ec2", "run_instances", run_instances_request(plan, batch)) == []


def test_the_rule_name_budget_counts_every_eventbridge_handler_of_the_app() -> None:
    """A new on_cw_event/schedule handler in app.py makes a longer rule name: the stage limit must know it."""
    import app

    scheduled = {e.name for e in app.app.event_sources if type(e).__name__ in ("CloudWatchEventConfig",
                                                                              "ScheduledEventConfig")}
    assert scheduled == set(naming.EVENT_HANDLERS)
    assert set(naming.LAMBDA_HANDLERS) == {e.name for e in app.app.event_sources}
