"""Installing the dev server: which versions are pinned, and when an install counts as done."""

from __future__ import annotations

from pathlib import Path

import pytest

from lettafleet.plugins.devserver import installing
from lettafleet.plugins.devserver.home import DevServerHome

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

    assert installing.constraints_from_uv_lock(lock) == "alembic==1.16.4\npydantic==2.11.7\n"


def test_a_fresh_home_is_not_installed(home: DevServerHome) -> None:
    assert not installing.is_installed(home)
