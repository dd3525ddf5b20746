"""Where the dev server keeps its install, database and records."""

from __future__ import annotations

from pathlib import Path

import pytest

from lettafleet.plugins.devserver.home import DevServerHome


def test_home_follows_lettafleet_dev_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LETTAFLEET_DEV_HOME", str(tmp_path / "elsewhere"))

    assert DevServerHome.default().root == tmp_path / "elsewhere"
