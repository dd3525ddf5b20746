"""Folders: files the fleet uploads to Letta folders, and the folders each agent has attached.

As in lettactl fleet files, an agent's `folders: [{name, files}]` declares a folder of its own, and the top-level
`shared_folders: [{name, files}]` one that agents name in their `shared_folders: [name]`. A file entry is a path
beside the fleet file, or `files/*` (every file in `files/`). A file is matched by its name in the folder and
compared by content: a changed file is replaced in place (Letta's `duplicate_handling=replace`, never a `name_(1)`
copy); a file removed from the list is deleted from a folder the fleet made. A folder removed from an agent is
detached (the agent's record says what the file attached); a named fleet deletes a folder it made and no longer
declares with `--prune` (its files and their passages go with it).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lettafleet.core import (
    Action,
    ApplyError,
    ApplySession,
    Change,
    Fleet,
    LettaAPIError,
    LiveReader,
    Problem,
    Read,
    Resource,
    ResourceHandler,
    ResourceKind,
    SchemaFragment,
    UnreadableFile,
    address_of,
    compare,
    fleet_of,
    from_bucket,
    hookimpl,
    mapping_list,
    string,
    string_list,
)
from lettafleet.plugins.backends.letta_v1 import v1_client
from lettafleet.plugins.backends.letta_v1.reads import AGENT_PAGE
from lettafleet.plugins.resources.agents import DeclaredAgent, agent_address, declared_agents, live_agents

FOLDER = "folder"
FILE = "folder_file"
ATTACHMENT = "folder_attachment"
FILES_FOLDER = "files"
EVERY_FILE = "files/*"
FOLDERS: Read = ("/v1/folders/", {"order": "asc"})
AGENTS_WITH_FOLDERS: Read = ("/v1/agents/", {"include": ["agent.sources"], "order": "asc", "limit": AGENT_PAGE})
EMBEDDING_KEYS = ("embedding", "embedding_config")


@dataclass(frozen=True)
class DeclaredFolder:
    """A folder as the file declares it: its files (name in the folder -> path beside the fleet file), the
    embedding it is created with (its first declaring agent's), and the line that declares it."""

    name: str
    files: Mapping[str, str]
    embedding: Mapping[str, Any]
    at: tuple[Any, ...]


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    handler = FolderHandler()
    return [
        ResourceKind(FOLDER, "folders", "a Letta folder of files the fleet uploads", handler=handler),
        ResourceKind(FILE, "folder files", "a file in a folder, matched by name, compared by content", handler=handler),
        ResourceKind(ATTACHMENT, "folder attachments", "a folder attached to an agent", handler=handler),
    ]


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    # A file is a path; lettactl's `{from_bucket: ...}` is refused with its reason, as elsewhere.
    bucket = from_bucket(named_with="by its path in `files:`")
    file = {"type": ["string", "dict"], "empty": False, "schema": {"from_bucket": bucket}}
    folder = {"name": string(required=True, empty=False), "files": {"type": "list", "required": True, "schema": file}}
    return [
        SchemaFragment({"shared_folders": mapping_list(folder)}),
        SchemaFragment({"folders": mapping_list(folder), "shared_folders": string_list()}, at=("agents",)),
    ]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    problems: list[Problem] = []
    shared: dict[str, int] = {}
    for index, entry in enumerate(fleet.data.get("shared_folders", [])):
        problems.extend(_folder_problems(fleet, entry, ("shared_folders", index)))
        if entry["name"] in shared:
            problems.append(
                Problem(
                    ("shared_folders", index, "name"),
                    f"shared folder '{entry['name']}' is declared twice",
                    "declare each folder once: merge the two entries' files",
                )
            )
        shared.setdefault(entry["name"], index)
    inline: dict[str, int] = {}
    for agent in declared_agents(fleet):
        for index, entry in enumerate(agent.data.get("folders", [])):
            at = (*agent.at, "folders", index)
            problems.extend(_folder_problems(fleet, entry, at))
            name = entry["name"]
            if name in shared or name in inline:
                problems.append(
                    Problem(
                        (*at, "name"),
                        f"folder '{name}' is declared twice",
                        "declare a folder several agents use once, under top-level shared_folders, and list its "
                        "name in each agent's shared_folders",
                    )
                )
            inline[name] = agent.index
        for index, name in enumerate(agent.data.get("shared_folders", [])):
            if name not in shared:
                problems.append(
                    Problem(
                        (*agent.at, "shared_folders", index),
                        f"shared folder '{name}' is not declared",
                        "declare it under top-level shared_folders: [{name, files}]",
                    )
                )
    return problems


def _folder_problems(fleet: Fleet, entry: Mapping[str, Any], at: tuple[Any, ...]) -> list[Problem]:
    """Files that cannot be read, leave the fleet's directory, or share a name in the folder."""
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for index, path in enumerate(entry["files"]):
        where = (*at, "files", index)
        try:
            paths = _expanded(fleet, path)
        except UnreadableFile as error:
            problems.append(Problem(where, f"{EVERY_FILE}: the folder {FILES_FOLDER} {error.reason}", error.hint))
            continue
        if not paths:
            problems.append(Problem(where, f"{path} matches no file", f"put files in {fleet.root / FILES_FOLDER}"))
        for relative in paths:
            problem = fleet.file_problem(relative, where, "folder file")
            if problem:
                problems.append(problem)
                continue
            name = _file_name(relative)
            if name in seen and seen[name] != relative:
                problems.append(
                    Problem(
                        where,
                        f"{relative} and {seen[name]} would both be '{name}' in folder '{entry['name']}'",
                        "a folder holds files by name: rename one, or put it in another folder",
                    )
                )
            seen[name] = relative
    return problems


def _expanded(fleet: Fleet, path: str) -> list[str]:
    """A `files:` entry as the paths it names: `files/*` is every file in the files folder (hidden ones aside)."""
    if path != EVERY_FILE:
        return [path]
    return [relative for relative in fleet.list_folder(FILES_FOLDER) if not _file_name(relative).startswith(".")]


def _file_name(relative: str) -> str:
    return relative.rsplit("/", 1)[-1]


def _embedding(agent: Mapping[str, Any]) -> dict[str, Any]:
    return {key: agent[key] for key in EMBEDDING_KEYS if key in agent}


def declared_folders(fleet: Fleet) -> Iterator[tuple[DeclaredFolder, list[DeclaredAgent]]]:
    """Each folder of the file, with the agents that attach it (a shared folder may have none)."""
    found: dict[str, tuple[DeclaredFolder, list[DeclaredAgent]]] = {}
    shared = {entry["name"]: (index, entry) for index, entry in enumerate(fleet.data.get("shared_folders", []))}
    for agent in declared_agents(fleet):
        entries: list[tuple[tuple[Any, ...], Mapping[str, Any]]]
        entries = [((*agent.at, "folders", index), entry) for index, entry in enumerate(agent.data.get("folders", []))]
        entries += [
            (("shared_folders", shared[name][0]), shared[name][1]) for name in agent.data.get("shared_folders", [])
        ]
        for at, entry in entries:
            if entry["name"] not in found:
                files = {
                    _file_name(relative): relative for path in entry["files"] for relative in _expanded(fleet, path)
                }
                found[entry["name"]] = (DeclaredFolder(entry["name"], files, _embedding(agent.data), at), [])
            found[entry["name"]][1].append(agent)
    for name, (index, entry) in shared.items():
        if name not in found:  # declared, attached to no agent: made all the same, with the server's embedding
            files = {_file_name(relative): relative for path in entry["files"] for relative in _expanded(fleet, path)}
            found[name] = (DeclaredFolder(name, files, {}, ("shared_folders", index)), [])
    yield from found.values()


def folder_address(name: str) -> str:
    return address_of(FOLDER, name)


class FolderHandler(ResourceHandler):
    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        resources: list[Resource] = []
        for folder, agents in declared_folders(fleet):
            own = folder_address(folder.name)
            resources.append(Resource(own, FOLDER, folder.name, dict(folder.embedding), source=folder.at))
            files = [address_of("file", name, own) for name in folder.files]
            for address, (name, relative) in zip(files, folder.files.items(), strict=True):
                values = {"path": relative, "content": fleet.read(relative)}
                resources.append(Resource(address, FILE, name, values, own, (own,), source=(*folder.at, "files")))
            for agent in agents:
                # Attached only once the folder's uploads are done: Letta's upload puts a file into the context of
                # the agents attached at that moment, and an attach puts in the files there at that moment, so an
                # attach during an upload puts the same file in twice and fails on a unique constraint.
                resources.append(
                    Resource(
                        address_of(FOLDER, folder.name, agent.address),
                        ATTACHMENT,
                        folder.name,
                        {"attached": True},
                        agent.address,
                        (own, *files),
                        source=folder.at,
                    )
                )
        return resources

    def preflight(self, reader: LiveReader, desired: Sequence[Resource]) -> Iterable[Problem]:
        """A server without folders (hosted Letta answers 400) is named at the first folder's line."""
        folders = [resource for resource in desired if resource.kind == FOLDER]
        if not folders:
            return []
        try:
            _server_folders(reader)
        except LettaAPIError as error:
            if error.status not in (400, 404, 405, 501):
                raise
            return [
                Problem(
                    folders[0].source,
                    f"the Letta server at {reader.client.base_url} does not offer folders ({error})",
                    "remove folders and shared_folders from the fleet file, or apply it to a server with folders",
                )
            ]
        return []

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        return [AGENTS_WITH_FOLDERS] if desired else []

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource]:
        """The declared folders and their files as the server has them, and the attachments; a named fleet also
        finds the folders it made and no longer declares (deleted with `--prune`)."""
        wanted = {resource.address for resource in desired if resource.kind == FOLDER}
        files = {resource.address for resource in desired if resource.kind == FILE}
        if not wanted and not reader.owner.named:
            return []
        found: list[Resource] = []
        for folder in _server_folders(reader) if wanted else _folders_to_remove_from(reader):
            address = folder_address(folder["name"])
            if address in wanted:
                found.append(_live_folder(folder))
                mine = reader.owner.owns(folder)  # only a folder the fleet made loses the files it does not list
                found.extend(live for live in _live_files(reader, folder, address) if mine or live.address in files)
            elif reader.owner.named and reader.owner.owns(folder):
                found.append(_live_folder(folder))
        attachments = {resource.address for resource in desired if resource.kind == ATTACHMENT}
        for agent_name, agent in live_agents(reader, AGENTS_WITH_FOLDERS).items() if attachments else ():
            for folder in agent.get("sources") or []:
                address = address_of(FOLDER, folder.get("name") or "", agent_address(agent_name))
                if address in attachments:
                    found.append(_live_attachment(agent_address(agent_name), folder))
        return found

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource]:
        """Recorded attachments the file no longer lists, where the agent still has that folder attached."""
        agents = {agent_address(name): agent for name, agent in live_agents(reader, AGENTS_WITH_FOLDERS).items()}
        found = []
        for attachment in recorded:
            for folder in (agents.get(attachment.parent or "") or {}).get("sources") or []:
                if folder.get("id") == attachment.id:
                    found.append(
                        replace(_live_attachment(attachment.parent or "", folder), protected=attachment.protected)
                    )
        return found

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        if desired is not None and desired.kind == FOLDER:
            return compare(desired, live, fields=None if live is None else [])  # its embedding is set at creation
        if desired is not None and desired.kind == FILE:
            return compare(desired, live, fields=None if live is None else ["content"])
        change = compare(desired, live)
        if desired is None and live is not None and live.kind == FOLDER:
            return replace(change, held="prune", detail="deletes the folder with its files and their passages")
        return change

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        if change.kind == ATTACHMENT:
            return _apply_attachment(change, session)
        if change.kind == FILE:
            return _apply_file(change, session)
        if change.action is Action.DELETE:
            session.delete(f"/v1/folders/{change.id}")
            return None
        if change.action is Action.CREATE:
            body = {"name": change.name, "metadata": session.owner.metadata(), **_embedding(change.after or {})}
            return session.create(change, "/v1/folders/", body)
        return None


def _server_folders(reader: LiveReader) -> list[dict[str, Any]]:
    path, params = FOLDERS
    return reader.list_all(path, **params)


def _folders_to_remove_from(reader: LiveReader) -> list[dict[str, Any]]:
    """The server's folders, for a named fleet that declares none; a server without folders (it answers 4xx)
    holds none of the fleet's."""
    try:
        return _server_folders(reader)
    except LettaAPIError as error:
        if error.status >= 500:
            raise
        return []


def _live_folder(folder: Mapping[str, Any]) -> Resource:
    return Resource(
        folder_address(folder["name"]), FOLDER, folder["name"], {}, id=folder["id"], marked_by=fleet_of(folder)
    )


def _live_files(reader: LiveReader, folder: Mapping[str, Any], parent: str) -> list[Resource]:
    """The folder's files by the name the server gives them (a `name_(1).md` copy is a file of its own), with
    their content: what a plan compares. Of several with one name, the newest."""
    rows = reader.list_all(f"/v1/folders/{folder['id']}/files", include_content=True)
    by_name = {row.get("file_name") or row.get("original_file_name") or "": row for row in rows}
    return [
        Resource(
            address_of("file", name, parent),
            FILE,
            name,
            {"content": row.get("content")},
            parent,
            id=row["id"],
            state={"folder_id": folder["id"]},
        )
        for name, row in by_name.items()
    ]


def _live_attachment(agent: str, folder: Mapping[str, Any]) -> Resource:
    name = str(folder.get("name"))
    return Resource(
        address_of(FOLDER, name, agent),
        ATTACHMENT,
        name,
        {"attached": True},
        agent,
        (folder_address(name),),
        id=folder["id"],
    )


def _apply_file(change: Change, session: ApplySession) -> Mapping[str, Any] | None:
    """Upload a new or changed file (replacing the one of that name), or delete one the file no longer lists."""
    folder_id = change.state.get("folder_id") or session.id_of(change.parent or "")
    if change.action is Action.DELETE:
        session.delete(f"/v1/folders/{folder_id}/{change.id}")
        return None
    after = change.after or {}
    if "content" not in after:
        raise ApplyError(f"{change.address}: the plan holds no content for this file")
    media_type = mimetypes.guess_type(change.name)[0] or "text/plain"
    answer: Mapping[str, Any] = v1_client(session.client, "uploading a folder's file").upload(
        f"/v1/folders/{folder_id}/upload",
        change.name,
        str(after["content"]).encode(),
        media_type,
        duplicate_handling="replace",
    )
    return answer


def _apply_attachment(change: Change, session: ApplySession) -> Mapping[str, Any] | None:
    """Attach, or detach (an agent or folder already gone counts as detached)."""
    agent_id = session.id_of(change.parent or "")
    if not change.removes:
        folder_id = session.id_of(folder_address(change.name))
        answer: Mapping[str, Any] | None = session.client.patch(f"/v1/agents/{agent_id}/folders/attach/{folder_id}")
        session.record_id(change.address, folder_id)
        return answer
    try:
        return session.client.patch(f"/v1/agents/{agent_id}/folders/detach/{change.id}")
    except LettaAPIError as error:
        if error.status != 404:
            raise
        return None
