"""What plugins declare about themselves: resource kinds, and the schema fragments of the keys they read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lettafleet.core.engine.handlers import ResourceHandler


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


def text_source(required: bool = True) -> dict[str, Any]:
    """`value` or `from_file` (a path relative to the fleet file), exactly one of them."""
    return {
        "value": {"type": "string", "excludes": "from_file", "required": required},
        "from_file": {"type": "string", "empty": False, "excludes": "value", "required": required},
    }
