"""Shell text for AWS development instances: the lifetime watchdog and the Run Command of one dataset.

Everything that varies is carried base64-encoded, so nothing in a boot script or a tag is ever
read as shell text by the command that installs it.
"""

from __future__ import annotations

import base64
import re
import shlex

from chalicelib import bootscript
from service.local.layout import SHIMS

WATCHDOG = "/usr/local/sbin/neurocaas-dev-lifetime"
RUNS = "/var/lib/neurocaas-dev/runs"

# Runs every minute (cron survives reboots and stop/start). Only instances tagged neurocaas-dev
# act on it, so images saved from a development instance carry it harmlessly into jobs.
LIFETIME_CHECK = r"""#!/bin/bash
# NeuroCAAS development instance: stop when Timeout minutes have passed since neurocaas-dev-since.
imds() {
  local token
  token=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60') &&
    curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
imds tags/instance/neurocaas-dev >/dev/null || exit 0
timeout=$(imds tags/instance/Timeout) || exit 0
since=$(imds tags/instance/neurocaas-dev-since) || exit 0
deadline=$(( $(date -d "$since" +%s) + ${timeout%.*} * 60 ))
if [ "$(date +%s)" -ge "$deadline" ]; then
  logger -t neurocaas-dev "lifetime of $timeout minutes ran out; stopping"
  shutdown -h now
fi
"""

# On a development instance the analysis's power-off ends only its own run (its process group),
# never the instance; sudo passes every other command to the real sudo.
DEV_SUDO = """#!/bin/sh
here=$(dirname "$0")
for word in "$@"; do
  case "$word" in
    -*) ;;
    shutdown|poweroff|halt)
      n=0; for arg in "$@"; do n=$((n + 1)); [ "$arg" = "$word" ] && break; done
      shift "$n"; exec "$here/$word" "$@";;
    *) break;;
  esac
done
exec /usr/bin/sudo "$@"
"""
RUN_SHIMS = {name: SHIMS[name] for name in ("shutdown", "poweroff", "halt")} | {"sudo": DEV_SUDO}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def watchdog_user_data(bucket: str) -> str:
    """User data that installs the lifetime check (the instance's shutdown behaviour is ``stop``)
    and bakes the remote side into /home/ubuntu from the analysis bucket, exactly as a job's boot
    script would fetch it, so that an image saved from this instance has it."""
    baked_log = "/var/log/neurocaas-dev-agent.log"
    return (
        "#!/bin/bash\n"
        f"printf '%s' {_b64(LIFETIME_CHECK)} | base64 -d > {WATCHDOG}\n"
        f"chmod 755 {WATCHDOG}\n"
        f"echo '* * * * * root {WATCHDOG}' > /etc/cron.d/neurocaas-dev-lifetime\n"
        f"export HOME={bootscript.IMAGE_HOME}\n"
        f"{bootscript.unpack_core()}\n"
        f"{bootscript.install_agent(bucket, log=baked_log, on_failure=f'echo NeuroCAAS dev: no remote side baked >>{baked_log}')}\n"
        'chown -R ubuntu:ubuntu "$HOME/.neurocaas" "$HOME/neurocaas_remote" 2>/dev/null\n'
        'rm -rf "$kit"\n'
    )


def run_name(name: str) -> str:
    """A run's folder name: the job folder name made safe for a path."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)[:200]


def run_commands(user_data: str, launch_index: int, name: str) -> list[str]:
    """The AWS-RunShellScript commands that run one dataset's boot script as a background job would.

    The boot script runs in its own session (``setsid --wait``) with the shims first on PATH, so a
    power-off ends the run, not the instance; its log is printed at the end for the command output.
    """
    run = f"{RUNS}/{run_name(name)}"
    lines = [
        f"run={shlex.quote(run)}",
        'mkdir -p "$run/bin" "$run/logs" "$run/work"',
        f"printf '%s' {_b64(user_data)} | base64 -d > \"$run/user-data.sh\"",
    ]
    for shim, body in RUN_SHIMS.items():
        lines.append(f"printf '%s' {_b64(body)} | base64 -d > \"$run/bin/{shim}\" && chmod 755 \"$run/bin/{shim}\"")
    lines += [
        (f'PATH="$run/bin:$PATH" NEUROCAAS_LAUNCH_INDEX={int(launch_index)} NEUROCAAS_INSTANCE_DIR="$run" '
         'NEUROCAAS_LOG_DIR="$run/logs" NEUROCAAS_WORKDIR="$run/work" setsid --wait bash "$run/user-data.sh"'),
        "code=$?",
        'cat "$run"/logs/*.log 2>/dev/null',
        'if [ -e "$run/poweroff" ]; then echo "NeuroCAAS dev: the command powered off (the instance stays up)"; code=0; fi',
        "exit $code",
    ]
    return lines
