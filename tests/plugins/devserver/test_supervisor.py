"""The dev server's bookkeeping, without installing or starting anything."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lettafleet.plugins.devserver import supervisor
from lettafleet.plugins.devserver.home import DevServerError, DevServerHome
from lettafleet.plugins.devserver.progress import SilentProgress


@pytest.fixture
def home(tmp_path: Path) -> DevServerHome:
    return DevServerHome(tmp_path / "dev-server")


def test_status_of_a_home_with_nothing_recorded_is_not_running(home: DevServerHome) -> None:
    result = supervisor.status(home=home)

    assert result.running is False
    assert result.base_url is None


def test_down_with_nothing_recorded_stops_nothing(home: DevServerHome) -> None:
    assert supervisor.down(home=home, progress=SilentProgress()) == []


def test_status_reports_not_running_when_the_recorded_processes_are_gone(home: DevServerHome) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(finished.stdout)
    home.root.mkdir(parents=True)
    home.state_file.write_text(
        json.dumps(
            {
                "letta_pid": dead_pid,
                "letta_started": None,
                "postgres_pid": dead_pid,
                "postgres_started": None,
                "letta_port": 1,
                "postgres_port": 2,
                "base_url": "http://127.0.0.1:1",
                "configuration": {},
            }
        )
    )

    assert supervisor.status(home=home).running is False
    assert supervisor.down(home=home, progress=SilentProgress()) == []
    assert not home.state_file.exists()


def test_up_refuses_a_busy_port_before_installing_anything(home: DevServerHome) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]

        with pytest.raises(DevServerError, match=f"Port {busy_port} .* in use"):
            supervisor.up(busy_port, home=home, progress=SilentProgress())

    assert not home.letta_venv.exists()
