"""The dev App Server's bookkeeping, without installing Letta Code: where it lives, what it refuses, how it runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lettafleet.core.cli.app import main
from lettafleet.plugins.devserver import app_server, app_server_parent
from lettafleet.plugins.devserver.app_server_home import AppServerHome, AppServerRecord
from lettafleet.plugins.devserver.home import DevServerError, DevServerHome
from lettafleet.plugins.devserver.progress import SilentProgress
from lettafleet.plugins.devserver.supervisor import process_start_time


@pytest.fixture
def home(tmp_path: Path) -> DevServerHome:
    return DevServerHome(tmp_path / "dev-server")


def test_each_app_server_version_has_its_own_venv_apart_from_the_v1_server(home: DevServerHome) -> None:
    current, older = AppServerHome(home, "0.34.12"), AppServerHome(home, "0.32.18")

    # Both are PyPI `letta`: sharing a venv with letta 0.16.8 (or each other) would replace it.
    venvs = {home.letta_venv, current.venv, older.venv}
    assert len(venvs) == 3
    assert current.backend_dir != older.backend_dir and current.home != older.home


def test_up_without_git_says_so_before_installing_anything(
    home: DevServerHome, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))

    with pytest.raises(DevServerError, match=r"`git` is not on PATH.*apt-get install git"):
        app_server.up(0, home=home, progress=SilentProgress())

    assert not AppServerHome(home).venv.exists()


def test_the_cli_reports_a_missing_git_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LETTAFLEET_DEV_HOME", str(tmp_path / "dev-server"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))

    result = CliRunner().invoke(main, ["dev-server", "up", "--app-server"])

    assert result.exit_code == 1
    assert "git" in result.output and "Traceback" not in result.output


def test_status_with_nothing_recorded_says_how_to_start_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LETTAFLEET_DEV_HOME", str(tmp_path / "dev-server"))

    result = CliRunner().invoke(main, ["dev-server", "status", "--app-server-version", "0.32.18"])

    assert result.exit_code == 0
    assert "lettafleet dev-server up --app-server-version 0.32.18" in result.output


def test_the_parent_process_keeps_the_server_alive_and_passes_sigterm_on(tmp_path: Path) -> None:
    """Letta Code exits once its parent is gone; the parent `up` leaves behind stays, and stops it on SIGTERM."""
    child_pid_file = tmp_path / "child.pid"
    sleeper = f"import os, time; open({str(child_pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    parent = subprocess.Popen([sys.executable, app_server_parent.__file__, sys.executable, "-c", sleeper])
    while not child_pid_file.exists() or not child_pid_file.read_text():
        time.sleep(0.05)
    child_pid = int(child_pid_file.read_text())

    parent.terminate()

    assert parent.wait(timeout=10) != 0
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)


def test_up_leaves_a_recorded_server_that_is_alive_but_silent_alone(home: DevServerHome) -> None:
    """A busy server answers late; `up` from another test run must not kill it and start another."""
    silent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        server = AppServerHome(home)
        server.root.mkdir(parents=True)
        AppServerRecord(pid=silent.pid, started=process_start_time(silent.pid), port=1, version="0.34.12").save(server)

        with pytest.raises(DevServerError, match=r"running \(pid \d+\) but does not answer"):
            app_server.up(0, home=home, progress=SilentProgress())

        assert silent.poll() is None
    finally:
        silent.kill()
        silent.wait()
