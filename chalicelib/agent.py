"""The remote side (``remote/``, distribution ``neurocaas-agent``) as the job manager knows it.

The job manager never imports the agent (Lambda does not ship it); it holds these copies of the
agent's facts, and tests/test_agent_distribution.py asserts they agree with the agent's own: after
changing anything under ``remote/neurocaas_agent/``, update ``SHA256`` (``python -m neurocaas_agent
build /tmp/agent.pyz`` prints it) and copy ``core.py`` over ``chalicelib/agent_core.py``.
"""

from __future__ import annotations

from pathlib import Path

VERSION = "0.3.0"
# SHA-256 of the agent file the deploy uploads; the boot script runs no other.
SHA256 = "dfb93bfc988ab747da0991d15d6ad1f5cc872cb50f8bd6357b5b2db2239ba4da"
# Where an image holds the agent, relative to its home (/home/ubuntu).
HOME_PATH = ".neurocaas/neurocaas_agent.pyz"
# The standard-library S3 and status-file helper the boot script carries (a copy of the agent's core.py).
CORE = Path(__file__).with_name("agent_core.py")


def artifact_key() -> str:
    """Where the deploy puts the agent file in the analysis bucket. The key names the content (its
    checksum's first 16 hex digits), so a deploy after any change to the agent uploads it anew (a
    deploy only uploads a key the bucket lacks) and a boot script rendered before the change still
    finds the file it expects."""
    return f"neurocaas/agent/neurocaas_agent-{VERSION}-{SHA256[:16]}.pyz"
