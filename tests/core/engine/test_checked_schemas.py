"""Cerberus's check of the fleet schema is remembered across runs only for a schema it found valid."""

from __future__ import annotations

from pathlib import Path

import pytest
from cerberus import SchemaError

from lettafleet.core.engine.checked_schemas import checked_validator, schema_cache_folder
from lettafleet.core.engine.validation import FleetValidator


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))


def test_a_schema_that_is_not_valid_fails_on_every_run() -> None:
    for _ in range(2):
        with pytest.raises(SchemaError, match="nonsense"):
            checked_validator(FleetValidator, {"name": {"type": "nonsense"}})
    assert not schema_cache_folder().exists() or not any(schema_cache_folder().iterdir())


def test_a_valid_schema_is_checked_by_cerberus_once(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = {"name": {"type": "string", "required": True}}
    assert checked_validator(FleetValidator, schema).validate({"name": "a"})

    def checked_again(*_: object) -> None:
        raise AssertionError("cerberus checked a schema it had found valid before")

    monkeypatch.setattr("cerberus.schema.DefinitionSchema._validate", checked_again)
    fresh = checked_validator(FleetValidator, schema)
    assert fresh.validate({"name": "a"})
    assert not fresh.validate({"name": 1})


def test_a_changed_schema_is_checked_again() -> None:
    checked_validator(FleetValidator, {"name": {"type": "string"}})
    with pytest.raises(SchemaError):
        checked_validator(FleetValidator, {"name": {"type": "string", "maxlength": "long"}})
