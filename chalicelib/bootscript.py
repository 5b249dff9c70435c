"""The boot script (EC2 user data) that runs the blueprint's command on each instance.

One script serves a whole batch of instances launched by a single ``RunInstances`` call: it
carries every instance's (dataset, config, status key) row as a compressed, NUL-separated table
and each instance picks its own row by its launch index. Submitted strings are only ever data: they
are decoded into shell variables and the command refers to them as ``"$NEUROCAAS_DATASET"`` and so
on, so no character in a submit file can run as a command.

Around the command the script needs only bash, coreutils, curl and python3, as every stock Ubuntu
and Deep Learning AMI has: it checks the image's remote side (``chalicelib/agent.py``) and fetches
it from the analysis bucket when it is missing or another version (SHA-256 checked), runs the
command from a clean shell, then gives the dataset its final state from the exit code if the
command did not, uploads the boot log and shuts down.
"""

from __future__ import annotations

import base64
import gzip
import posixpath
import re
import shlex
from collections.abc import Callable, Mapping, Sequence

from chalicelib import agent

# The home of the image's user, where NeuroCAAS images keep everything (the local stack maps it).
IMAGE_HOME = "/home/ubuntu"
USER_DATA_LIMIT = 16 * 1024
INSTALL_FAILED = (
    "The NeuroCAAS remote side {version} is not on this image and could not be installed from {uri} "
    "(see this dataset's boot log in internal_ec2_logs/). Deploy the analysis again to upload it, or "
    "bake it into the image (docs/DEVELOPING.md)."
)
ARGUMENT_VARIABLES = ("NEUROCAAS_BUCKET", "NEUROCAAS_DATASET", "NEUROCAAS_RESULTPATH", "NEUROCAAS_CONFIG")
PLACEHOLDER = re.compile(r"\"\{\}\"|'\{\}'|\{\}|\{\{|\}\}")


def placeholders(template: str) -> int:
    """How many ``{}`` NeuroCAAS's ``str.format`` would fill (``{{`` and ``}}`` are literal braces)."""
    return sum(1 for found in PLACEHOLDER.finditer(template) if found.group() not in ("{{", "}}"))


def bind_command(template: str) -> str:
    """Replace the ``{}`` placeholders (quoted or not) by quoted variable references, in order, as
    NeuroCAAS's ``str.format(bucket, dataset, resultpath, config)`` filled them: fewer than four
    receive the first arguments; ``{{``/``}}`` become literal braces."""
    count = placeholders(template)
    if count > len(ARGUMENT_VARIABLES):
        raise ValueError(f"COMMAND holds {count} {{}} placeholders; NeuroCAAS fills at most four "
                         "(bucket, dataset, result path, config)")
    variables = iter(ARGUMENT_VARIABLES)

    def bind(found: re.Match[str]) -> str:
        text = found.group()
        return text[0] if text in ("{{", "}}") else f'"${next(variables)}"'

    return PLACEHOLDER.sub(bind, template)


def _pack(raw: bytes) -> str:
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode()


def _name(dataset: str) -> str:
    """A dataset's name as the boot script computes it: the last part of its key."""
    return posixpath.basename(dataset.rstrip("/"))


def pack_rows(rows: Sequence[tuple[str, str, str]]) -> str:
    """The (dataset, config, label) table as base64 of gzip of NUL-separated fields; a label equal
    to the dataset's name is left empty (the script derives it), which keeps rows short."""
    return _pack(b"".join(
        f"{dataset}\0{config}\0{'' if label == _name(dataset) else label}\0".encode() for dataset, config, label in rows))


def unpack_table(user_data: str) -> list[tuple[str, str, str]]:
    """The (dataset, config, label) table carried by a boot script (for inspection and tests)."""
    packed = re.search(r"mapfile -d '' -t rows < <\(printf '%s' '?([A-Za-z0-9+/=]+)'? \| base64 -d", user_data)
    if packed is None:
        raise ValueError("not a NeuroCAAS boot script")
    fields = gzip.decompress(base64.b64decode(packed.group(1))).decode().split("\0")[:-1]
    return [(d, c, label or _name(d)) for d, c, label in zip(fields[0::3], fields[1::3], fields[2::3])]


def unpack_rows(user_data: str) -> list[tuple[str, str]]:
    """The (dataset, config) pairs carried by a boot script."""
    return [(dataset, config) for dataset, config, _ in unpack_table(user_data)]


def unpack_core() -> str:
    """Shell that writes the standard-library S3 helper (``chalicelib/agent_core.py``) to ``$kit/core.py``."""
    return (f'kit="$(mktemp -d)"\n'
            f"printf '%s' {shlex.quote(_pack(agent.CORE.read_bytes()))} | base64 -d | gunzip >\"$kit/core.py\"")


def install_agent(bucket: str, *, log: str, on_failure: str) -> str:
    """Shell that makes ``$agent`` the remote side this job manager expects: the image's own if its
    SHA-256 matches, else the analysis bucket's (checked the same way); then adds NeuroCAAS's script
    folder if the image has none. Both live in the image's home, whatever ``$HOME`` the script got.
    Needs ``$kit/core.py`` (:func:`unpack_core`)."""
    q = shlex.quote
    return f"""agent={IMAGE_HOME}/{agent.HOME_PATH}
neurocaas_agent_ok() {{ printf '%s  %s\\n' {agent.SHA256} "$1" | sha256sum -c --status 2>/dev/null; }}
if ! neurocaas_agent_ok "$agent"; then
  echo "NeuroCAAS: installing the remote side {agent.VERSION} from s3://{bucket}/{agent.artifact_key()}" >>{log}
  mkdir -p "${{agent%/*}}"
  python3 "$kit/core.py" get {q(bucket)} {q(agent.artifact_key())} "$agent.part" >>{log} 2>&1
  if neurocaas_agent_ok "$agent.part"; then
    mv -f "$agent.part" "$agent"
  else
    {on_failure}
  fi
fi
export NEUROCAAS_AGENT="$agent"
python3 "$agent" install-scripts {IMAGE_HOME} >>{log} 2>&1"""


def render(
    *,
    command: str,
    bucket: str,
    result_argument: str,
    rows: Sequence[tuple[str, str, str]],
    lifetime_minutes: int,
    job: str,
    log_uri: str,
    status_key: Callable[[str], str],
    environment: Mapping[str, str] | None = None,
) -> str:
    """The user data for one launch batch; ``rows[i]`` (dataset, config, dataset label) is for the
    instance with launch index i; ``status_key(label)`` is its status file in the job folder's bucket.
    ``environment``: more ``NEUROCAAS_*`` variables for the instance (quoted; other names dropped)."""
    q = shlex.quote
    exports = "".join(f"export {name}={q(value)}\n" for name, value in (environment or {}).items()
                      if re.fullmatch(r"NEUROCAAS_[A-Z_]+", name))
    key_head, _, key_tail = status_key("\0").partition("\0")
    job_bucket, _, log_prefix = log_uri.removeprefix("s3://").partition("/")
    uri = f"s3://{bucket}/{agent.artifact_key()}"
    return f"""#!/bin/bash
# NeuroCAAS {job}: generated by the job manager; runs this instance's dataset.
set -u
# The instance ends itself after its lifetime even if the analysis hangs.
shutdown -h +{int(lifetime_minutes)} >/dev/null 2>&1 &
export HOME="${{HOME:-{IMAGE_HOME}}}"
neurocaas_imds() {{
  [ "${{AWS_EC2_METADATA_DISABLED:-}}" = true ] && return 1
  local token
  token=$(curl -sf -m 2 -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300') &&
    curl -sf -m 2 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/$1"
}}
index="${{NEUROCAAS_LAUNCH_INDEX:-$(neurocaas_imds meta-data/ami-launch-index)}}"
export AWS_REGION="${{AWS_REGION:-${{AWS_DEFAULT_REGION:-$(neurocaas_imds meta-data/placement/region)}}}}"
export AWS_DEFAULT_REGION="${{AWS_DEFAULT_REGION:-$AWS_REGION}}"
mapfile -d '' -t rows < <(printf '%s' {q(pack_rows(rows))} | base64 -d | gunzip)
case "$index" in ''|*[!0-9]*) echo "NeuroCAAS: no launch index" >&2; shutdown -h now; exit 1;; esac
if [ $((3 * index + 2)) -ge ${{#rows[@]}} ]; then echo "NeuroCAAS: no row $index" >&2; shutdown -h now; exit 1; fi
export NEUROCAAS_BUCKET={q(bucket)}
export NEUROCAAS_RESULTPATH={q(result_argument)}
export NEUROCAAS_DATASET="${{rows[$((3 * index))]}}"
export NEUROCAAS_CONFIG="${{rows[$((3 * index + 1))]}}"
export NEUROCAAS_JOB={q(job)}
name="${{NEUROCAAS_DATASET%/}}"
name="${{name##*/}}"
label="${{rows[$((3 * index + 2))]:-$name}}"
export NEUROCAAS_STATUS_KEY={q(key_head)}"$label"{q(key_tail)}
{exports}log_dir="${{NEUROCAAS_LOG_DIR:-/var/log/neurocaas}}"
mkdir -p "$log_dir"
log="$log_dir/$name-$index.log"
: >>"$log"
{unpack_core()}
# After the command (or instead of it): the final state from the exit code unless the dataset has
# one, the boot log to internal_ec2_logs/, and the instance off.
neurocaas_end() {{
  trap - TERM
  if command -v python3 >/dev/null 2>&1; then
    python3 "$kit/core.py" finalize {q(job_bucket)} "$NEUROCAAS_STATUS_KEY" "$1" "$log" "$NEUROCAAS_DATASET" "${{2:-}}" >>"$log" 2>&1
    echo "NeuroCAAS: command exited with code $1" >>"$log"
    python3 "$kit/core.py" put {q(job_bucket)} {q(log_prefix)}"/${{log##*/}}" "$log" || cat "$log" >&2
  else
    echo "NeuroCAAS: python3 is not on this image, so the dataset cannot be reported (code $1)" >&2
    cat "$log" >&2
  fi
  shutdown -h now
  exit "$1"
}}
trap 'neurocaas_end 143 "The instance was powered off before its dataset reported a final state."' TERM
command -v python3 >/dev/null 2>&1 || neurocaas_end 127
{install_agent(bucket, log='"$log"', on_failure=f"neurocaas_end 1 {q(INSTALL_FAILED.format(version=agent.VERSION, uri=uri))}")}
# The command runs from a clean shell: none of this script's options, and a `#` in it ends there.
printf '%s\n' {q(bind_command(command))} >"$kit/command.sh"
bash "$kit/command.sh" >>"$log" 2>&1
neurocaas_end $?
"""
