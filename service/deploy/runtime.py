"""The Lambda runtime a deploy targets, whatever Python runs ``neurocaas``, and ``chalice`` run with it.

Chalice takes the functions' runtime from the interpreter running it, and Lambda no longer
creates or updates ``python3.11`` functions. ``neurocaas deploy`` therefore runs Chalice through
this module (``python -m service.deploy.runtime ARGS``), which sets the runtime first; Chalice's
packager then also fetches wheels built for that runtime.
"""

from __future__ import annotations

import os
import sys

from chalicelib import awslimits

RUNTIME_VARIABLE = "NEUROCAAS_LAMBDA_RUNTIME"
DEFAULT_RUNTIME = "python3.12"


def lambda_runtime(version: tuple[int, int] | None = None) -> str:
    """The runtime to deploy: $NEUROCAAS_LAMBDA_RUNTIME, else the local Python's when Lambda supports
    it, else python3.12 (the code runs on every supported runtime)."""
    chosen = os.environ.get(RUNTIME_VARIABLE, "").strip()
    if chosen:
        return chosen
    major, minor = version or sys.version_info[:2]
    local = f"python{major}.{minor}"
    return local if local in awslimits.SUPPORTED_RUNTIMES else DEFAULT_RUNTIME


def main() -> None:
    """``chalice ARGS`` with the functions' runtime set to $NEUROCAAS_LAMBDA_RUNTIME."""
    import chalice.cli
    import chalice.config

    runtime = lambda_runtime()
    chalice.config.Config.lambda_python_version = property(lambda self: runtime)  # type: ignore[assignment,method-assign]
    sys.argv[0] = "chalice"
    sys.exit(chalice.cli.main())


if __name__ == "__main__":
    main()
