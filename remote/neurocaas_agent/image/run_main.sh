#!/bin/bash
# NeuroCAAS remote main script: a drop-in for neurocaas_remote/run_main.sh.
#   run_main.sh BUCKET DATASET RESULTPATH CONFIG [ANALYSIS_SCRIPT]
# Pulls the dataset and config, runs the analysis script with NeuroCAAS's variables exported
# (bucketname inputpath configpath dataname configname groupdir resultdir processdir), reports
# live status to the dataset's status file, and pushes what it writes to $localoutdir to
# $groupdir/$processdir/. The agent is the file the boot script checked ($NEUROCAAS_AGENT).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
agent="${NEUROCAAS_AGENT:-$HOME/.neurocaas/neurocaas_agent.pyz}"
export neurocaasrootdir="$here"
if [ ! -f "$agent" ]; then
    echo "NeuroCAAS: the remote side is not installed at $agent; see docs/DEVELOPING.md" >&2
    exit 127
fi
exec python3 "$agent" run "$@"
