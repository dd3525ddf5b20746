"""Stays the parent of the App Server for as long as it runs: `python app_server_parent.py <letta> server ...`.

Letta Code exits within a second once its parent process is gone (its `startOrphanDetection`: it polls for its
parent becoming PID 1). A server that `dev-server up` starts must outlive `up`, so this small process runs it,
waits for it, passes SIGTERM and SIGINT on to it, and exits with its exit code. `down` signals this process.
Standard library only; it imports nothing from lettafleet.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from types import FrameType


def main(command: list[str]) -> int:
    server = subprocess.Popen(command)

    def pass_on(signum: int, _frame: FrameType | None) -> None:
        server.send_signal(signum)

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    return server.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
