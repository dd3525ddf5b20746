"""From file to validated fleet: parse, check every plugin's schema, run every plugin's checks.

Every problem is collected before anything is reported, each with its file, line and column.
"""

from __future__ import annotations

import copy
import math
import os
import re
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path as FilePath
from typing import Any, cast

import cerberus
from cerberus import errors as cerberus_errors

from lettafleet.core.engine.checked_schemas import checked_validator
from lettafleet.core.engine.compiled_schema import CompiledSchema, UnsupportedSchema, compile_schema
from lettafleet.core.engine.diagnostics import Diagnostic, FleetError, Note, Path, Problem
from lettafleet.core.engine.document import FleetDocument, load_document
from lettafleet.core.engine.files import UnreadableFile, resolve_inside
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.plugin_manager import FleetPlugins, fleet_schema
from lettafleet.core.engine.schema_errors import (
    REFUSED,
    RefusalMessages,
    holds_secrets_at,
    reported_errors,
    schema_diagnostics,
)
from lettafleet.core.letta.masking import SecretMasker

_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")  # ASCII digits; more than 30 is no setting, and int() would refuse
_DECIMAL = re.compile(r"[+-]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})([eE][+-]?[0-9]{1,3})?")
_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}


class FleetValidator(cerberus.Validator):
    """Cerberus with the conversions strictyaml's all-strings data needs, and the `refused` rule."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("error_handler", RefusalMessages)
        super().__init__(*args, **kwargs)

    def _normalize_coerce_integer(self, value: Any) -> Any:
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            return int(value.strip())
        return value  # left as is: the type rule then reports it, with the value, at its line

    def _normalize_coerce_float(self, value: Any) -> Any:
        # Only ASCII decimal notation: Python's float() also takes "nan", "inf", "1_0" and non-ASCII digits.
        if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
            number = float(value.strip())
            return number if math.isfinite(number) else value
        return value

    def _validate_regex(self, pattern: str, field: str, value: Any) -> None:
        """{'type': 'string'}"""
        # The whole value must match: cerberus appends `$`, which also matches before a final newline.
        if isinstance(value, str) and not re.fullmatch(pattern, value):
            self._error(field, cerberus_errors.REGEX_MISMATCH)

    def _validate_refused(self, reason: list[str], field: str, value: Any) -> None:
        """{'type': 'list', 'items': [{'type': 'string'}, {'type': 'string'}]}"""
        self._error(field, REFUSED, *reason)

    def _BareValidator__normalize_containers(self, mapping: Any, schema: Any) -> None:
        """Cerberus's normalising of what lists and mappings hold, only for values of a type their field declares.
        Its `schema` rule means a list's item rules or a mapping's keys, chosen by the value: a mapping given where a
        list belongs would have the item rules read as its keys (`agents: {type: x}` crashed cerberus). The type
        rule reports such a value instead, at every depth (child validators are of this class too)."""
        fitting = {
            field: rules if field not in mapping or self._declared_type_fits(rules, mapping[field]) else _flat(rules)
            for field, rules in schema.items()
        }
        super()._BareValidator__normalize_containers(mapping, fitting)

    def _declared_type_fits(self, rules: Any, value: Any) -> bool:
        """Whether `value` is of a type `rules` declares (or they declare none, or one cerberus checks otherwise)."""
        declared = rules.get("type") if isinstance(rules, Mapping) else None
        if declared is None:
            return True
        for name in [declared] if isinstance(declared, str) else declared:
            definition = self.types_mapping.get(name)
            if definition is None or (
                isinstance(value, definition.included_types) and not isinstance(value, definition.excluded_types)
            ):
                return True
        return False

    def _normalize_coerce_boolean(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        return value


_CONTAINER_RULES = ("schema", "items", "keysrules", "valuesrules", "allow_unknown", "purge_unknown")


def _flat(rules: Any) -> Any:
    """A field's rules without those about what its value holds."""
    if not isinstance(rules, Mapping):
        return rules
    return {rule: setting for rule, setting in rules.items() if rule not in _CONTAINER_RULES}


def load_fleet(
    path: FilePath | str,
    manager: FleetPlugins,
    *,
    match: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Fleet:
    """Parse and validate a fleet file. Raises FleetError listing every problem found. `match`: lettactl's
    template mode (`Fleet.match`), which plugins read the file by; `options`: the values of plugins' options
    (`Fleet.options`)."""
    document = load_document(path)
    compiled = compiled_schema(manager)
    data = document.data if isinstance(document.data, dict) else None
    if data is None:
        message = "a fleet file must be a mapping with an `agents:` list"
        raise FleetError(
            [document.diagnostic((), message, "start the file with `agents:` and list the agents under it")]
        )
    normalised, diagnostics = validate_schema(document, data, manager, compiled)
    fleet = Fleet(document=document, data=normalised, match=match, options=dict(options or {}))
    found = _secrets_hidden(_check(fleet, manager, schema_passed=not diagnostics), fleet_schema(manager), data)
    diagnostics += locate(document, [problem for problem in found if not isinstance(problem, Note)])
    if diagnostics:
        raise FleetError(sorted(set(diagnostics)))
    notes = tuple(replace(note, message=f"note: {note.message}") for note in found if isinstance(note, Note))
    return replace(fleet, unlocated_notes=notes)


# Each plugin manager's schema, compiled once (None: it uses a rule the compiler does not mirror), with the schema
# it was compiled from, so that a manager given another schema is compiled again.
_COMPILED: weakref.WeakKeyDictionary[FleetPlugins, tuple[dict[str, Any], CompiledSchema | None]] = (
    weakref.WeakKeyDictionary()
)


def compiled_schema(manager: FleetPlugins) -> CompiledSchema | None:
    """The manager's schema compiled (see core.engine.compiled_schema), or None when cerberus must do every check.
    Raises cerberus's SchemaError, as validating would, when a plugin's schema is not a valid cerberus schema."""
    schema = fleet_schema(manager)
    cached = _COMPILED.get(manager)
    if cached is not None and cached[0] is schema:
        return cached[1]
    validator = checked_validator(FleetValidator, schema)  # cerberus checks the schema itself here (once)
    try:
        compiled: CompiledSchema | None = compile_schema(schema, validator)
    except UnsupportedSchema:
        compiled = None
    _COMPILED[manager] = (schema, compiled)
    return compiled


def validate_schema(
    document: FleetDocument, data: dict[str, Any], manager: FleetPlugins, compiled: CompiledSchema | None
) -> tuple[Mapping[str, Any], list[Diagnostic]]:
    """The document normalised by the schema, and its schema problems (none when it is valid). The compiled schema
    answers for a valid document; cerberus validates any other, and explains every problem it finds. Of a document
    that is not valid, the values the schema refused are left out of the normalised one: a plugin's check then
    never reports again what the schema reported (`limit: -1` is one error, not two)."""
    normalised = compiled(data) if compiled is not None else None
    if normalised is not None:
        return normalised, []
    validator = checked_validator(FleetValidator, fleet_schema(manager))
    if validator.validate(data):
        return validator.document, []
    errors = reported_errors(validator._errors)
    return _without(copy.deepcopy(validator.document), errors), schema_diagnostics(document, validator.schema, errors)


def _without(normalised: dict[str, Any], errors: list[cerberus_errors.ValidationError]) -> dict[str, Any]:
    """`normalised` without the values at the errors' places; a list with a refused item is left out whole, so
    that the indexes of what remains are still the file's."""
    for error in errors:
        path = tuple(error.document_path)
        while path:
            parent = value_at(normalised, path[:-1])
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
                break
            path = path[:-1]
    return normalised


def value_at(data: Any, path: Path) -> Any:
    """What the document holds at `path`; None where it holds nothing."""
    for part in path:
        if isinstance(data, Mapping) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


def _check(fleet: Fleet, manager: FleetPlugins, schema_passed: bool) -> list[Problem]:
    """Every plugin's cross-checks. After a schema failure they still run, one plugin at a time, so one pass
    reports as much as it can; a check that trips over the invalid data is simply not reported this time."""
    problems: list[Problem] = _root_path_problems(fleet)
    if schema_passed:
        return problems + [problem for found in manager.hook.lettafleet_check(fleet=fleet) for problem in found]
    for implementation in manager.hook.lettafleet_check.get_hookimpls():
        try:
            # pluggy types a plugin's function as returning object; the hookspec says it returns problems.
            problems.extend(cast(Iterable[Problem], implementation.function(fleet=fleet)))
        except (KeyError, TypeError, AttributeError, ValueError, OSError):
            continue
    return problems


def _root_path_problems(fleet: Fleet) -> list[Problem]:
    """`root_path` must name a folder inside the fleet file's directory: every file the fleet names is read from
    there, and still may not leave the fleet file's directory."""
    if not isinstance(fleet.data.get("root_path"), str) or not fleet.root_path:
        return []
    try:
        resolved = resolve_inside(fleet.folder, fleet.root_path)
    except UnreadableFile as error:
        return [Problem(("root_path",), f"root_path {error.reason}: {fleet.root_path}", error.hint)]
    if not os.path.isdir(resolved):
        return [Problem(("root_path",), f"root_path is not a folder: {fleet.root_path}", "name a folder")]
    return []


def locate(document: FleetDocument, problems: list[Problem]) -> list[Diagnostic]:
    return [document.diagnostic(problem.path, problem.message, problem.hint) for problem in problems]


def _secrets_hidden(problems: list[Problem], schema: Mapping[str, Any], data: Mapping[str, Any]) -> list[Problem]:
    """The plugins' problems, each about a key that holds secrets (`secret()` in its schema) with the value
    written there masked, should a message repeat it."""
    hidden = []
    for problem in problems:
        value = value_at(data, problem.path)
        if isinstance(value, str) and value and holds_secrets_at(schema, problem.path):
            mask = SecretMasker([value])
            problem = replace(problem, message=mask(problem.message), hint=mask(problem.hint))
        hidden.append(problem)
    return hidden
