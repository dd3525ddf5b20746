"""Ctrl-C while an agent's memory files are being pushed (one commit takes every file free to go), through the
stand-in for hosted Letta's git-backed memory (tests/fakes/hosted_git_memory.py) in front of the real dev server:
the push is held at the stand-in, SIGINT reaches the apply, then the push lands or is refused. Either way the report
says what became of each file of the push, the apply exits 130 with its lock released, and the next apply converges
with nothing written twice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from lettafleet.core.engine.locking import find_lock
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.backends.letta_v1.locks import IdentityLocks
from tests.fakes.fault_proxy import Faults, Hold, Refusal
from tests.fakes.hosted_git_memory import HostedGitMemoryStandIn
from tests.integration.hosted_memfs_fleet import KEY, agent_named, assert_no_changes, ok, run, write_fleet

pytest_plugins = ["tests.integration.hosted_memfs_fleet"]

EDITED = {  # file -> (the text in the fleet file before, after)
    "system/tone.md": ("Short sentences.", "Short, kind sentences."),
    "system/escalation.md": ("Escalate when money is involved.", "Escalate when money or safety is involved."),
    "skills/triage/SKILL.md": ("Pick urgent, soon or whenever.", "Pick urgent or later."),
}
RECEIVE_PACK = r"/git-receive-pack$"


def applied_then_edited(
    hosted: HostedGitMemoryStandIn, client: LettaClient, name: str, tmp_path: Path
) -> tuple[Path, str, str]:
    """The agent `name` applied with git-backed memory, then three of its files edited in the fleet's folder (from
    a file, from the template folder, a skill). Returns the fleet, the agent's id and a lock id of its own."""
    fleet = write_fleet(tmp_path, [(name, "memfs")])
    ok(run(hosted, "apply", "--no-lock", "-f", str(fleet)))
    for path, (before, after) in EDITED.items():
        for source in tmp_path.rglob(Path(path).name):
            if before in source.read_text():
                source.write_text(source.read_text().replace(before, after))
    return fleet, str(agent_named(client, name)["id"]), f"memfs-ctrl-c-{uuid.uuid4().hex[:8]}"


def interrupted_while_pushing(hosted: HostedGitMemoryStandIn, fleet: Path, lock_id: str, faults: Faults) -> tuple:
    """Apply `fleet` one change at a time with its lock; SIGINT once its push is held at the stand-in, then let the
    push go on as `faults` says. Returns the exit code and the output."""
    hosted.faults = faults
    command = [str(Path(sys.executable).with_name("lettafleet")), "apply", "-f", str(fleet), "--parallelism", "1"]
    applying = subprocess.Popen(
        [*command, "--lock-id", lock_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LETTA_BASE_URL": hosted.url, "LETTA_API_KEY": KEY},
        start_new_session=True,
    )
    try:
        hosted.wait_until_held()
        applying.send_signal(signal.SIGINT)  # to the apply's process only, as a terminal's Ctrl-C reaches Python
        assert applying.stderr is not None
        while "Interrupted: no new change starts" not in (line := applying.stderr.readline()):
            assert line, "the apply ended before it took the Ctrl-C"
        time.sleep(0.5)
    finally:
        hosted.release()
    code = applying.wait(90)
    out, err = applying.communicate()
    assert hosted.hold_done.wait(30)
    hosted.faults = Faults()
    return code, out + err


def files_section(output: str, heading: str) -> str:
    """The report's line `heading (N): address, ...` (e.g. "Not attempted")."""
    found = re.search(rf"^{heading} \(\d+\): .*$", output, re.M)
    return found.group(0) if found else ""


def failed_line(output: str, path: str) -> str:
    """The report's line for the memory file `path` that failed."""
    found = re.search(rf'^  \S+memory_file\["{re.escape(path)}"\]: failed - .*$', output, re.M)
    return found.group(0) if found else ""


def test_ctrl_c_while_a_push_is_in_flight_reports_its_files_applied_and_the_next_apply_writes_nothing_again(
    hosted, client: LettaClient, names, tmp_path
):
    fleet, agent_id, lock_id = applied_then_edited(hosted, client, names[0], tmp_path)

    code, output = interrupted_while_pushing(hosted, fleet, lock_id, Faults(hold=Hold("POST", RECEIVE_PACK)))

    assert code == 130, output
    assert "Traceback" not in output and KEY not in output
    assert "memory_file" not in files_section(output, "Not attempted"), output
    assert all(f'memory_file["{path}"]' in files_section(output, "Applied") for path in EDITED), output
    assert find_lock(IdentityLocks(client), lock_id) is None
    files = hosted.files_at_head(agent_id)
    assert all(files[path].endswith(f"{after}\n") for path, (_, after) in EDITED.items())

    pushes = hosted.pushes()
    assert_no_changes(hosted, fleet)  # the record caught up: no file is the agent's own edit, none to write
    ok(run(hosted, "apply", "--no-lock", "-f", str(fleet)))
    assert hosted.pushes() == pushes


def test_ctrl_c_while_a_push_is_in_flight_that_is_then_refused_reports_its_files_failed_and_the_next_apply_writes_them(
    hosted, client: LettaClient, names, tmp_path
):
    fleet, agent_id, lock_id = applied_then_edited(hosted, client, names[0], tmp_path)
    refused = Faults(hold=Hold("POST", RECEIVE_PACK), refuse=1.0, refusals=(Refusal(403),), only=RECEIVE_PACK)

    code, output = interrupted_while_pushing(hosted, fleet, lock_id, refused)

    assert code == 130, output
    assert "Traceback" not in output and KEY not in output
    assert "memory_file" not in files_section(output, "Not attempted"), output
    assert all("403" in failed_line(output, path) for path in EDITED), output
    assert find_lock(IdentityLocks(client), lock_id) is None
    files = hosted.files_at_head(agent_id)
    assert all(files[path].endswith(f"{before}\n") for path, (before, _) in EDITED.items())

    planned = ok(run(hosted, "plan", "-f", str(fleet)))
    assert all(f'~ memory file "{path}"' in planned for path in EDITED), planned
    assert "edited by the agent" not in planned
    pushes = hosted.pushes()
    ok(run(hosted, "apply", "--no-lock", "-f", str(fleet)))
    assert hosted.pushes() == pushes + 1  # the three files, one commit
    files = hosted.files_at_head(agent_id)
    assert all(files[path].endswith(f"{after}\n") for path, (_, after) in EDITED.items())
    assert_no_changes(hosted, fleet)
