"""Developer tools: build, test and save an analysis image, on AWS or on the local stack.

``from devtools import NeuroCAASAMI`` (also as NeuroCAAS's ``NeuroCaaSAMI``). Imported lazily, so
the small background programs in ``devtools.backends`` start without loading the job manager.
"""

from __future__ import annotations

from typing import Any

from devtools.exceptions import DevToolsError

__all__ = ["DevToolsError", "NeuroCAASAMI", "NeuroCaaSAMI"]


def __getattr__(name: str) -> Any:
    if name in ("NeuroCAASAMI", "NeuroCaaSAMI"):
        from devtools.ami import NeuroCAASAMI

        return NeuroCAASAMI
    raise AttributeError(f"module 'devtools' has no attribute {name!r}")
