"""The boot script hands the analysis exactly the submitted strings, whatever they hold."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from chalicelib import bootscript
from tests.conftest import GROUP, submit_doc

HOSTILE = f"{GROUP}/inputs/my data \"quoted\" 'single' $(touch PWNED) `touch PWNED2`; touch PWNED3 $HOME.tif"
FAKE_MAIN = """#!/bin/bash
for arg in "$@"; do printf '%s\\0' "$arg"; done > "$ARGS_FILE"
"""


def run_boot_script(user_data: str, index: int, home: Path) -> list[str]:
    """Run a generated boot script under bash with a fake analysis; return the arguments it got."""
    shims = home / "shims"
    shims.mkdir(exist_ok=True)
    (shims / "shutdown").write_text("#!/bin/sh\nexit 0\n")
    (shims / "shutdown").chmod(0o755)
    main = home / "neurocaas_remote" / "run_main.sh"
    main.parent.mkdir(exist_ok=True)
    main.write_text(FAKE_MAIN)
    main.chmod(0o755)
    args_file = home / f"args-{index}"
    env = {
        "PATH": f"{shims}:/usr/bin:/bin",
        "HOME": str(home),
        "ARGS_FILE": str(args_file),
        "NEUROCAAS_LAUNCH_INDEX": str(index),
        "NEUROCAAS_LOG_DIR": str(home / "logs"),
    }
    script = home / "user-data.sh"
    script.write_text(user_data)
    done = subprocess.run(["bash", str(script)], cwd=home, env=env, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    return args_file.read_bytes().decode().split("\0")[:-1]


@pytest.mark.parametrize("template", [
    'cd "$HOME"; neurocaas_remote/run_main.sh "{}" "{}" "{}" "{}"; . /dev/null; true',
    "cd \"$HOME\" && neurocaas_remote/run_main.sh {} '{}' {} \"{}\"",
])
def test_submitted_strings_arrive_as_exact_arguments(uploaded, tmp_path: Path, template: str) -> None:
    uploaded.put(HOSTILE)
    config = f"{GROUP}/configs/it's $(here).yaml"
    uploaded.put(config, "a: 1\n")
    result = uploaded.submit(submit_doc(HOSTILE, f"{GROUP}/inputs/a.tif", config=config), command=template)
    assert result.plan is not None, result.message
    user_data = result.plan.batches[0].user_data

    received = [run_boot_script(user_data, index, tmp_path) for index in (0, 1)]

    results = f"results/job__{uploaded.settings.bucket_name}_2026-11-25T10-00-00"
    assert received[0] == [uploaded.settings.bucket_name, HOSTILE, results, config]
    assert received[1] == [uploaded.settings.bucket_name, f"{GROUP}/inputs/a.tif", results, config]
    assert not list(tmp_path.rglob("PWNED*"))


def test_a_launch_index_without_a_row_stops_instead_of_guessing(uploaded, tmp_path: Path) -> None:
    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif"))
    script = tmp_path / "user-data.sh"
    script.write_text(result.plan.batches[0].user_data)
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "shutdown").write_text("#!/bin/sh\necho shutdown \"$@\" >> \"$HOME/shutdown.log\"\n")
    (shims / "shutdown").chmod(0o755)
    env = {"PATH": f"{shims}:/usr/bin:/bin", "HOME": str(tmp_path), "NEUROCAAS_LAUNCH_INDEX": "7"}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, timeout=30)
    assert done.returncode == 1
    assert b"no row 7" in done.stderr
    assert "shutdown -h now" in (tmp_path / "shutdown.log").read_text()


def test_every_placeholder_form_is_bound_to_a_variable() -> None:
    bound = bootscript.bind_command("x \"{}\" '{}' {} \"{}\"")
    assert bound == 'x "$NEUROCAAS_BUCKET" "$NEUROCAAS_DATASET" "$NEUROCAAS_RESULTPATH" "$NEUROCAAS_CONFIG"'
    with pytest.raises(ValueError):
        bootscript.bind_command("only {} {}")


def test_the_script_sets_its_lifetime_and_shuts_down(uploaded) -> None:
    uploaded.put(f"{GROUP}/configs/long.json", '{"__duration__": 90.5}')
    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif", config=f"{GROUP}/configs/long.json"))
    user_data = result.plan.batches[0].user_data
    assert "shutdown -h +91 " in user_data
    assert user_data.rstrip().endswith("exit $code")
    assert len(user_data.encode()) < bootscript.USER_DATA_LIMIT
    assert os.linesep == "\n"
