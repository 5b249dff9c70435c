"""The remote side's transfers against a moto server: folders both ways, and multipart uploads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from neurocaas_agent import transfer
from neurocaas_agent.core import Client, S3Error

from tests.conftest import with_bucket

BUCKET = "transfer-bucket"


@pytest.fixture(scope="module")
def endpoint(endpoint: str) -> str:
    """The shared moto server (tests/conftest.py), with this module's bucket."""
    return with_bucket(endpoint, BUCKET)


@pytest.fixture
def client(agent_client: Client) -> Client:
    return agent_client


def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def test_a_folder_goes_up_and_comes_back(client: Client, endpoint: str, tmp_path: Path) -> None:
    source = tmp_path / "out"
    (source / "deep" / "er").mkdir(parents=True)
    (source / "a b+c.txt").write_text("one")
    (source / "deep" / "er" / "x.bin").write_bytes(os.urandom(1000))
    assert transfer.upload_tree(client, source, BUCKET, "lab/results/j/process_results") == 2
    copy = transfer.download(client, BUCKET, "lab/results/j/process_results/", tmp_path / "back")
    assert sorted(p.relative_to(tmp_path / "back").as_posix() for p in copy) == ["a b+c.txt", "deep/er/x.bin"]
    assert (tmp_path / "back" / "deep" / "er" / "x.bin").read_bytes() == (source / "deep" / "er" / "x.bin").read_bytes()


def test_a_file_too_big_for_one_put_goes_in_parts(client: Client, endpoint: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "SINGLE_PUT_LIMIT", 1024 * 1024)  # S3's real limit is 5 GiB
    monkeypatch.setattr(transfer, "MIN_PART", 5 * 1024 * 1024)  # S3's smallest part (but the last)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    sent = client.requests
    transfer.upload(client, big, BUCKET, "lab/results/j/process_results/big.bin")
    assert client.requests - sent == 5  # create, three parts, complete
    stored = s3(endpoint).get_object(Bucket=BUCKET, Key="lab/results/j/process_results/big.bin")["Body"].read()
    assert stored == big.read_bytes()


def test_a_missing_object_is_an_error_that_names_it(client: Client, tmp_path: Path) -> None:
    with pytest.raises(S3Error) as caught:
        transfer.download(client, BUCKET, "lab/inputs/nothing.bin", tmp_path / "x")
    assert caught.value.code == "NoSuchKey" and caught.value.status == 404
