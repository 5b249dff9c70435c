"""The four NeuroCAAS arguments, turned into the variables analysis scripts expect."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

S3_PREFIX = "s3://"


def split_location(bucket: str, path: str) -> tuple[str, str]:
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
        """The group folder: the dataset's key up to its ``inputs/`` folder's parent."""
        _, key = split_location(self.bucketname, self.inputpath)
        return key.split("/", 1)[0]

    @property
    def result_location(self) -> tuple[str, str]:
        """(bucket, prefix) of the job folder."""
        if self.resultpath.startswith(S3_PREFIX):
            return split_location(self.bucketname, self.resultpath.rstrip("/"))
        return self.bucketname, f"{self.groupdir}/{self.resultpath.strip('/')}"

    @property
    def resultdir(self) -> str:
        return self.result_location[1]

    @property
    def processdir(self) -> str:
        return f"{self.resultdir}/process_results"

    @property
    def input_location(self) -> tuple[str, str]:
        return split_location(self.bucketname, self.inputpath)

    @property
    def config_location(self) -> tuple[str, str]:
        return split_location(self.bucketname, self.configpath)

    def exported(self) -> dict[str, str]:
        """NeuroCAAS's variable names, exactly as its run_main.sh exported them."""
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
