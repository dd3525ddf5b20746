"""Cerberus's check of the fleet schema itself, remembered across runs: the schema every plugin adds to changes only
when a plugin or cerberus does, and checking it took a quarter of a second of every `validate`, `plan` and `apply`.

A schema is remembered (an empty file named by a digest of it, under the user's cache folder) only after cerberus
found it valid, so a plugin whose schema is not valid still fails with cerberus's SchemaError on every run.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import cerberus
from cerberus.schema import DefinitionSchema  # type: ignore[import-untyped]

_RUN_SPECIFIC = re.compile(r" at 0x[0-9a-f]+>")  # the repr of a function or another object with no repr of its own


def checked_validator(validator_class: type[cerberus.Validator], schema: dict[str, Any]) -> cerberus.Validator:
    """A `validator_class` of `schema`, whose check by cerberus is skipped when an earlier run found it valid."""
    validator = validator_class()
    validator.schema = _RememberedSchema(validator, schema)
    return validator


def schema_cache_folder() -> Path:
    """Where checked schemas are remembered: $XDG_CACHE_HOME/lettafleet/checked-schemas (~/.cache by default)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "lettafleet" / "checked-schemas"


class _RememberedSchema(DefinitionSchema):  # type: ignore[misc]  # cerberus has no type hints
    """Cerberus's schema, checked by cerberus unless a file says this very schema was found valid before."""

    def validate(self, schema: Any = None) -> None:
        digest = _digest(self.validator, self.schema if schema is None else schema)
        checked = schema_cache_folder() / digest if digest else None
        if checked is not None and checked.exists():
            return
        super().validate(schema)
        if checked is None:
            return
        try:
            checked.parent.mkdir(parents=True, exist_ok=True)
            checked.touch()
        except OSError:
            pass  # a read-only home: cerberus checks again next time, nothing else changes


def _digest(validator: cerberus.Validator, schema: Any) -> str | None:
    """What the check depends on: the schema, the rules and types the validator knows, cerberus's version. None
    when the schema holds something whose text differs from run to run (a function), which is never remembered."""
    described = repr((schema, validator.validation_rules, sorted(validator.types_mapping), cerberus.__version__))
    if _RUN_SPECIFIC.search(described):
        return None
    return hashlib.sha256(f"{type(validator).__qualname__}\n{described}".encode()).hexdigest()
