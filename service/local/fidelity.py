"""What of a blueprint the local stack does not honour, said before a developer relies on it."""

from __future__ import annotations

import itertools

from chalicelib.blueprint import Blueprint

GPU_FAMILIES = ("p", "g", "inf", "trn", "dl")  # instance families with accelerators


def _has_accelerator(instance_type: str) -> bool:
    letters = "".join(itertools.takewhile(str.isalpha, instance_type.split(".")[0]))
    return letters in GPU_FAMILIES or (letters[:1] in ("p", "g") and len(letters) <= 2)


def local_stack_notes(blueprint: Blueprint, cores: int) -> list[str]:
    """One line per blueprint key whose effect the local stack cannot reproduce."""
    settings, notes = blueprint.settings, []
    if blueprint.local_image is None:
        notes.append("LocalImage is not set: on the local stack an instance's home holds only the remote scripts, "
                     "unless the AMI was saved there with `neurocaas develop create-image`.")
    elif not blueprint.local_image.is_dir():
        notes.append(f"LocalImage {blueprint.document.get('LocalImage')!r} is not a folder "
                     f"({blueprint.local_image}): local instances would start from an empty home.")
    accelerated = [t for t in settings.instance_types_allowed if _has_accelerator(t)]
    shared = f"local instances share this machine's {cores} cores and its memory, whatever their type"
    if accelerated:
        notes.append(f"INSTANCE_TYPE / ALLOWED_INSTANCE_TYPES: {', '.join(accelerated)} have GPUs or accelerators "
                     f"and local instances have none; {shared}.")
    else:
        notes.append(f"INSTANCE_TYPE: instance sizes are not emulated; {shared}.")
    if settings.bypass_buckets:
        notes.append(f"BYPASS_BUCKETS: the local stack does not create {', '.join(settings.bypass_buckets)}; create "
                     "them with any S3 client (AWS_ENDPOINT_URL set) before a job writes there.")
    return notes
