"""What plugins declare about themselves: resource kinds, and the schema fragments of the keys they read."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lettafleet.core.engine.handlers import ResourceHandler
    from lettafleet.core.engine.model import Plan


@dataclass(frozen=True)
class ResourceKind:
    """A kind of resource, and the handler core routes its resources and changes to (one handler may serve
    several kinds). `counted` kinds (conversations) are counted on their parent's line in a plan and named
    separately in the plan's closing line, as people track them apart from configuration."""

    name: str
    plural: str
    description: str = ""
    counted: bool = False
    named_in_plan: bool = True  # False: a plan line shows just the name ("support-agent", not "agent support-agent")
    # The attribute a rename writes (an agent's `name`, a block's `label`), for `moved:` entries of the fleet file;
    # None: resources of this kind cannot be renamed in place. Its handler's apply writes it on an update.
    renamed_as: str | None = None
    # False: changes of this kind are not listed one by one under their parent in the text and Markdown plans (a
    # template's thousands of agents); the parent's `detail` sums them up, and the JSON plan has every one.
    listed: bool = True
    # Required of every kind a plugin declares (the plugin manager checks); optional so that a kind can be described
    # apart from its plugin, as renderers and their tests do.
    handler: ResourceHandler | None = field(default=None, compare=False, repr=False)

    @property
    def singular(self) -> str:
        return self.name.replace("_", " ")


@dataclass(frozen=True)
class SchemaFragment:
    """Cerberus rules for some keys, and where in the fleet document they apply."""

    fields: Mapping[str, Any]
    at: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class PluginCommand:
    """A click command a plugin adds to the CLI; `verb` names the group it goes under (None: top level)."""

    command: Any
    verb: str | None = None


@dataclass(frozen=True)
class PlanOption:
    """A click option a plugin adds to the fleet commands named in `commands` (`plan`, `apply`). Its value reaches
    plugins as `Fleet.options[option.name]`; an option not given has its default there.

    `refuses`, given every parameter of the command by name (core's, such as `scope`, `targets`, `match` and
    `prune`, and every plugin's), says why this option cannot go with the others: a usage error, before the file is
    read. `reshapes`, given the fleet's whole plan and those parameters, returns the plan this run makes of it (a
    part of it, some changes held), before `--scope` and `--target` narrow it further."""

    option: Any
    commands: tuple[str, ...] = ("plan", "apply")
    refuses: Callable[[Mapping[str, Any]], str | None] | None = None
    reshapes: Callable[[Plan, Mapping[str, Any]], Plan] | None = None


# Rules plugins combine into their schema fragments. strictyaml leaves every scalar a string, so numbers and
# booleans are converted by the schema that expects them (the "coerce" names are core's validator's).
def string(**rules: Any) -> dict[str, Any]:
    return {"type": "string", **rules}


def integer(**rules: Any) -> dict[str, Any]:
    return {"type": "integer", "coerce": "integer", **rules}


def boolean(**rules: Any) -> dict[str, Any]:
    return {"type": "boolean", "coerce": "boolean", **rules}


def string_list(**rules: Any) -> dict[str, Any]:
    return {"type": "list", "schema": {"type": "string", "empty": False}, **rules}


def mapping_list(fields: Mapping[str, Any], **rules: Any) -> dict[str, Any]:
    return {"type": "list", "schema": {"type": "dict", "schema": dict(fields)}, **rules}


SECRET = "secret"  # set in a rule set's `meta` by `secret()`


def secret(rules: Mapping[str, Any]) -> dict[str, Any]:
    """`rules` of a key that holds a secret, or secrets (an API key, `{from_env | value}`, headers' values): no
    message about that key, or anything inside it, shows what the file has written there."""
    return {**rules, "meta": {**dict(rules.get("meta") or {}), SECRET: True}}


def holds_secrets(rules: Any) -> bool:
    """Whether a rule set is marked by `secret()`."""
    meta = rules.get("meta") if isinstance(rules, Mapping) else None
    return isinstance(meta, Mapping) and bool(meta.get(SECRET))


def refused(reason: str, what_to_do: str) -> dict[str, Any]:
    """The rule of a key lettafleet knows and does not take (a lettactl key not supported yet, or one that
    cannot work on a Letta server): `validate` stops at its line with `reason` ("is not supported yet") and
    `what_to_do`, rather than the generic "unknown key"."""
    return {"refused": [reason, what_to_do]}


def not_supported_yet(what_to_do: str) -> dict[str, Any]:
    """`refused` for a key lettafleet means to support and does not yet."""
    return refused("is not supported yet by lettafleet", what_to_do)


def text_source(required: bool = True) -> dict[str, Any]:
    """`value` or `from_file` (a path relative to the fleet file), exactly one of them."""
    return {
        "value": {"type": "string", "excludes": "from_file", "required": required},
        "from_file": {"type": "string", "empty": False, "excludes": "value", "required": required},
        "from_bucket": from_bucket("value", "from_file"),
    }


def from_bucket(*instead_of: str, named_with: str = "with `from_file:`") -> dict[str, Any]:
    """lettactl's `from_bucket` source, refused: it reads Supabase storage, which a Letta server knows nothing of.
    `instead_of` names the other sources, which it excludes; `named_with` says how the file is named instead."""
    rule = refused(
        "is not supported: lettactl reads it from Supabase storage, not from a Letta server",
        f"download the file next to the fleet file and name it {named_with}",
    )
    return {**rule, "excludes": list(instead_of)}
