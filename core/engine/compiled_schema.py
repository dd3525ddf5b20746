"""The fleet schema compiled into plain Python closures: a quick "valid or not" and the normalised document.

Cerberus interprets its schema anew for every value and builds a child validator for every mapping and list it
meets, which costs seconds on a fleet of thousands of agents. A fleet file that is valid needs none of its error
machinery, so this module turns the merged schema, once, into closures that normalise a document exactly as core's
cerberus validator does (the same conversions, defaults and key order) and answer only whether it is valid.
Cerberus stays the authority: on any problem, or a schema using a rule or form not mirrored here (a third-party
plugin may use any cerberus rule), the caller validates with cerberus, which explains every problem as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence, Sized
from typing import Any

import cerberus

Check = Callable[[Any], Any]  # a value in, its normalised form out; raises NotValid
CompiledSchema = Callable[[Mapping[str, Any]], dict[str, Any] | None]  # None: not valid, ask cerberus why


class NotValid(Exception):
    """The document breaks a rule: cerberus is to say which, and where."""


class UnsupportedSchema(Exception):
    """The schema uses a rule or a form this module does not mirror: cerberus validates every document."""


# Rules of a field's own value, checked by `_value_rules`; `required` and `excludes` are its mapping's to check.
_VALUE_RULES = {"type", "nullable", "empty", "allowed", "regex", "minlength", "maxlength", "min", "max", "refused"}
_CONTAINER_RULES = {"schema", "keysrules", "valuesrules"}
_MAPPING_RULES = {"required", "excludes"}
_KNOWN_RULES = _VALUE_RULES | _CONTAINER_RULES | _MAPPING_RULES | {"coerce", "default", "anyof", "meta"}
_NORMALISING_RULES = {"coerce", "default"}
# Types whose values are never a list or a mapping, so that `schema` reads the same whichever of them matched.
_SCALAR_TYPES = {"string", "integer", "float", "boolean", "number"}
_MISSING = object()


def compile_schema(schema: Mapping[str, Any], validator: cerberus.Validator) -> CompiledSchema:
    """A function from a document to its normalised form, or None when `validator` (core's cerberus validator, whose
    types, conversions and `regex` and `refused` rules it mirrors) would find it not valid. Raises UnsupportedSchema."""
    check = _Compiler(validator).mapping(schema)

    def normalised(document: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            return check(document)
        except NotValid:
            return None

    return normalised


class _Compiler:
    def __init__(self, validator: cerberus.Validator) -> None:
        self.validator = validator

    def mapping(self, fields: Mapping[str, Any]) -> Callable[[Any], dict[str, Any]]:
        """A mapping whose keys are `fields` (no other), as cerberus normalises it (defaults, then conversions,
        then the values inside) and then validates it (each key's rules, `excludes`, then `required`)."""
        if not isinstance(fields, Mapping) or not all(isinstance(rules, Mapping) for rules in fields.values()):
            raise UnsupportedSchema("a schema that is not a mapping of rule sets")
        checks = {name: self.field(rules) for name, rules in fields.items()}
        defaults = [
            (name, rules["default"], bool(rules.get("nullable")))
            for name, rules in fields.items()
            if "default" in rules
        ]
        required = frozenset(name for name, rules in fields.items() if rules.get("required") is True)
        excludes = {name: _excluded(name, rules, fields) for name, rules in fields.items() if "excludes" in rules}

        def check(value: Any) -> dict[str, Any]:
            if not _is_mapping(value):
                raise NotValid
            result = dict(value)
            for name, default, nullable in defaults:
                if result.get(name, _MISSING) is _MISSING or (result[name] is None and not nullable):
                    result[name] = default
            for name, item in result.items():
                field_check = checks.get(name)
                if field_check is None:
                    raise NotValid  # an unknown key
                result[name] = field_check(item)
            if excludes:
                _check_exclusions(result, excludes, required)
            elif not result.keys() >= required:
                raise NotValid  # a required key is missing
            return result

        return check

    def field(self, rules: Mapping[str, Any], in_anyof: bool = False) -> Check:
        """One value: converted (`coerce`), its contents normalised and checked, then its own rules checked."""
        unknown = set(rules) - _KNOWN_RULES
        if unknown:
            raise UnsupportedSchema(f"rules {sorted(unknown)}")
        if in_anyof and set(rules) & (_NORMALISING_RULES | _MAPPING_RULES):
            raise UnsupportedSchema("a normalising or mapping rule inside `anyof`")  # cerberus does not normalise there
        coerce = self.coercion(rules["coerce"]) if "coerce" in rules else None
        contents = self.contents(rules, in_anyof)
        own_rules = _value_rules(rules)
        branches = [self.branch(branch, rules, in_anyof) for branch in rules.get("anyof", ())]
        if "anyof" in rules and not branches:
            raise UnsupportedSchema("an empty `anyof`")
        nullable = bool(rules.get("nullable"))

        def check(value: Any) -> Any:
            if coerce is not None:
                value = coerce(value)
            if value is None:
                # of the rules mirrored here, cerberus checks only `excludes` and `refused` on a null value
                if not nullable or "refused" in rules:
                    raise NotValid
                return value
            if contents is not None:  # cerberus normalises the whole document, then checks it
                value = contents(value)
            for rule in own_rules:
                rule(value)
            if branches and not any(_passes(branch, value) for branch in branches):
                raise NotValid
            return value

        return check

    def coercion(self, coerce: Any) -> Callable[[Any], Any]:
        """cerberus's `coerce`: a conversion's name, a callable, or a chain of them; one that raises fails."""
        if isinstance(coerce, str):
            # the validator's own conversion method, as cerberus calls it
            conversion = getattr(self.validator, f"_normalize_coerce_{coerce}", None)
            if conversion is None:
                raise UnsupportedSchema(f"coerce {coerce!r}")
            steps = [conversion]
        elif callable(coerce):
            steps = [coerce]
        elif isinstance(coerce, Sequence):
            steps = [self.coercion(step) for step in coerce]
        else:
            raise UnsupportedSchema(f"coerce {coerce!r}")

        def converted(value: Any) -> Any:
            try:
                for step in steps:
                    value = step(value)
            except Exception:  # cerberus reports any exception of a conversion as a failed conversion
                raise NotValid from None
            return value

        return converted

    def contents(self, rules: Mapping[str, Any], in_anyof: bool) -> Check | None:
        """What is inside a list or a mapping: `schema` (of its items, or of its keys), `keysrules`, `valuesrules`.
        Called after the type check, so the value is of a type the rules declare."""
        container_rules = set(rules) & _CONTAINER_RULES
        if not container_rules:
            return None
        types = _types(rules)
        if not types or not types <= _SCALAR_TYPES | {"list", "dict"} or {"list", "dict"} <= types:
            raise UnsupportedSchema("container rules without a type of list or of dict")
        if "list" in types:
            if container_rules != {"schema"}:
                raise UnsupportedSchema("keysrules or valuesrules on a list")
            return self.items(rules["schema"], in_anyof)
        if in_anyof and "schema" in rules:
            raise UnsupportedSchema("a mapping schema inside `anyof`")  # cerberus lets unknown keys pass there
        return self.mapping_contents(rules, in_anyof)

    def items(self, item_rules: Any, in_anyof: bool) -> Check:
        if not isinstance(item_rules, Mapping) or "excludes" in item_rules:
            raise UnsupportedSchema("list item rules")
        item = self.item(item_rules, in_anyof)

        def check(value: Any) -> Any:
            if not _is_list(value):
                return value
            return [item(each) for each in value]

        return check

    def item(self, rules: Mapping[str, Any], in_anyof: bool) -> Check:
        """A list item or a mapping's value under `valuesrules`: cerberus checks it as the value of a key of a
        mapping of its own, so a null one takes the rules' default."""
        check = self.field(rules, in_anyof)
        if "default" not in rules or rules.get("nullable"):
            return check
        default = rules["default"]
        return lambda value: check(default if value is None else value)

    def mapping_contents(self, rules: Mapping[str, Any], in_anyof: bool) -> Check:
        """A mapping's keys (`keysrules`, which may not change them), its values (`valuesrules`), or its keys
        and values together (`schema`), normalised and checked."""
        keys_rules, values_rules = rules.get("keysrules"), rules.get("valuesrules")
        if keys_rules is not None and (set(keys_rules) & (_NORMALISING_RULES | _CONTAINER_RULES)):
            raise UnsupportedSchema("keysrules that change keys")
        if values_rules is not None and ("excludes" in values_rules or "schema" in rules):
            raise UnsupportedSchema("valuesrules with `excludes`, or with a mapping schema")  # normalised twice
        keys = self.field(keys_rules, in_anyof) if keys_rules is not None else None
        values = self.item(values_rules, in_anyof) if values_rules is not None else None
        fields = self.mapping(rules["schema"]) if "schema" in rules else None

        def check(value: Any) -> Any:
            if not _is_mapping(value):
                return value
            if values is not None:
                value = {key: values(item) for key, item in value.items()}
            if fields is not None:
                value = fields(value)
            if keys is not None:
                for key in value:  # the keys of the normalised mapping, defaults included, as cerberus checks them
                    keys(key)
            return value

        return check

    def branch(self, branch: Any, rules: Mapping[str, Any], in_anyof: bool) -> Check:
        """One choice of `anyof`: its rules, with the field's type when it names none, checked without normalising."""
        if not isinstance(branch, Mapping):
            raise UnsupportedSchema("an `anyof` choice that is not a rule set")
        merged = dict(branch)
        if "type" not in merged and "type" in rules:
            merged["type"] = rules["type"]
        return self.field(merged, in_anyof=True)


def _check_exclusions(
    result: dict[str, Any], excludes: Mapping[str, tuple[list[Any], frozenset[Any]]], required: frozenset[str]
) -> None:
    """`excludes` and `required` together, as cerberus has them: no key given with one it excludes, and of the
    required keys that exclude each other, one given (not null)."""
    unrequired: set[str] = set()
    for name, (others, unrequires) in excludes.items():
        if name in result:
            unrequired |= unrequires
            if any(other in result for other in others):
                raise NotValid
    if not result.keys() >= required - unrequired:
        raise NotValid
    if unrequired and unrequired.isdisjoint(name for name, item in result.items() if item is not None):
        raise NotValid


def _passes(check: Check, value: Any) -> bool:
    try:
        check(value)
    except NotValid:
        return False
    return True


def _excluded(name: str, rules: Mapping[str, Any], fields: Mapping[str, Any]) -> tuple[list[Any], frozenset[Any]]:
    """The keys a key excludes, and the keys its presence makes not required (cerberus's `excludes`: when a
    required key excludes others, one of them, itself included, must be given)."""
    others = [rules["excludes"]] if isinstance(rules["excludes"], Hashable) else list(rules["excludes"])
    if not rules.get("required"):
        return others, frozenset()
    return others, frozenset([name, *(other for other in others if other in fields)])


def _types(rules: Mapping[str, Any]) -> set[str] | None:
    declared = rules.get("type")
    if declared is None:
        return None
    return {declared} if isinstance(declared, str) else set(declared)


def _value_rules(rules: Mapping[str, Any]) -> list[Callable[[Any], None]]:
    """The rules of a non-null value itself, in cerberus's order: type first, and `empty` spares an empty value
    the length, `allowed` and `regex` rules."""
    checks = [_type_rule(rules), _refused_rule(rules), _bounds_rule(rules)]
    sized = [rule for rule in (_allowed_rule(rules), _length_rule(rules), _regex_rule(rules)) if rule is not None]
    if "empty" in rules:
        checks.append(_empty_rule(rules["empty"], sized))
    else:
        checks += sized
    return [rule for rule in checks if rule is not None]


def _empty_rule(empty: Any, sized: list[Callable[[Any], None]]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if _is_sized(value) and len(value) == 0:
            if not empty:
                raise NotValid
            return
        for rule in sized:
            rule(value)

    return check


def _type_rule(rules: Mapping[str, Any]) -> Callable[[Any], None] | None:
    types = _types(rules)
    if not types:
        return None
    definitions = cerberus.Validator.types_mapping
    if not types <= definitions.keys():
        raise UnsupportedSchema(f"types {sorted(types - definitions.keys())}")
    kinds = [(definitions[name].included_types, definitions[name].excluded_types) for name in types]
    matches = _class_test(
        lambda value: any(
            isinstance(value, included) and not isinstance(value, excluded) for included, excluded in kinds
        )
    )

    def check(value: Any) -> None:
        if not matches(value):
            raise NotValid

    return check


def _refused_rule(rules: Mapping[str, Any]) -> Callable[[Any], None] | None:
    if "refused" not in rules:
        return None

    def check(value: Any) -> None:
        raise NotValid  # a refused key is wrong whatever its value

    return check


def _allowed_rule(rules: Mapping[str, Any]) -> Callable[[Any], None] | None:
    if "allowed" not in rules:
        return None
    allowed = rules["allowed"]

    def check(value: Any) -> None:
        if _is_iterable(value) and not isinstance(value, str):
            if any(each not in allowed for each in value):
                raise NotValid
        elif value not in allowed:
            raise NotValid

    return check


def _length_rule(rules: Mapping[str, Any]) -> Callable[[Any], None] | None:
    shortest, longest = rules.get("minlength"), rules.get("maxlength")
    if shortest is None and longest is None:
        return None

    def check(value: Any) -> None:
        if not _is_iterable(value):
            return
        if (shortest is not None and len(value) < shortest) or (longest is not None and len(value) > longest):
            raise NotValid

    return check


def _regex_rule(rules: Mapping[str, Any]) -> Callable[[Any], None] | None:
    if "regex" not in rules:
        return None
    matches = re.compile(rules["regex"]).fullmatch  # core's validator matches the whole value

    def check(value: Any) -> None:
        if isinstance(value, str) and not matches(value):
            raise NotValid

    return check


def _bounds_rule(rules: Mapping[str, Any]) -> Callable[[Any], None] | None:
    least, most = rules.get("min", _MISSING), rules.get("max", _MISSING)
    if least is _MISSING and most is _MISSING:
        return None

    def check(value: Any) -> None:
        # cerberus skips a bound it cannot compare with
        if least is not _MISSING and _compares(lambda: value < least):
            raise NotValid
        if most is not _MISSING and _compares(lambda: value > most):
            raise NotValid

    return check


def _class_test(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """`test`, a question about a value's class (isinstance), asked once per class: with abstract classes such
    as Mapping it is the most frequent cost of a check."""
    answers: dict[type, bool] = {}

    def answer(value: Any) -> bool:
        known = answers.get(type(value))
        if known is None:
            known = answers[type(value)] = test(value)
        return known

    return answer


_is_mapping = _class_test(lambda value: isinstance(value, Mapping))
_is_list = _class_test(lambda value: isinstance(value, Sequence) and not isinstance(value, str))  # cerberus's list
_is_sized = _class_test(lambda value: isinstance(value, Sized))
_is_iterable = _class_test(lambda value: isinstance(value, Iterable))


def _compares(comparison: Callable[[], Any]) -> bool:
    try:
        return bool(comparison())
    except TypeError:
        return False
