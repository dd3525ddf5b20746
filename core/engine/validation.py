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
from typing import Any, ClassVar, cast

import cerberus
from cerberus import errors as cerberus_errors

from lettafleet.core.engine.compiled_schema import CompiledSchema, UnsupportedSchema, compile_schema
from lettafleet.core.engine.diagnostics import Diagnostic, FleetError, Note, Path, Problem, describe_path
from lettafleet.core.engine.document import FleetDocument, load_document
from lettafleet.core.engine.files import UnreadableFile, resolve_inside
from lettafleet.core.engine.fleet import Fleet
from lettafleet.core.engine.kinds import holds_secrets
from lettafleet.core.engine.plugin_manager import FleetPlugins, fleet_schema
from lettafleet.core.letta.masking import SecretMasker

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


def load_fleet(path: FilePath | str, manager: FleetPlugins) -> Fleet:
    """Parse and validate a fleet file. Raises FleetError listing every problem found."""
    document = load_document(path)
    compiled = compiled_schema(manager)
    data = document.data if isinstance(document.data, dict) else None
    if data is None:
        message = "a fleet file must be a mapping with an `agents:` list"
        raise FleetError(
            [document.diagnostic((), message, "start the file with `agents:` and list the agents under it")]
        )
    normalised, diagnostics = validate_schema(document, data, manager, compiled)
    fleet = Fleet(document=document, data=normalised)
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
    answers for a valid document; cerberus validates any other, and explains every problem it finds. Of a document
    that is not valid, the values the schema refused are left out of the normalised one: a plugin's check then
    never reports again what the schema reported (`limit: -1` is one error, not two)."""
    normalised = compiled(data) if compiled is not None else None
    if normalised is not None:
        return normalised, []
    validator = FleetValidator(fleet_schema(manager))
    if validator.validate(data):
        return validator.document, []
    errors = _reported_errors(validator._errors)
    return _without(copy.deepcopy(validator.document), errors), _schema_diagnostics(document, validator.schema, errors)


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


def _schema_diagnostics(
    document: FleetDocument, schema: Mapping[str, Any], errors: list[cerberus_errors.ValidationError]
) -> list[Diagnostic]:
    diagnostics: dict[tuple[Path, str], Diagnostic] = {}
    # A refused key (lettactl's `from_bucket`) stands for the keys it replaces: their absence, or their presence
    # beside it, is no news.
    refused_in = {tuple(error.document_path[:-1]) for error in errors if error.code == REFUSED.code}
    choices = _missing_choices(schema, errors)
    for error in errors:
        path: Path = tuple(error.document_path)
        excluding = error.code == cerberus_errors.EXCLUDES_FIELD.code
        if (excluding or error.code == cerberus_errors.REQUIRED_FIELD.code) and path[:-1] in refused_in:
            continue
        message, hint = choices[path] if path in choices else _describe(error, schema, path)
        diagnostic = document.diagnostic(path, message, hint)
        # Two keys that exclude each other are one problem, reported at the later of the two.
        place = (path[:-1], message) if excluding else (path, message)
        if place not in diagnostics or diagnostics[place] < diagnostic:
            diagnostics[place] = diagnostic
    return sorted(set(diagnostics.values()))


def _reported_errors(errors: Any) -> list[cerberus_errors.ValidationError]:
    """Cerberus's errors, one per problem: the errors inside its groups, and of an `anyof` no choice passes, only
    the errors of the one choice the value has the shape of (a list whose items are wrong), else the `anyof`
    itself, reported once."""
    reported = []
    for error in errors:
        if error.is_logic_error:
            reported.extend(_chosen_branch(error))
        elif error.is_group_error:
            reported.extend(_reported_errors(error.child_errors))
        else:
            reported.append(error)
    return reported


def _chosen_branch(error: cerberus_errors.ValidationError) -> list[cerberus_errors.ValidationError]:
    depth = len(error.document_path)
    branches = [_reported_errors(branch) for branch in error.definitions_errors.values()]
    shaped = [branch for branch in branches if all(len(each.document_path) > depth for each in branch)]
    return shaped[0] if len(shaped) == 1 else [error]


def _missing_choices(
    schema: Mapping[str, Any], errors: list[cerberus_errors.ValidationError]
) -> dict[Path, tuple[str, str]]:
    """One message for required keys missing together that exclude each other (`from_env` or `value`), by the
    path of each: the message is one problem, and is reported once."""
    missing: dict[Path, set[str]] = {}
    for error in errors:
        if error.code == cerberus_errors.REQUIRED_FIELD.code and error.document_path:
            missing.setdefault(tuple(error.document_path[:-1]), set()).add(str(error.document_path[-1]))
    choices: dict[Path, tuple[str, str]] = {}
    for parent, names in missing.items():
        fields = _fields_at(schema, parent)
        for name in sorted(names):
            excluded = fields.get(name, {}).get("excludes", ()) if isinstance(fields.get(name), Mapping) else ()
            together = sorted({name} | (set([excluded] if isinstance(excluded, str) else excluded) & names))
            if len(together) > 1:
                listed = " or ".join(f"`{each}:`" for each in together)
                message = f"missing required key in {describe_path(_names_hidden(schema, parent))}: give {listed}"
                choices.update({(*parent, each): (message, "add one of them") for each in together})
    return choices


def _describe(error: cerberus_errors.ValidationError, schema: Mapping[str, Any], path: Path) -> tuple[str, str]:
    """The message and hint of one schema error. Under a key that holds secrets, no value is shown."""
    secret = holds_secrets_at(schema, path)
    named = _names_hidden(schema, path)
    where, parent = describe_path(named), describe_path(named[:-1])
    if secret and "keysrules" in error.schema_path:  # the value is the key itself
        where = f"a key of {parent}"
    shown = _kind_of(error.value) if secret else _shown(error.value)
    key = named[-1] if named else ""
    code = error.code
    if code == cerberus_errors.UNKNOWN_FIELD.code:
        allowed = sorted(_fields_at(schema, path[:-1]))
        return f"unknown key '{key}' in {parent}", f"allowed keys here: {', '.join(allowed)}"
    if code == REFUSED.code:
        reason, what_to_do = error.info
        return f"{where} {reason}", what_to_do
    if code == cerberus_errors.REQUIRED_FIELD.code:
        return f"missing required key '{key}' in {parent}", f"add `{key}:`"
    if code == cerberus_errors.EXCLUDES_FIELD.code:
        others = error.constraint if isinstance(error.constraint, list | tuple) else [error.constraint]
        choices = " or ".join(f"`{name}`" for name in sorted([key, *others]))
        return f"{parent}: give either {choices}, not both", "remove one of them"
    if code == cerberus_errors.BAD_TYPE.code:
        return f"{where} must be {_type_name(error.constraint)}, got {shown}", _type_hint(error.constraint)
    if code == cerberus_errors.NOT_NULLABLE.code:
        return f"{where} has no value", "write a value after the colon, or remove the key"
    if code == cerberus_errors.EMPTY_NOT_ALLOWED.code:
        return f"{where} must not be empty", "give it a value, or remove the key"
    if code == cerberus_errors.MIN_VALUE.code:
        return f"{where} must be at least {error.constraint}, got {shown}", f"use {error.constraint} or more"
    if code == cerberus_errors.MAX_VALUE.code:
        return f"{where} must be at most {error.constraint}, got {shown}", f"use {error.constraint} or less"
    if code in (cerberus_errors.MIN_LENGTH.code, cerberus_errors.MAX_LENGTH.code):
        return _length_message(error, where)
    if code == cerberus_errors.REGEX_MISMATCH.code:
        value = "" if secret else f" {shown}"
        return f"{where}{value} does not match {error.constraint}", _pattern_hint(error.constraint)
    if code == cerberus_errors.UNALLOWED_VALUE.code:
        values = ", ".join(map(str, error.constraint))
        value = "" if secret else f" {shown}"
        return f"{where}{value} is not one of {values}", "use one of the values listed"
    if error.is_logic_error:
        expected = " or ".join(_expected(rules) for rules in error.constraint)
        return f"{where} must be {expected}, got {shown}", f"write {expected}"
    said = " is not valid here" if secret else f": {RefusalMessages()._format_message(error.field, error)}"
    return f"{where}{said}", "see the documentation of the plugin that reads this key for what it takes"


def _length_message(error: cerberus_errors.ValidationError, where: str) -> tuple[str, str]:
    """`minlength` and `maxlength`: of a text, in characters; of a list, in items."""
    least, size = error.code == cerberus_errors.MIN_LENGTH.code, len(error.value)
    if isinstance(error.value, str):
        bound = "at least" if least else "at most"
        return f"{where} must be {bound} {error.constraint} characters long, got {size}", (
            "lengthen it" if least else "shorten it"
        )
    if least:
        return f"{where} needs at least {error.constraint} item(s)", "add the missing items"
    return f"{where} may hold at most {error.constraint} item(s), got {size}", "remove the extra items"


_TYPE_HINTS = {
    "integer": "write a plain whole number in ASCII digits, such as 32000",
    "float": "write a plain finite number in ASCII digits, such as 0.7",
    "boolean": "write true or false",
    "string": 'write text on the key\'s line, in quotes ("...") if it holds ": " or starts with [ or {',
    "list": "write a list: one `- item` per line under the key, or [a, b]",
    "dict": "write a mapping: `key: value` lines indented under the key",
}
_ONE_CHARACTER_CLASS = re.compile(r"\^?\[([^\]]+)\]\+\$?")
_FIRST_AND_REST = re.compile(r"\^?\[([^\]]+)\]\[([^\]]+)\]\*\$?")


def _type_hint(expected: Any) -> str:
    names = [expected] if isinstance(expected, str) else list(expected)
    hints = [_TYPE_HINTS.get(str(name), f"write {_type_name(name)}") for name in names]
    return "; or ".join(hints)


def _expected(rules: Any) -> str:
    """What a rule set (a choice of `anyof`) takes, in words: `all`, a list of text."""
    if not isinstance(rules, Mapping):
        return "a valid value"
    if rules.get("allowed"):
        return " or ".join(f"`{value}`" for value in rules["allowed"])
    items = rules.get("schema")
    if rules.get("type") == "list" and isinstance(items, Mapping) and isinstance(items.get("type"), str):
        return f"a list of {_ITEMS.get(items['type'], items['type'])}"
    return _type_name(rules.get("type", "a valid value"))


_ITEMS = {
    "string": "text",
    "integer": "whole numbers",
    "float": "numbers",
    "boolean": "true or false",
    "dict": "mappings",
}


def _pattern_hint(pattern: Any) -> str:
    """How to write a value that matches, in words where the pattern is one class of characters, or one for the
    first character and one for the rest (a name such as an environment variable's)."""
    found = _ONE_CHARACTER_CLASS.fullmatch(str(pattern))
    if found:
        return f"use only {_characters(found[1], 'and')}, with no spaces or line breaks"
    found = _FIRST_AND_REST.fullmatch(str(pattern))
    if found:
        first, rest = _characters(found[1], "or"), _characters(found[2], "and")
        return f"start with {first}, then use only {rest}, with no spaces"
    return f"write a value matching {pattern}"


def _characters(allowed: str, conjunction: str) -> str:
    """A character class in words: `a-z0-9_` is "lower-case letters, digits and '_'"."""
    letters = "letters" if "A-Z" in allowed else "lower-case letters"
    words = [name for part, name in (("a-z", letters), ("0-9", "digits")) if part in allowed]
    others = [f"'{char}'" for char in re.sub(r"a-z|A-Z|0-9", "", allowed)]
    names = words + others
    return ", ".join(names[:-1]) + f" {conjunction} {names[-1]}" if len(names) > 1 else names[0]


def _rules_along(schema: Mapping[str, Any], path: Path) -> list[Mapping[str, Any]]:
    """The rule set of each part of `path`, from the top, as far as the schema describes it: a list's items are its
    `schema`, a mapping's key its `schema`'s field or its `valuesrules`."""
    found: list[Mapping[str, Any]] = []
    rules: Any = {"type": "dict", "schema": schema}
    for part in path:
        rules = _inner_rules(rules, part)
        if rules is None:
            break
        found.append(rules)
    return found


def _inner_rules(rules: Any, part: str | int) -> Mapping[str, Any] | None:
    """The rules of `part` of a value whose rules are `rules`."""
    if not isinstance(rules, Mapping):
        return None
    inner = rules.get("schema")
    if isinstance(part, int):
        found = inner
    elif isinstance(inner, Mapping) and isinstance(inner.get(part), Mapping):
        found = inner[part]
    else:
        found = rules.get("valuesrules")
    return found if isinstance(found, Mapping) else None


def _fields_at(schema: Mapping[str, Any], path: Path) -> Mapping[str, Any]:
    """The keys the schema allows in the mapping at `path`, with their rules."""
    if not path:
        return schema
    along = _rules_along(schema, path)
    fields = along[-1].get("schema") if len(along) == len(path) else None
    return fields if isinstance(fields, Mapping) and all(isinstance(rule, Mapping) for rule in fields.values()) else {}


def _names_hidden(schema: Mapping[str, Any], path: Path) -> Path:
    """`path` with each name a user chose inside a key that holds secrets (a secret's or a header's name, a key of
    its `valuesrules`) written `<name>`: one may be a secret pasted in the wrong place."""
    shown: list[str | int] = []
    rules: Any = {"type": "dict", "schema": schema}
    inside_secret = False
    for part in path:
        inner = rules.get("schema") if isinstance(rules, Mapping) else None
        chosen = isinstance(part, str) and not (isinstance(inner, Mapping) and isinstance(inner.get(part), Mapping))
        shown.append("<name>" if chosen and inside_secret else part)
        rules = _inner_rules(rules, part)
        inside_secret = inside_secret or holds_secrets(rules)
    return tuple(shown)


def holds_secrets_at(schema: Mapping[str, Any], path: Path) -> bool:
    """Whether `path` is a key marked `secret()`, or inside one."""
    return any(holds_secrets(rules) for rules in _rules_along(schema, path))


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


def _kind_of(value: Any) -> str:
    """What a value is, without what it says: for a value that may be a secret."""
    if isinstance(value, dict | list):
        return _shown(value)
    return "text (not shown: this key holds secrets)" if isinstance(value, str) else "a value (not shown)"


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
