#!/bin/bash
# NeuroCAAS analysis script: calcium imaging ΔF/F extraction and event detection.
#
# Run on the instance as `bash /abs/path/analysis.sh` with NeuroCAAS's variables exported:
#   localdatapath    the downloaded movie: a .npz with 'movie' (frames, height, width) and 'fs' (Hz),
#                    or a folder holding one
#   localconfigpath  the downloaded parameter file (.json, .yaml or .yml; see params.yaml)
#   localoutdir      the folder whose files are uploaded to the job's process_results/
# Writes {name}.rois.json, .dff.csv, .events.csv, .summary.json and .png there ({name}: the file's name without .npz).
set -uo pipefail

fail() { echo "calcium-events: error: $*" >&2; exit 2; }

for variable in localdatapath localconfigpath localoutdir; do
  [ -n "${!variable:-}" ] || fail "\$$variable is not set; this script expects NeuroCAAS's variables"
done
[ -e "$localdatapath" ] || fail "the dataset $localdatapath does not exist"
[ -f "$localconfigpath" ] || fail "the parameter file $localconfigpath does not exist"
command -v python3 >/dev/null || fail "python3 is not on PATH"
mkdir -p "$localoutdir" || fail "cannot create the output folder $localoutdir"

here="$(cd "$(dirname "$0")" && pwd)"
export PYTHONPATH="$here:${PYTHONPATH:-}"
export MPLBACKEND=Agg
export MPLCONFIGDIR="${MPLCONFIGDIR:-${TMPDIR:-/tmp}/calcium-events-matplotlib}"

echo "calcium-events: analysing ${dataname:-$(basename "$localdatapath")} with ${configname:-$(basename "$localconfigpath")}"
python3 -m calcium_events "$localdatapath" "$localconfigpath" "$localoutdir"
code=$?
if [ "$code" -ne 0 ]; then
  echo "calcium-events: the analysis failed (exit code $code)" >&2
  exit "$code"
fi
echo "calcium-events: results written"
