"""The apply lock's name and the --lock-timeout value, which need no server (the lock itself is proven against
the real one in tests/integration/test_apply_lock.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lettafleet.core.cli.app import main
from lettafleet.core.cli.options import Duration
from lettafleet.core.engine.locking import default_lock_id


def test_two_checkouts_of_one_repository_name_the_same_lock(tmp_path: Path) -> None:
    for checkout in ("laptop/work/repo", "ci/runner/_work/repo"):
        (tmp_path / checkout / ".git").mkdir(parents=True)
        (tmp_path / checkout / "fleets").mkdir()
    ids = {
        default_lock_id(tmp_path / checkout / "fleets" / "prod.yaml")
        for checkout in ("laptop/work/repo", "ci/runner/_work/repo")
    }
    assert ids == {"fleets/prod.yaml"}


def test_outside_a_repository_the_lock_is_named_by_the_path_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fleets").mkdir()
    monkeypatch.chdir(tmp_path)
    assert default_lock_id(Path("fleets/prod.yaml")) == "fleets/prod.yaml"


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0), ("0s", 0), ("45", 45), ("90s", 90), ("5m", 300), ("1h30m", 5400)]
)
def test_lock_timeouts_are_written_like_terraform_durations(text: str, seconds: float) -> None:
    assert Duration().convert(text, None, None) == seconds


def test_a_misspelled_lock_timeout_is_a_clear_error_and_contacts_no_server(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["apply", "-f", str(tmp_path / "fleet.yaml"), "--lock-timeout", "5 minutes"],
        env={"LETTA_BASE_URL": "http://127.0.0.1:9"},
    )
    words = " ".join(result.output.replace("│", " ").split())  # the message as read, without its box
    assert result.exit_code == 1
    assert "'5 minutes' is not a duration: write it like 0s, 30s, 5m or 1h30m" in words
