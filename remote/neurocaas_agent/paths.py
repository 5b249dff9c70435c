"""The four NeuroCAAS arguments, turned into the variables analysis scripts expect."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Dict, Tuple

S3_PREFIX = "s3://"


def split_location(bucket: str, path: str) -> Tuple[str, str]:
    """(bucket, key) of a plain key in ``bucket`` or of an ``s3://bucket/key`` URI."""
    if path.startswith(S3_PREFIX):
        other, _, key = path[len(S3_PREFIX):].partition("/")
        return other, key
    return bucket, path


@dataclass(frozen=True)
class JobPaths:
    """Where one dataset's inputs come from and its outputs go."""

    bucketname: str
    inputpath: str
    configpath: str
    resultpath: str

    @property
    def dataname(self) -> str:
        return posixpath.basename(self.inputpath.rstrip("/"))

    @property
    def configname(self) -> str:
        return posixpath.basename(self.configpath)

    @property
    def groupdir(self) -> str:
        """The group: the first part of the dataset's key."""
        return split_location(self.bucketname, self.inputpath)[1].split("/", 1)[0]

    @property
    def resultdir(self) -> str:
        """NeuroCAAS's meaning: the third argument as given, relative to the group folder."""
        return self.resultpath.rstrip("/")

    @property
    def processdir(self) -> str:
        return f"{self.resultdir}/process_results"

    @property
    def result_location(self) -> Tuple[str, str]:
        """(bucket, prefix) of the job folder: ``{group}/{resultdir}``, or the ``s3://`` path given."""
        if self.resultpath.startswith(S3_PREFIX):
            return split_location(self.bucketname, self.resultdir)
        return self.bucketname, f"{self.groupdir}/{self.resultdir}"

    @property
    def input_location(self) -> Tuple[str, str]:
        return split_location(self.bucketname, self.inputpath)

    @property
    def config_location(self) -> Tuple[str, str]:
        return split_location(self.bucketname, self.configpath)

    def exported(self) -> Dict[str, str]:
        """NeuroCAAS's variable names, with the meaning its run_main.sh and ``parseargsstd`` gave them."""
        return {
            "bucketname": self.bucketname,
            "inputpath": self.inputpath,
            "configpath": self.configpath,
            "dataname": self.dataname,
            "configname": self.configname,
            "groupdir": self.groupdir,
            "resultdir": self.resultdir,
            "processdir": self.processdir,
        }
