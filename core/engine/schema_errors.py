"""Schema errors in words: one error per problem, each saying what to write instead, and never a value written
under a key that holds secrets (`secret()` in its rules), nor a name chosen inside one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from cerberus import errors as cerberus_errors

from lettafleet.core.engine.diagnostics import Diagnostic, Path, describe_path
from lettafleet.core.engine.document import FleetDocument
from lettafleet.core.engine.kinds import holds_secrets

# A key lettafleet knows and refuses (`kinds.refused`): its rule holds why, and what to do instead.
REFUSED = cerberus_errors.ErrorDefinition(0x101, "refused")


class RefusalMessages(cerberus_errors.BasicErrorHandler):
    """Cerberus's own messages, and the refusal's: its reason."""

    messages: ClassVar[dict[int, str]] = {**cerberus_errors.BasicErrorHandler.messages, REFUSED.code: "{0}"}


def schema_diagnostics(
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


def reported_errors(errors: Any) -> list[cerberus_errors.ValidationError]:
    """Cerberus's errors, one per problem: the errors inside its groups, and of an `anyof` no choice passes, only
    the errors of the one choice the value has the shape of (a list whose items are wrong), else the `anyof`
    itself, reported once."""
    reported = []
    for error in errors:
        if error.is_logic_error:
            reported.extend(_chosen_branch(error))
        elif error.is_group_error:
            reported.extend(reported_errors(error.child_errors))
        else:
            reported.append(error)
    return reported


def _chosen_branch(error: cerberus_errors.ValidationError) -> list[cerberus_errors.ValidationError]:
    depth = len(error.document_path)
    branches = [reported_errors(branch) for branch in error.definitions_errors.values()]
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
