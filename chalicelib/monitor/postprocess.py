"""Optional post-processing: a blueprint may name a function to run once a job has ended.

``Lambda.LambdaConfig.POSTPROCESS`` is ``"module:function"``, importable in the deployed package
(e.g. a module under ``chalicelib/``). It is called right after ``end.txt`` is written, with a
:class:`JobEnded`; whatever it raises is logged and reported in the certificate. If the writer of
``end.txt`` dies before the certificate reports it, the reaper runs it again: at least once.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from chalicelib.awsclient import AWSClient
from chalicelib.jobstate.conditional import rewrite


@dataclass(frozen=True)
class JobEnded:
    """What a post-processing function gets: the job folder and an S3 client to work in it."""

    s3: Any
    bucket: str
    prefix: str
    actual_cost: float


def run_postprocess(spec: str, job: JobEnded, logger: Any) -> str:
    """Run the named function; returns what happened, also appended to the certificate."""
    try:
        module_name, _, function_name = spec.partition(":")
        function = getattr(importlib.import_module(module_name), function_name)
        function(job)
        line = f"POSTPROCESSING ({spec}): DONE"
    except Exception as error:  # the analysis developer's code: report it, never crash the monitor
        logger.exception("post-processing failed", extra={"postprocess": spec, "job": job.prefix})
        line = (f"POSTPROCESSING ({spec}): FAILED ({type(error).__name__}: {str(error)[:200]}). "
                "The results above are complete; contact the analysis developer about the post-processing.")

    def append(body: bytes | None) -> bytes | None:
        return None if body is None else body + (line + "\n").encode()

    rewrite(AWSClient(job.s3, None, None), job.bucket, f"{job.prefix}/logs/certificate.txt", append)
    return line
