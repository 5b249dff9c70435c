#!/bin/bash
# NeuroCAAS workflow helpers, kept for COMMANDs that end ". neurocaas_remote/ncap_utils/workflow.sh; cleanup".

# cleanup [DIR...]: remove the given folders and power the instance off.
cleanup () {
    for var in "$@"; do
        rm -r -- "$var"
    done
    sudo poweroff
}

# accessdir DIR...: create folders anyone on the instance may write to.
accessdir () {
    for var in "$@"; do
        mkdir -p -- "$var" && chmod 777 -- "$var"
    done
}
