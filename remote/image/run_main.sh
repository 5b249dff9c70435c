#!/bin/bash
# NeuroCAAS remote main script: a drop-in for neurocaas_remote/run_main.sh.
#   run_main.sh BUCKET DATASET RESULTPATH CONFIG [ANALYSIS_SCRIPT]
# Pulls the dataset and config, runs the analysis script with NeuroCAAS's variables exported
# (bucketname inputpath configpath dataname configname groupdir resultdir processdir), reports
# live status to the job folder, and pushes what it writes to $localoutdir to process_results/.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="$(cat "$here/python" 2>/dev/null || command -v python3)"
export neurocaasrootdir="$here"
exec "$python" -m remote run "$@"
