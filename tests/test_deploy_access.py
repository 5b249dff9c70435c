"""The group policy, enforced: moto evaluates IAM policies for users' access keys.

Moto checks actions and resource ARNs (not condition keys such as ``s3:prefix``; those are
checked on the documents themselves in test_deploy_policies.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core import enable_iam_authentication

from tests.deploy_support import Account

BUCKET = "spikes-test"


def s3_as(account: Account, user: str) -> Any:
    key = account.clients("iam").create_access_key(UserName=user)["AccessKey"]
    return boto3.client("s3", region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                        aws_secret_access_key=key["SecretAccessKey"], aws_session_token=None)


def allowed(call: Any, **params: Any) -> bool:
    try:
        call(Bucket=BUCKET, **params)
        return True
    except ClientError as error:
        assert error.response["Error"]["Code"] == "AccessDenied", error
        return False


@pytest.fixture
def deployed(aws_mock: None, tmp_path: Path) -> Account:
    account = Account(tmp_path)
    account.users("alice", "bob")
    account.init()
    account.deploy(account.blueprint())
    admin = account.clients("s3")
    for key in ("alab/results/job__spikes-test_1/logs/certificate.txt", "blab/results/job__spikes-test_2/out.csv",
                "blab/inputs/theirs.bin", "logs/active/i-0123.json", "logs/alab/i-0456.json"):
        admin.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    return account


def test_a_group_member_works_in_its_own_folder_and_nowhere_else(deployed: Account) -> None:
    alice = s3_as(deployed, "alice")
    with enable_iam_authentication():
        # its own folder: upload data and configs, write the submit file, read results and configs
        assert allowed(alice.put_object, Key="alab/inputs/movie.npz", Body=b"data")
        assert allowed(alice.put_object, Key="alab/configs/params.yaml", Body=b"a: 1")
        assert allowed(alice.put_object, Key="alab/submissions/submit.json", Body=b"{}")
        assert allowed(alice.get_object, Key="alab/results/job__spikes-test_1/logs/certificate.txt")
        assert allowed(alice.get_object, Key="alab/configs/params.yaml")
        assert allowed(alice.delete_object, Key="alab/inputs/movie.npz")
        # another group's folder: nothing
        assert not allowed(alice.put_object, Key="blab/inputs/mine.bin", Body=b"x")
        assert not allowed(alice.put_object, Key="blab/submissions/submit.json", Body=b"{}")
        assert not allowed(alice.get_object, Key="blab/results/job__spikes-test_2/out.csv")
        assert not allowed(alice.delete_object, Key="blab/inputs/theirs.bin")
        # logs/ (cost records of every group): nothing, not even the group's own history
        assert not allowed(alice.get_object, Key="logs/active/i-0123.json")
        assert not allowed(alice.get_object, Key="logs/alab/i-0456.json")
        assert not allowed(alice.put_object, Key="logs/alab/i-0456.json", Body=b"{}")
        # its own folder, but not what the job manager writes: no forged results
        assert not allowed(alice.put_object, Key="alab/results/job__spikes-test_1/logs/certificate.txt", Body=b"x")
        assert not allowed(alice.put_object, Key="alab/other/x", Body=b"x")
        # nothing in the account beyond the bucket
        with pytest.raises(ClientError):
            alice.list_buckets()


def test_a_user_in_no_group_can_do_nothing(deployed: Account) -> None:
    deployed.users("mallory")
    mallory = s3_as(deployed, "mallory")
    with enable_iam_authentication():
        assert not allowed(mallory.put_object, Key="alab/inputs/x", Body=b"x")
        assert not allowed(mallory.get_object, Key="alab/results/job__spikes-test_1/logs/certificate.txt")
