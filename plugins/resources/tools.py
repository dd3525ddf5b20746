"""Tools: the tools each agent has attached, and the custom tools a fleet defines from Python source.

As in lettactl fleet files, `tools:` lists names and definitions. A bare name is `tools/<name>.py` beside the
fleet file where that exists, else a tool the server already has (web_search, ...); `tools/*` is every such
file; `{name, from_file | source_code}` defines one.

Removing a line detaches what that line attached (the agent's record says what the file attached); a tool attached
by hand, or by Letta when it made the agent, stays. A fleet with a name also deletes the tools it defined (its
marks are tags: tools carry no metadata) once no agent declares them, unless an agent outside what this plan
detaches still has one attached.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from lettafleet.core import (
    FLEET_TAG,
    MANAGED_TAG,
    MAX_REFERENCED_FILE_BYTES,
    Action,
    Adoption,
    ApplyError,
    ApplySession,
    Change,
    Exported,
    Fleet,
    LettaAPIError,
    LiveReader,
    Owner,
    Problem,
    Read,
    Resource,
    ResourceHandler,
    ResourceKind,
    RideAlongCheck,
    SchemaFragment,
    UnreadableFile,
    address_of,
    attributes,
    boolean,
    compare,
    created_with,
    fleet_tagged,
    from_bucket,
    hookimpl,
    read_record,
    string,
)
from lettafleet.plugins.backends.letta_v1.reads import AGENTS_WITH_TOOLS
from lettafleet.plugins.resources.agents import AGENT, agent_address, declared_agents, live_agents

KIND = "tool"
ATTACHMENT = "tool_attachment"
TOOLS_FOLDER = "tools"
EVERY_FILE = "tools/*"
TOOL_FILE = "tool file"  # how messages name a file under tools/
# Letta's tool create request has no metadata: core's tag marks (MANAGED_TAG, FLEET_TAG + name) mark what a fleet made.
PROTECT_TAG = "lettafleet-protect"  # a tool defined with `protect: true`
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
TOOLS = ("/v1/tools/", {"order": "asc"})
CUSTOM = "custom"  # Letta's tool_type for tools users define; every other type is one of Letta's own


@dataclass(frozen=True)
class DeclaredTool:
    """One entry of an agent's `tools:` after expansion. `source` is None for a tool the server is to have."""

    name: str
    source: str | None
    origin: str  # where the source comes from, for messages: "tools/lookup.py" or "source_code"
    at: tuple[Any, ...]  # the entry's place in the fleet file
    description: str | None = None
    protect: bool = False


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    handler = ToolHandler()
    return [
        ResourceKind(
            KIND,
            "tools",
            "a tool on the server: defined by the fleet from Python source, or named by it",
            handler=handler,
        ),
        ResourceKind(ATTACHMENT, "tool attachments", "a tool attached to an agent", handler=handler),
    ]


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    definition = {
        "name": string(required=True, regex=NAME_PATTERN),
        "description": string(),
        "from_file": string(empty=False, excludes="source_code", required=True),
        "source_code": string(empty=False, excludes="from_file", required=True),
        "from_bucket": from_bucket("from_file", "source_code"),
        "protect": boolean(),
    }
    entry = {"type": ["string", "dict"], "empty": False, "schema": definition}
    tools = {"tools": {"type": "list", "schema": entry}}
    return [SchemaFragment(tools, at=("agents",)), SchemaFragment(tools, at=("templates",))]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    problems: list[Problem] = []
    defined: dict[str, tuple[str, tuple[Any, ...]]] = {}  # tool name -> (its source, where it was defined first)
    lists: list[ToolList] = [*declared_agents(fleet), *template_tool_lists(fleet)]
    for declared in lists:
        agent = declared.data
        seen: set[str] = set()
        for entry_index, entry in enumerate(agent.get("tools", [])):
            at = (*declared.at, "tools", entry_index)
            if isinstance(entry, Mapping):
                problems.extend(fleet.text_problems(entry, at))
            elif entry == EVERY_FILE:
                problems.extend(_every_file_problems(fleet, at))
            elif not re.fullmatch(NAME_PATTERN, entry):
                problems.append(
                    Problem(
                        at,
                        f"'{entry}' is not a tool name",
                        f"name a tool by its function's name (letters, digits and _), or write {EVERY_FILE}",
                    )
                )
            elif fleet.has_file(_tool_file(entry)):
                problems.extend(filter(None, [fleet.file_problem(_tool_file(entry), at, TOOL_FILE)]))
        if any(problem.path[:2] == declared.at for problem in problems):
            continue  # a file that cannot be read has no source to check
        for tool in declared_tools(fleet, declared):
            if tool.name in seen:
                problems.append(Problem(tool.at, f"tool '{tool.name}' is listed twice", "list each tool once"))
            seen.add(tool.name)
            if tool.source is None:
                continue
            if tool.name not in defined:
                defined[tool.name] = (tool.source, declared.at)
                problems.extend(_source_problems(tool))  # once per tool, where it is first defined
                continue
            first = defined[tool.name]
            if first[0] != tool.source:
                problems.append(
                    Problem(
                        tool.at,
                        f"tool '{tool.name}' has another source than the one {_place(first[1])} gives it",
                        "a tool is one thing on the server: give every agent the same source",
                    )
                )
    return problems


def _place(at: tuple[Any, ...]) -> str:
    """`agents[2]`, `templates[0]`: where a file lists tools, as messages name it."""
    return f"{at[0]}[{at[1]}]"


def _every_file_problems(fleet: Fleet, at: tuple[Any, ...]) -> list[Problem]:
    """Problems of a `tools/*` entry: a folder out of the fleet's directory, no file, or files that cannot be read."""
    try:
        files = _files_in_tools_folder(fleet)
    except UnreadableFile as error:
        return [Problem(at, f"{EVERY_FILE}: the folder {TOOLS_FOLDER} {error.reason}", error.hint)]
    if not files:
        return [Problem(at, f"{EVERY_FILE} matches no file", f"put tool files in {fleet.root / TOOLS_FOLDER}")]
    return list(filter(None, (fleet.file_problem(relative, at, TOOL_FILE) for relative in files)))


def _source_problems(tool: DeclaredTool) -> list[Problem]:
    """What Letta would refuse, or name differently: it names a tool after the last function in its source and
    builds the tool's schema from that function's docstring."""
    module = parsed_source(tool)
    if isinstance(module, Problem):
        return [module]
    functions = [node for node in module.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not functions:
        return [Problem(tool.at, f"{tool.origin} defines no function", f"define `def {tool.name}(...)` in it")]
    last = functions[-1]
    if last.name != tool.name:
        return [
            Problem(
                tool.at,
                f"Letta names a tool after the last function in its source, and {tool.origin} ends with "
                f"`{last.name}`, not `{tool.name}`",
                f"define `{tool.name}` last, or name the tool `{last.name}`",
            )
        ]
    if ast.get_docstring(last) is None:
        return [
            Problem(
                tool.at,
                f"function `{tool.name}` in {tool.origin} has no docstring",
                "Letta builds the tool's description and arguments from it: add one with an Args: section",
            )
        ]
    return []


def parsed_source(tool: DeclaredTool) -> ast.Module | Problem:
    """The tool's Python parsed, or why it cannot be, at the tool's entry: every reading of a tool's source goes
    through here, as Python's parser fails on more than syntax (deep nesting, a NUL, a lone surrogate, a source
    too long)."""
    source = tool.source or ""
    if len(source.encode("utf-8", "surrogatepass")) > MAX_REFERENCED_FILE_BYTES:
        limit = MAX_REFERENCED_FILE_BYTES // 1024 // 1024
        return Problem(tool.at, f"{tool.origin} is longer than {limit} MiB", "keep a tool's source short: split it")
    unparsable = _NOT_IN_PYTHON.search(source)
    if unparsable:
        line = source.count("\n", 0, unparsable.start()) + 1
        column = unparsable.start() - source.rfind("\n", 0, unparsable.start())
        what = "a NUL character" if unparsable[0] == "\0" else f"a lone surrogate ({unparsable[0]!a})"
        return Problem(tool.at, f"{tool.origin}:{line}:{column}: contains {what}", "remove it from the source")
    try:
        return ast.parse(source)
    except SyntaxError as error:
        place = f"{error.lineno or 1}:{error.offset or 1}"
        return Problem(tool.at, f"{tool.origin}:{place}: invalid Python: {error.msg}", _FIX_PYTHON)
    except (RecursionError, MemoryError):  # Python's parser gives up on a source nested too deeply
        return Problem(
            tool.at,
            f"{tool.origin} is nested too deeply for Python to parse",
            "write the deep expression as several shorter statements",
        )


# What Python's parser refuses before reading a line: a NUL, and half of a UTF-16 pair (which YAML's and JSON's
# `\udc80` escapes can write but UTF-8 cannot encode).
_NOT_IN_PYTHON = re.compile("[\0\ud800-\udfff]")
_FIX_PYTHON = "fix the Python there: `python -m py_compile FILE` reports the same"


class ToolList(Protocol):
    """Where a fleet file lists tools: an agent (`DeclaredAgent`), or a template (`TemplateTools`)."""

    @property
    def data(self) -> Mapping[str, Any]: ...

    @property
    def at(self) -> tuple[Any, ...]: ...


@dataclass(frozen=True)
class TemplateTools:
    """A template's `tools:` (plugins/resources/templates.py attaches them): this plugin defines the tools there,
    as it does an agent's, and checks those it only names are on the server."""

    data: Mapping[str, Any]
    at: tuple[Any, ...]


def template_tool_lists(fleet: Fleet) -> Iterator[TemplateTools]:
    """The templates' `tools:`, under `templates:` and, in lettactl's template mode (`--match`), the first agent's."""
    for index, template in enumerate(fleet.data.get("templates") or ()):
        if template.get("tools"):
            yield TemplateTools(template, ("templates", index))
    agents = fleet.data.get("agents") or ()
    if fleet.match is not None and agents and agents[0].get("tools"):
        yield TemplateTools(agents[0], ("agents", 0))


def declared_tools(fleet: Fleet, agent: ToolList) -> Iterator[DeclaredTool]:
    """An agent's (or template's) `tools:` entries, with `tools/*` expanded and bare names resolved against the
    tools folder."""
    for entry_index, entry in enumerate(agent.data.get("tools", [])):
        at = (*agent.at, "tools", entry_index)
        if isinstance(entry, Mapping):
            origin = entry.get("from_file", "source_code")
            source = fleet.text({"from_file": entry["from_file"]}) if "from_file" in entry else entry["source_code"]
            yield DeclaredTool(entry["name"], source, origin, at, entry.get("description"), bool(entry.get("protect")))
        elif entry == EVERY_FILE:
            for relative in _files_in_tools_folder(fleet):
                yield DeclaredTool(_tool_name(relative), fleet.read(relative), relative, at)
        elif re.fullmatch(NAME_PATTERN, entry) and fleet.has_file(_tool_file(entry)):  # never a path out of tools/
            yield DeclaredTool(entry, fleet.read(_tool_file(entry)), _tool_file(entry), at)
        else:
            yield DeclaredTool(entry, None, "", at)


def _tool_file(name: str) -> str:
    return f"{TOOLS_FOLDER}/{name}.py"


def _tool_name(relative: str) -> str:
    return relative.rsplit("/", 1)[-1].removesuffix(".py")


def _files_in_tools_folder(fleet: Fleet) -> list[str]:
    """`tools/*.py` beside the fleet file, private modules (`_*.py`) aside. Raises UnreadableFile when the
    folder leads out of the fleet's directory."""
    return [
        relative
        for relative in fleet.list_folder(TOOLS_FOLDER)
        if relative.endswith(".py") and not _tool_name(relative).startswith("_")
    ]


class ToolHandler(ResourceHandler):
    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        tools: dict[str, Resource] = {}
        attachments: list[Resource] = []
        for agent in declared_agents(fleet):
            for tool in declared_tools(fleet, agent):
                tool_address = address_of(KIND, tool.name)
                # A definition wins over a bare reference to the same tool elsewhere in the file.
                if tool_address not in tools or tool.source is not None:
                    tools[tool_address] = _declared_tool(tool)
                attachments.append(
                    Resource(
                        address_of(KIND, tool.name, agent.address),
                        ATTACHMENT,
                        tool.name,
                        {"attached": True},
                        parent=agent.address,
                        depends_on=(tool_address,),
                        source=tool.at,
                        protected=tool.protect,
                    )
                )
        for listed in template_tool_lists(fleet):  # a template attaches its tools itself
            for tool in declared_tools(fleet, listed):
                if address_of(KIND, tool.name) not in tools or tool.source is not None:
                    tools[address_of(KIND, tool.name)] = _declared_tool(tool)
        return [*tools.values(), *attachments]

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """Checked before anything is written: a tool the fleet names without defining must be on the server, and a
        tool it defines must not replace one of Letta's own (send_message, web_search, ...), which every agent uses."""
        tools = [r for r in desired if r.kind == KIND]
        if not tools:
            return []
        server_tools = _server_tools(reader)
        problems = _letta_tools_redefined([r for r in tools if "source_code" in r.attributes], server_tools)
        named = [r for r in tools if "source_code" not in r.attributes]
        offered = {tool.get("name") for tool in server_tools}
        for resource in named:
            if resource.name not in offered:
                close = difflib.get_close_matches(resource.name, sorted(filter(None, offered)), n=3)
                problems.append(
                    Problem(
                        resource.source,
                        f"tool '{resource.name}' is not on {reader.client.base_url}",
                        f"did you mean {', '.join(close)}?"
                        if close
                        else f"define it: put {TOOLS_FOLDER}/{resource.name}.py beside the fleet file",
                    )
                )
        return problems

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        return [TOOLS, AGENTS_WITH_TOOLS] if desired else []

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource]:
        """The declared tools and attachments as the server has them; for a fleet with a name, also the tools it
        defined and declares no more (a removal, or kept where an agent still uses them)."""
        wanted = {resource.address: resource for resource in desired}
        if not wanted and not reader.owner.named:
            return []
        found = []
        for name, tool in _tools_by_name(reader).items():
            declared = wanted.get(address_of(KIND, name))
            if declared is not None:
                live = _live_tool(tool)
                # A tool the fleet only names is used, not written: another fleet's may be named.
                found.append(live if "source_code" in declared.attributes else replace(live, marked_by=None))
            elif reader.owner.named and _owned(reader.owner, tool):
                found.append(_unused_tool(reader, tool, fleet))
        for agent_name, agent in live_agents(reader, AGENTS_WITH_TOOLS).items() if wanted else ():
            parent = agent_address(agent_name)
            attached: set[str] = set()
            for tool in agent.get("tools") or []:
                address = address_of(KIND, tool.get("name") or "", parent)
                if address in wanted and address not in attached:  # a tool the server lists twice is one attachment
                    attached.add(address)
                    found.append(_live_attachment(parent, tool))
        return found

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource]:
        """Recorded attachments the file no longer lists, where the agent still has that tool attached (the one
        recorded, or, recorded without an id, the one of that name)."""
        agents = live_agents(reader, AGENTS_WITH_TOOLS)
        by_address = {agent_address(name): agent for name, agent in agents.items()}
        found = []
        for attachment in recorded:
            tools = (by_address.get(attachment.parent or "") or {}).get("tools") or []
            for tool in tools:
                if (tool.get("id") == attachment.id) if attachment.id else (tool.get("name") == attachment.name):
                    found.append(
                        replace(_live_attachment(attachment.parent or "", tool), protected=attachment.protected)
                    )
                    break
        return found

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        """A detach runs before the delete of its tool. A tool the fleet defined and declares no more is kept
        while an agent this plan leaves alone has it attached, and waits for `--prune` while one the fleet is
        removing does."""
        if desired is not None or live is None:
            return compare(desired, live)
        change = replace(compare(None, live), depends_on=live.depends_on)
        kept_by, pruned_with = live.state.get("kept_by") or [], live.state.get("pruned_with") or []
        if live.protected:
            return change  # held whoever uses it: core says why
        if kept_by:
            return replace(
                change,
                action=Action.NO_OP,
                after=change.before,
                drift=f"no agent of the fleet lists it any more, but {_agents(kept_by)} still attached: kept. "
                "Detach it there to have it deleted",
            )
        if pruned_with:
            return replace(change, held="prune", detail=f"{_agents(pruned_with)} attached, removed with `--prune`")
        return change

    def ride_along(
        self, parent: Change, child: Change, request: dict[str, Any], session: ApplySession
    ) -> RideAlongCheck | None:
        """A new agent gets its tools by id in its create request (Letta adds its base tools beside them)."""
        if parent.kind != AGENT or child.kind != ATTACHMENT:
            return None
        tool_id = session.id_of(address_of(KIND, child.name))
        request.setdefault("tool_ids", []).append(tool_id)
        session.record_id(child.address, tool_id)  # the agent's record names the tool it attached
        return created_with("tools", tool_id, f"the server created agent {parent.name} without tool '{child.name}'")

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        if change.kind == ATTACHMENT:
            return _apply_attachment(change, session)
        if change.action is Action.DELETE:
            session.delete(f"/v1/tools/{change.id}")
            return None
        after = dict(change.after or {})
        if "source_code" not in after:
            raise ApplyError(f"tool '{change.name}' is not on the server, and the fleet gives no source for it")
        protect = bool(after.pop("protect", False))
        if change.action is Action.CREATE:
            tool = session.client.post("/v1/tools/", json={**after, "tags": _marks([], session.owner, protect)})
            if tool.get("name") != change.name:
                raise ApplyError(f"the server named the tool '{tool.get('name')}', not '{change.name}'")
            session.record_id(change.address, tool["id"])
            return tool
        changed = {key: after[key] for key in change.changed_fields() if key in after}
        if "protect" in change.changed_fields():
            changed["tags"] = _marks(change.state.get("tags") or [], session.owner, protect)
        return session.client.patch(f"/v1/tools/{change.id}", json=changed)

    def export(self, reader: LiveReader, agents: Sequence[Mapping[str, Any]]) -> Iterable[Exported]:
        """Each agent's tools by name; a custom tool's source goes to tools/<name>.py, which its name then means."""
        wanted = {agent["id"] for agent in agents}
        path, params = AGENTS_WITH_TOOLS
        for agent in reader.list_all(path, **params):
            if agent["id"] not in wanted or not agent.get("tools"):
                continue
            tools = agent["tools"]
            files = {
                _tool_file(tool["name"]): tool["source_code"]
                for tool in tools
                if tool.get("tool_type") == CUSTOM and tool.get("source_code")
            }
            # A tool attached twice (asked for, and among Letta's base tools) is listed once.
            yield Exported("tools", sorted({tool["name"] for tool in tools}), agent["name"], files)

    def adopt(self, reader: LiveReader, agent: Mapping[str, Any]) -> Iterable[Adoption]:
        """The agent's custom tools get the tag lettafleet puts on the tools it creates (Letta's own are not
        anyone's to adopt)."""
        path, params = AGENTS_WITH_TOOLS
        for live in reader.list_all(path, **params):
            if live["id"] != agent["id"]:
                continue
            marked: set[str] = set()
            for tool in live.get("tools") or []:
                tags = list(tool.get("tags") or [])
                if tool.get("tool_type") != CUSTOM or MANAGED_TAG in tags or tool["id"] in marked:
                    continue
                marked.add(tool["id"])
                what = f"tool {tool['name']} ({tool['id']})"
                yield Adoption(what, f"/v1/tools/{tool['id']}", {"tags": _marks(tags, reader.owner, False)})


def _declared_tool(tool: DeclaredTool) -> Resource:
    """A tool as the file declares it: defined (its source), or only named (the server is to have it)."""
    protect = tool.protect if tool.source is not None else None  # only what the fleet defines
    values = attributes(source_code=tool.source, description=tool.description, protect=protect)
    return Resource(address_of(KIND, tool.name), KIND, tool.name, values, source=tool.at, protected=tool.protect)


def _letta_tools_redefined(defined: Sequence[Resource], server_tools: Sequence[Mapping[str, Any]]) -> list[Problem]:
    letta_own = {tool.get("name"): tool.get("tool_type") for tool in server_tools if tool.get("tool_type") != CUSTOM}
    return [
        Problem(
            resource.source,
            f"tool '{resource.name}' is one of Letta's own tools ({letta_own[resource.name]}) on the server: "
            "defining it would replace it for every agent",
            "give your function another name, or list the tool by name to attach Letta's",
        )
        for resource in defined
        if resource.name in letta_own
    ]


def _server_tools(reader: LiveReader) -> list[dict[str, Any]]:
    path, params = TOOLS
    return reader.list_all(path, **params)


def _tools_by_name(reader: LiveReader) -> dict[str, dict[str, Any]]:
    """The server's tools by name; of several with one name, the oldest."""
    found: dict[str, dict[str, Any]] = {}
    for tool in _server_tools(reader):
        found.setdefault(tool.get("name") or "", tool)
    return found


def _live_tool(tool: Mapping[str, Any]) -> Resource:
    """A tool as plans compare it; its tags are kept for a write that changes its protection."""
    tags = list(tool.get("tags") or [])
    values = {"source_code": tool.get("source_code"), "description": tool.get("description")}
    if tool.get("tool_type") == CUSTOM:
        values["protect"] = PROTECT_TAG in tags
    name = str(tool.get("name"))
    return Resource(
        address_of(KIND, name),
        KIND,
        name,
        values,
        id=tool["id"],
        protected=PROTECT_TAG in tags,
        state={"tags": tags},
        marked_by=fleet_tagged(tags),
    )


def _live_attachment(agent: str, tool: Mapping[str, Any]) -> Resource:
    name = str(tool.get("name"))
    address = address_of(KIND, name, agent)
    return Resource(
        address, ATTACHMENT, name, {"attached": True}, agent, depends_on=(address_of(KIND, name),), id=tool["id"]
    )


def _owned(owner: Owner, tool: Mapping[str, Any]) -> bool:
    """Whether this named fleet defined the tool: lettafleet's tag and the fleet's."""
    return owner.named and owner.owns_tagged(tool.get("tags"))


def _marks(tags: Sequence[str], owner: Owner, protect: bool) -> list[str]:
    """A tool's tags with lettafleet's marks as this fleet leaves them, every other tag kept."""
    own = [tag for tag in tags if tag not in (MANAGED_TAG, PROTECT_TAG) and not tag.startswith(FLEET_TAG)]
    return [*own, *owner.tags(), *([PROTECT_TAG] if protect else [])]


def _unused_tool(reader: LiveReader, tool: Mapping[str, Any], fleet: Sequence[Resource]) -> Resource:
    """A tool the fleet defined and no agent of its file declares, with who has it attached: agents whose
    recorded attachment this plan detaches do not count; agents the fleet no longer declares go with `--prune`;
    any other keeps it."""
    declared = {resource.address for resource in fleet if resource.kind == AGENT}
    own_address = address_of(KIND, str(tool.get("name")))
    kept_by, pruned_with = [], []
    path, params = AGENTS_WITH_TOOLS
    for agent in reader.list_everything(path, **params):  # a removal deletes the tool: ask every agent
        if tool["id"] not in {attached.get("id") for attached in agent.get("tools") or []}:
            continue
        mine = reader.owner.owns(agent)
        if mine and agent_address(agent["name"]) not in declared:
            pruned_with.append(agent["name"])
        elif not (mine and agent_address(agent["name"]) in declared and _detached(agent, own_address)):
            kept_by.append(agent["name"])
    live = _live_tool(tool)
    return replace(live, state={**live.state, "kept_by": sorted(kept_by), "pruned_with": sorted(pruned_with)})


def _detached(agent: Mapping[str, Any], tool_address: str) -> bool:
    """Whether the agent's record lists its attachment of the tool, unprotected: this plan detaches it."""
    return any(
        entry.address == tool_address and entry.kind == ATTACHMENT and not entry.protect
        for entry in read_record(agent) or ()
    )


def _agents(names: Sequence[str]) -> str:
    return (
        ("agent " if len(names) == 1 else "agents ") + ", ".join(names) + (" has it" if len(names) == 1 else " have it")
    )


def _apply_attachment(change: Change, session: ApplySession) -> Mapping[str, Any] | None:
    """Attach, or detach (an agent or tool already gone counts as detached)."""
    agent_id, tool_id = session.id_of(change.parent or ""), change.id or session.id_of(address_of(KIND, change.name))
    if not change.removes:
        answer: Mapping[str, Any] | None = session.client.patch(f"/v1/agents/{agent_id}/tools/attach/{tool_id}")
        session.record_id(change.address, tool_id)
        return answer
    try:
        return session.client.patch(f"/v1/agents/{agent_id}/tools/detach/{tool_id}")
    except LettaAPIError as error:
        if error.status != 404:
            raise
        return None
