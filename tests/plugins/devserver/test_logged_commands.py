"""Setup commands' logs: a secret a command prints is masked in the log file and in the error that quotes it."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from lettafleet.plugins.devserver.home import DevServerError
from lettafleet.plugins.devserver.logged_commands import log_tail, run_logged

PASSWORD = "s3cret/pass+word"


def printing(*lines: str, exit_code: int = 0) -> list[str]:
    """A command that prints `lines` and exits with `exit_code`."""
    return [sys.executable, "-c", f"import sys; print({chr(10).join(lines)!r}); sys.exit({exit_code})"]


def test_a_secret_a_command_prints_never_reaches_its_log_in_any_form(tmp_path: Path) -> None:
    log = tmp_path / "install.log"
    uri = f"postgresql://letta:{quote(PASSWORD, safe='')}@127.0.0.1:5432/letta"

    run_logged(printing(f"password {PASSWORD}", f"connecting to {uri}"), log=log, secret=PASSWORD)

    written = log.read_text()
    assert "connecting to postgresql://letta:***@127.0.0.1:5432/letta" in written
    assert "password ***" in written
    assert "s3cret" not in written and "pass" not in written.replace("password", "")


def test_a_failed_command_quotes_its_log_with_the_secret_masked(tmp_path: Path) -> None:
    log = tmp_path / "install.log"

    with pytest.raises(DevServerError, match="failed \\(exit 3\\)") as raised:
        run_logged(printing(f"bad password {PASSWORD}", exit_code=3), log=log, secret=PASSWORD)

    assert "bad password ***" in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_the_tail_of_a_log_masks_a_secret_written_there_by_a_server(tmp_path: Path) -> None:
    log = tmp_path / "letta.log"
    log.write_text(f"start\nusing {quote(PASSWORD, safe='')} as the database password\n")

    assert log_tail(log, secret=PASSWORD) == "start\nusing *** as the database password"
