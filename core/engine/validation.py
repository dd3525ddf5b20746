"""From file to validated fleet: parse, check every plugin's schema, run every plugin's checks.

Every problem is collected before anything is reported, each with its file, line and column.
"""

from __future__ import annotations

import math
import os
import re
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path as FilePath
from typing import Any, ClassVar, cast

import cerberus
from cerberus import errors as cerberus_errors

from lettafleet.core.engine.compiled_schema import CompiledSchema, UnsupportedSchema, compile_schema
from lettafleet.core.engine.diagnostics import Diagnostic, FleetError, Note, Path, Problem, describe_path
from lettafleet.core.engine.document import FleetDocument, load_document
from lettafleet.core.engine.files import UnreadableFile, resolve_inside
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.plugin_manager import FleetPlugins, fleet_schema

_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")  # ASCII digits; more than 30 is no setting, and int() would refuse
_DECIMAL = re.compile(r"[+-]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})([eE][+-]?[0-9]{1,3})?")
_TRUE = {"true", "yes", "on"}
# A key lettafleet knows and refuses (`kinds.refused`): its rule holds why, and what to do instead.
REFUSED = cerberus_errors.ErrorDefinition(0x101, "refused")
_FALSE = {"false", "no", "off"}


class RefusalMessages(cerberus_errors.BasicErrorHandler):
    """Cerberus's own messages, and the refusal's: its reason."""

    messages: ClassVar[dict[int, str]] = {**cerberus_errors.BasicErrorHandler.messages, REFUSED.code: "{0}"}


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

    def _normalize_coerce_boolean(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        return value


def load_fleet(path: FilePath | str, manager: FleetPlugins, *, match: str | None = None) -> Fleet:
    """Parse and validate a fleet file. Raises FleetError listing every problem found. `match`: lettactl's
    template mode (`Fleet.match`), which plugins read the file by."""
    document = load_document(path)
    compiled = compiled_schema(manager)
    data = document.data if isinstance(document.data, dict) else None
    if data is None:
        raise FleetError([document.diagnostic((), "a fleet file must be a mapping with an `agents:` list")])
    normalised, diagnostics = validate_schema(document, data, manager, compiled)
    fleet = Fleet(document=document, data=normalised, match=match)
    found = _check(fleet, manager, schema_passed=not diagnostics)
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
    validator = FleetValidator(schema)  # cerberus checks the schema itself here
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
    answers for a valid document; cerberus validates any other, and explains every problem it finds."""
    normalised = compiled(data) if compiled is not None else None
    if normalised is not None:
        return normalised, []
    schema = fleet_schema(manager)
    validator = FleetValidator(schema)
    valid = validator.validate(_lists_not_mappings(schema, data))
    return validator.document, [] if valid else _schema_diagnostics(document, validator)


NOT_A_LIST = "(a mapping)"


def _lists_not_mappings(schema: Mapping[str, Any], data: Any) -> Any:
    """`data` with each mapping written where the schema wants a list replaced by a string. Cerberus normalising
    such a mapping reads the list's item rules as the mapping's fields and crashes; a string it reports as it
    should: `must be of list type`, at the key's line."""
    if not isinstance(data, dict):
        return data
    fixed: dict[str, Any] = {}
    for key, value in data.items():
        rules = schema.get(key)
        rules = rules if isinstance(rules, Mapping) else {}
        items: Mapping[str, Any] = rules["schema"] if isinstance(rules.get("schema"), Mapping) else {}
        if rules.get("type") == "list" and isinstance(value, dict):
            fixed[key] = NOT_A_LIST
        elif rules.get("type") == "dict" and items:
            fixed[key] = _lists_not_mappings(items, value)
        elif rules.get("type") == "list" and isinstance(value, list) and isinstance(items.get("schema"), Mapping):
            fixed[key] = [_lists_not_mappings(items["schema"], item) for item in value]
        else:
            fixed[key] = value
    return fixed


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


def _schema_diagnostics(document: FleetDocument, validator: FleetValidator) -> list[Diagnostic]:
    diagnostics = []
    errors = _leaf_errors(validator._errors)
    # A refused key (lettactl's `from_bucket`) stands for the keys it replaces: their absence is no news.
    refused_in = {tuple(error.document_path[:-1]) for error in errors if error.code == REFUSED.code}
    for error in errors:
        path: Path = tuple(error.document_path)
        if error.code == cerberus_errors.REQUIRED_FIELD.code and path[:-1] in refused_in:
            continue
        message, hint = _describe(error, validator, path)
        diagnostics.append(document.diagnostic(path, message, hint))
    return sorted(set(diagnostics))


def _leaf_errors(errors: Any) -> list[cerberus_errors.ValidationError]:
    leaves = []
    for error in errors:
        if error.is_group_error:
            leaves.extend(_leaf_errors(error.child_errors))
        else:
            leaves.append(error)
    return leaves


def _describe(error: cerberus_errors.ValidationError, validator: FleetValidator, path: Path) -> tuple[str, str]:
    where = describe_path(path)
    key = path[-1] if path else ""
    code = error.code
    if code == cerberus_errors.UNKNOWN_FIELD.code:
        allowed = sorted(_allowed_keys(validator.schema, path[:-1]))
        return f"unknown key '{key}' in {describe_path(path[:-1])}", f"allowed keys here: {', '.join(allowed)}"
    if code == REFUSED.code:
        reason, what_to_do = error.info
        return f"{where} {reason}", what_to_do
    if code == cerberus_errors.REQUIRED_FIELD.code:
        return f"missing required key '{key}' in {describe_path(path[:-1])}", f"add `{key}:`"
    if code == cerberus_errors.EXCLUDES_FIELD.code:
        others = error.constraint if isinstance(error.constraint, list | tuple) else [error.constraint]
        choices = " or ".join(f"`{name}`" for name in sorted([key, *others]))
        return f"{describe_path(path[:-1])}: give either {choices}, not both", "remove one of them"
    if code == cerberus_errors.BAD_TYPE.code:
        expected = error.constraint
        return f"{where} must be {_type_name(expected)}, got {_shown(error.value)}", _TYPE_HINTS.get(str(expected), "")
    if code == cerberus_errors.EMPTY_NOT_ALLOWED.code:
        return f"{where} must not be empty", "give it a value, or remove the key"
    if code == cerberus_errors.MIN_VALUE.code:
        return f"{where} must be at least {error.constraint}, got {error.value}", f"use {error.constraint} or more"
    if code == cerberus_errors.MAX_VALUE.code:
        return f"{where} must be at most {error.constraint}, got {error.value}", f"use {error.constraint} or less"
    if code == cerberus_errors.MIN_LENGTH.code:
        return f"{where} needs at least {error.constraint} item(s)", "add the missing items"
    if code == cerberus_errors.REGEX_MISMATCH.code:
        return f"{where} {_shown(error.value)} does not match {error.constraint}", _pattern_hint(error.constraint)
    if code == cerberus_errors.UNALLOWED_VALUE.code:
        values = ", ".join(map(str, error.constraint))
        return f"{where} {_shown(error.value)} is not one of {values}", "use one of the values listed"
    return f"{where}: {validator.error_handler._format_message(error.field, error)}", ""


_TYPE_HINTS = {
    "integer": "write a plain whole number in ASCII digits, such as 32000",
    "float": "write a plain finite number in ASCII digits, such as 0.7",
    "boolean": "write true or false",
}
_ONE_CHARACTER_CLASS = re.compile(r"\^?\[([^\]]+)\]\+\$?")


def _pattern_hint(pattern: Any) -> str:
    """How to write a value that matches, in words where the pattern is one class of characters."""
    found = _ONE_CHARACTER_CLASS.fullmatch(str(pattern))
    if not found:
        return f"write a value matching {pattern}"
    allowed = found[1]
    letters = "letters" if "A-Z" in allowed else "lower-case letters"
    words = [name for part, name in (("a-z", letters), ("0-9", "digits")) if part in allowed]
    others = [f"'{char}'" for char in re.sub(r"a-z|A-Z|0-9", "", allowed)]
    names = words + others
    listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
    return f"use only {listed}, with no spaces or line breaks"


def _allowed_keys(schema: Any, path: Path) -> set[str]:
    fields = schema
    for part in path:
        if isinstance(part, int):
            continue
        rule = fields.get(part, {}) if hasattr(fields, "get") else {}
        fields = rule.get("schema", {})
        if fields.get("type") == "dict":
            fields = fields.get("schema", {})
    return set(fields.keys()) if hasattr(fields, "keys") else set()


def _type_name(expected: Any) -> str:
    names = {
        "string": "text",
        "integer": "a whole number",
        "float": "a number",
        "boolean": "true or false",
        "list": "a list",
        "dict": "a mapping",
    }
    if isinstance(expected, list | tuple):
        return " or ".join(names.get(item, str(item)) for item in expected)
    return names.get(expected, str(expected))


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
