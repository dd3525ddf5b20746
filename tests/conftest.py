"""Fixtures every test may use: writing fleet files, and a plugin manager with the installed plugins."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pluggy
import pytest
from hypothesis import settings

from lettafleet.core.engine.plugin_manager import get_plugin_manager

FIXTURES = Path(__file__).parent / "fixtures"

# Property tests check behaviour, never speed: a loaded 2-core CI machine must not fail one for a slow example.
settings.register_profile("lettafleet", deadline=None)
settings.load_profile("lettafleet")


@pytest.fixture
def manager() -> pluggy.PluginManager:
    return get_plugin_manager()


@pytest.fixture
def write_fleet(tmp_path: Path) -> Callable[..., Path]:
    """Write a fleet file (dedented) into a temp dir, with optional extra files beside it."""

    def write(text: str, name: str = "fleet.yaml", files: dict[str, str] | None = None) -> Path:
        for relative, content in (files or {}).items():
            target = tmp_path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def seed_fleet(tmp_path: Path) -> Path:
    """A copy of the seed's fleet.yaml (lettactl's documented example) with its knowledge file."""
    target = tmp_path / "seed"
    shutil.copytree(FIXTURES / "seed", target)
    return target / "fleet.yaml"
