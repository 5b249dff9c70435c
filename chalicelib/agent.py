"""The remote side (``remote/``, distribution ``neurocaas-agent``) as the job manager knows it.

The job manager never imports the agent (Lambda does not ship it); it holds these copies of the
agent's facts, and tests/test_agent_distribution.py asserts they agree with the agent's own: after
changing anything under ``remote/neurocaas_agent/``, update ``SHA256`` (``python -m neurocaas_agent
build /tmp/agent.pyz`` prints it) and copy ``core.py`` over ``chalicelib/agent_core.py``.
"""

from __future__ import annotations

from pathlib import Path

VERSION = "0.2.0"
# SHA-256 of the agent file the deploy uploads; the boot script runs no other.
SHA256 = "f05c434d858482826fce8600795b0ad9409dac92053fe61c5295c4ae02f0b1bf"
# Where an image holds the agent, relative to its home (/home/ubuntu).
HOME_PATH = ".neurocaas/neurocaas_agent.pyz"
# The standard-library S3 and status-file helper the boot script carries (a copy of the agent's core.py).
CORE = Path(__file__).with_name("agent_core.py")


def artifact_key() -> str:
    """Where the deploy puts the agent file in the analysis bucket."""
    return f"neurocaas/agent/neurocaas_agent-{VERSION}.pyz"
