#!/bin/bash
# A NeuroCAAS-style analysis script, as written for NeuroCAAS's run_main.sh: it reads the exported
# variables (bucketname, inputpath, configpath, dataname, configname, groupdir, processdir) and
# moves data with the AWS CLI itself. As in NeuroCAAS, $processdir is relative to the group folder.
set -e
workdir="$HOME/spikes_work/$dataname"
mkdir -p "$workdir/out"
echo "fetching $inputpath"
aws s3 cp "s3://$bucketname/$inputpath" "$workdir/$dataname" --quiet
aws s3 cp "s3://$bucketname/$configpath" "$workdir/$configname" --quiet
python3 "$(dirname "$0")/detect_spikes.py" "$workdir/$dataname" "$workdir/$configname" "$workdir/out"
aws s3 cp --recursive "$workdir/out" "s3://$bucketname/$groupdir/$processdir/${dataname%.*}" --quiet
echo "results in s3://$bucketname/$groupdir/$processdir/${dataname%.*}"
