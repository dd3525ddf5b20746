"""The dev server's bookkeeping, without installing or starting anything."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lettafleet.core import devserver
from lettafleet.core.devserver import DevServerError, DevServerHome

UV_LOCK = """
version = 1
requires-python = ">=3.11, <3.14"

[[package]]
name = "pydantic"
version = "2.11.7"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "letta"
version = "0.16.8"
source = { editable = "." }

[[package]]
name = "alembic"
version = "1.16.4"
source = { registry = "https://pypi.org/simple" }
"""


@pytest.fixture
def home(tmp_path: Path) -> DevServerHome:
    return DevServerHome(tmp_path / "dev-server")


def test_constraints_pin_every_locked_registry_package_but_letta(tmp_path: Path) -> None:
    lock = tmp_path / "uv.lock"
    lock.write_text(UV_LOCK)

    assert devserver.constraints_from_uv_lock(lock) == "alembic==1.16.4\npydantic==2.11.7\n"


def test_home_follows_lettafleet_dev_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LETTAFLEET_DEV_HOME", str(tmp_path / "elsewhere"))

    assert DevServerHome.default().root == tmp_path / "elsewhere"


def test_a_fresh_home_is_not_installed(home: DevServerHome) -> None:
    assert not devserver.is_installed(home)


def test_status_of_a_home_with_nothing_recorded_is_not_running(home: DevServerHome) -> None:
    result = devserver.status(home=home)

    assert result.running is False
    assert result.base_url is None


def test_down_with_nothing_recorded_stops_nothing(home: DevServerHome) -> None:
    assert devserver.down(home=home, progress=devserver.SilentProgress()) == []


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

    assert devserver.status(home=home).running is False
    assert devserver.down(home=home, progress=devserver.SilentProgress()) == []
    assert not home.state_file.exists()


def test_up_refuses_a_busy_port_before_installing_anything(home: DevServerHome) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]

        with pytest.raises(DevServerError, match=f"Port {busy_port} .* in use"):
            devserver.up(busy_port, home=home, progress=devserver.SilentProgress())

    assert not home.letta_venv.exists()
