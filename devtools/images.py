"""Image codes for ``launch_ami``: names for current supported base images, resolved when used.

NeuroCAAS pinned four AMI ids (``ubuntu18``, ``ubuntu16``, ``dlami18``, ``dlami16``) that have long
been deregistered. Here each code names an SSM public parameter that AWS keeps pointing at the
newest build of that image in every region, so a code always launches a current, patched image:

=========  ==========================================================================================
code       image (SSM public parameter)
=========  ==========================================================================================
ubuntu24   Ubuntu Server 24.04 LTS, amd64, gp3
           ``/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id``
ubuntu22   Ubuntu Server 22.04 LTS, amd64, gp2
           ``/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id``
dlami24    Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04)
           ``/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id``
dlami22    Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)
           ``/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id``
ubuntu18   Ubuntu 18.04 and 16.04 are end-of-life (no security updates; Canonical and AWS no longer
ubuntu16   publish them): these NeuroCAAS codes launch ``ubuntu24``, with a warning.
dlami18    The Deep Learning AMIs for Ubuntu 18.04/16.04 are end-of-life too: these launch
dlami16    ``dlami24``, with a warning.
=========  ==========================================================================================

On the local stack every code launches a bare workspace (an empty home with the remote scripts
installed), since a local instance runs on this machine's own system.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from devtools.exceptions import DevToolsError

AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class ImageCode:
    """A name for a base image, and the SSM public parameter that holds its current AMI id."""

    code: str
    description: str
    parameter: str
    retired: str = ""


UBUNTU24 = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
UBUNTU22 = "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id"
DLAMI24 = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
DLAMI22 = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"

CODES: dict[str, ImageCode] = {c.code: c for c in (
    ImageCode("ubuntu24", "Ubuntu 24.04 LTS", UBUNTU24),
    ImageCode("ubuntu22", "Ubuntu 22.04 LTS", UBUNTU22),
    ImageCode("dlami24", "Deep Learning Base GPU AMI (Ubuntu 24.04)", DLAMI24),
    ImageCode("dlami22", "Deep Learning Base GPU AMI (Ubuntu 22.04)", DLAMI22),
    ImageCode("ubuntu18", "Ubuntu 24.04 LTS", UBUNTU24, retired="Ubuntu 18.04"),
    ImageCode("ubuntu16", "Ubuntu 24.04 LTS", UBUNTU24, retired="Ubuntu 16.04"),
    ImageCode("dlami18", "Deep Learning Base GPU AMI (Ubuntu 24.04)", DLAMI24, retired="the Ubuntu 18.04 Deep Learning AMI"),
    ImageCode("dlami16", "Deep Learning Base GPU AMI (Ubuntu 24.04)", DLAMI24, retired="the Ubuntu 16.04 Deep Learning AMI"),
)}


@dataclass(frozen=True)
class ResolvedImage:
    ami: str
    note: str = ""


def image_code(ami: str) -> ImageCode | None:
    """The code's entry when ``ami`` is a code, None when it is an AMI id; refuses anything else."""
    if AMI_ID.match(ami):
        return None
    code = CODES.get(ami.lower())
    if code is None:
        raise DevToolsError(f"{ami!r} is neither an AMI id (ami-...) nor an image code; use one of "
                            f"{', '.join(CODES)}, or leave it out for the blueprint's own AMI.")
    return code


def retirement_note(code: ImageCode) -> str:
    if not code.retired:
        return ""
    return (f"{code.retired} is end-of-life and no longer published; launching {code.description} "
            f"instead ({code.code!r} is kept for NeuroCAAS compatibility).")


def resolve(ami: str, read_parameter: Callable[[str], str | None], region: str) -> ResolvedImage:
    """An AMI id, or the current AMI id a code stands for in ``region``."""
    code = image_code(ami)
    if code is None:
        return ResolvedImage(ami)
    found = read_parameter(code.parameter)
    if not found:
        raise DevToolsError(f"AWS publishes no {code.description} in {region} (SSM parameter {code.parameter} "
                            "is missing); choose another code or pass an AMI id.")
    return ResolvedImage(found, retirement_note(code))
