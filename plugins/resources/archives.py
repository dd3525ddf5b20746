"""Archives: the archival memory an agent searches, at most one per agent, as in lettactl fleet files.

An agent's `archives: [{name, description?, embedding? | embedding_config?}]` makes the archive when the server
has none of that name (with the agent's embedding unless the entry gives one) and attaches it. Removing the line
detaches it (the agent's record says what the file attached); the archive, which holds passages, is deleted only
with `--prune`, when no line of the file declares it any more and an apply attached it (Letta keeps no marks on
archives, so the record is how lettafleet knows it was the fleet's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from lettafleet.core import (
    Action,
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
    address_of,
    attributes,
    compare,
    hookimpl,
    mapping_list,
    read_record,
    string,
)
from lettafleet.plugins.backends.letta_v1.reads import AGENTS
from lettafleet.plugins.resources.agents import EMBEDDING_CONFIG, agent_address, declared_agents, live_agents

ARCHIVE = "archive"
ATTACHMENT = "archive_attachment"
ARCHIVES: Read = ("/v1/archives/", {"order": "asc"})
EMBEDDING_KEYS = ("embedding", "embedding_config")


@hookimpl
def lettafleet_kinds() -> Iterable[ResourceKind]:
    handler = ArchiveHandler()
    return [
        ResourceKind(ARCHIVE, "archives", "an archive of passages an agent searches", handler=handler),
        ResourceKind(ATTACHMENT, "archive attachments", "an archive attached to an agent", handler=handler),
    ]


@hookimpl
def lettafleet_schema() -> Iterable[SchemaFragment]:
    entry = {
        "name": string(required=True, empty=False),
        "description": string(),
        "embedding": string(empty=False, excludes="embedding_config"),
        "embedding_config": {"type": "dict", "excludes": "embedding", "schema": EMBEDDING_CONFIG},
    }
    return [SchemaFragment({"archives": mapping_list(entry, maxlength=1)}, at=("agents",))]


@hookimpl
def lettafleet_check(fleet: Fleet) -> Iterable[Problem]:
    """One archive, declared by several agents, must say the same thing everywhere."""
    problems: list[Problem] = []
    first: dict[str, tuple[Mapping[str, Any], str]] = {}
    for agent in declared_agents(fleet):
        for index, entry in enumerate(agent.data.get("archives", [])):
            if entry["name"] in first and first[entry["name"]][0].get("description") != entry.get("description"):
                problems.append(
                    Problem(
                        (*agent.at, "archives", index, "name"),
                        f"archive '{entry['name']}' has another description than agent "
                        f"'{first[entry['name']][1]}' gives it",
                        "an archive is one thing on the server: give it one description",
                    )
                )
            first.setdefault(entry["name"], (entry, agent.data["name"]))
    return problems


def archive_address(name: str) -> str:
    return address_of(ARCHIVE, name)


class ArchiveHandler(ResourceHandler):
    def desired(self, fleet: Fleet) -> Iterable[Resource]:
        archives: dict[str, Resource] = {}
        attachments: list[Resource] = []
        for agent in declared_agents(fleet):
            for index, entry in enumerate(agent.data.get("archives", [])):
                own, at = archive_address(entry["name"]), (*agent.at, "archives", index)
                if own not in archives:
                    source = entry if any(key in entry for key in EMBEDDING_KEYS) else agent.data
                    embedding = {key: source[key] for key in EMBEDDING_KEYS if key in source}
                    values = attributes(description=entry.get("description"), **embedding)
                    archives[own] = Resource(own, ARCHIVE, entry["name"], values, source=at)
                attachments.append(
                    Resource(
                        address_of(ARCHIVE, entry["name"], agent.address),
                        ATTACHMENT,
                        entry["name"],
                        {"attached": True},
                        agent.address,
                        (own,),
                        source=at,
                    )
                )
        return [*archives.values(), *attachments]

    def live_reads(self, desired: Sequence[Resource]) -> Iterable[Read]:
        return [ARCHIVES, AGENTS] if desired else [AGENTS]

    def read_live(
        self, reader: LiveReader, desired: Sequence[Resource], fleet: Sequence[Resource]
    ) -> Iterable[Resource]:
        """The declared archives (the oldest of a name) and their attachments; the archives an agent's record
        says an apply attached and no line declares any more (deleted with `--prune`)."""
        wanted = {resource.address for resource in desired}
        attached_by_record = _recorded_archive_ids(reader)
        found: list[Resource] = []
        by_name: dict[str, dict[str, Any]] = {}
        for archive in _server_archives(reader) if wanted or attached_by_record else ():
            by_name.setdefault(archive.get("name") or "", archive)
        for name, archive in by_name.items():
            if archive_address(name) in wanted:
                found.append(_live_archive(archive))
                for agent in _agents_of(reader, archive["id"]):
                    address = address_of(ARCHIVE, name, agent_address(agent["name"]))
                    if address in wanted:
                        found.append(_live_attachment(agent_address(agent["name"]), archive))
        for archive in _server_archives(reader) if attached_by_record else ():
            if archive["id"] in attached_by_record and archive_address(archive["name"]) not in wanted:
                found.append(_live_archive(archive))
        return found

    def removed(self, reader: LiveReader, recorded: Sequence[Resource]) -> Iterable[Resource]:
        """Recorded attachments the file no longer lists, where the archive is still attached to the agent."""
        agents = {agent_address(name): agent for name, agent in live_agents(reader).items()}
        found = []
        for attachment in recorded:
            agent = agents.get(attachment.parent or "")
            if agent and attachment.id and any(a["id"] == agent["id"] for a in _agents_of(reader, attachment.id)):
                found.append(replace(attachment, attributes={"attached": True}))
        return found

    def diff(self, desired: Resource | None, live: Resource | None) -> Change:
        if desired is not None and desired.kind == ARCHIVE and live is not None:
            return compare(desired, live, fields=["description"] if "description" in desired.attributes else [])
        change = compare(desired, live)
        if desired is None and live is not None and live.kind == ARCHIVE:
            return replace(change, held="prune", detail="deletes the archive and the passages it holds")
        return change

    def apply(self, change: Change, session: ApplySession) -> Mapping[str, Any] | None:
        if change.kind == ATTACHMENT:
            return _apply_attachment(change, session)
        if change.action is Action.DELETE:
            session.delete(f"/v1/archives/{change.id}")
            return None
        if change.action is Action.CREATE:
            return session.create(change, "/v1/archives/", {"name": change.name, **(change.after or {})})
        answer: Mapping[str, Any] = session.client.patch(
            f"/v1/archives/{change.id}", json={"description": (change.after or {}).get("description")}
        )
        return answer


def _server_archives(reader: LiveReader) -> list[dict[str, Any]]:
    path, params = ARCHIVES
    return reader.list_all(path, **params)


def _agents_of(reader: LiveReader, archive_id: str) -> list[dict[str, Any]]:
    return reader.list_all(f"/v1/archives/{archive_id}/agents")


def _recorded_archive_ids(reader: LiveReader) -> set[str]:
    """The archives the records on this fleet's agents say an apply attached."""
    return {
        entry.id
        for agent in live_agents(reader).values()
        if reader.owner.owns(agent)
        for entry in read_record(agent) or ()
        if entry.kind == ATTACHMENT and entry.id
    }


def _live_archive(archive: Mapping[str, Any]) -> Resource:
    values = {"description": archive.get("description")}
    return Resource(archive_address(archive["name"]), ARCHIVE, archive["name"], values, id=archive["id"])


def _live_attachment(agent: str, archive: Mapping[str, Any]) -> Resource:
    name = str(archive["name"])
    address = address_of(ARCHIVE, name, agent)
    return Resource(address, ATTACHMENT, name, {"attached": True}, agent, (archive_address(name),), id=archive["id"])


def _apply_attachment(change: Change, session: ApplySession) -> Mapping[str, Any] | None:
    """Attach, or detach (an agent or archive already gone counts as detached)."""
    agent_id = session.id_of(change.parent or "")
    archive_id = change.id or session.id_of(archive_address(change.name))
    verb = "detach" if change.removes else "attach"
    try:
        answer: Mapping[str, Any] | None = session.client.patch(f"/v1/agents/{agent_id}/archives/{verb}/{archive_id}")
    except LettaAPIError as error:
        if not change.removes or error.status != 404:
            raise
        return None
    session.record_id(change.address, archive_id)
    return answer
