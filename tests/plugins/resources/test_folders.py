"""Folders in the fleet file: what is refused before the server is asked, and a server without folders."""

from __future__ import annotations

import httpx
import pytest
import respx

from lettafleet.core import FleetError, LiveReader
from lettafleet.core.engine.planning import desired_resources
from lettafleet.core.engine.validation import load_fleet
from lettafleet.plugins.backends.letta_v1 import LettaClient
from lettafleet.plugins.resources.folders import ATTACHMENT, FILE, FOLDER, FolderHandler
from tests.fakes.letta_api import BASE_URL

FLEET = """\
agents:
  - name: support
    llm_config: {{model: letta/letta-free}}
    embedding: letta/letta-free
    system_prompt: {{value: You help.}}
    folders:
      - {{name: faq, files: [{files}]}}
{other}"""
OTHER = """\
  - name: sales
    llm_config: {model: letta/letta-free}
    embedding: letta/letta-free
    system_prompt: {value: You sell.}
    folders:
      - {name: faq, files: [files/a.md]}
"""


def test_one_folder_declared_inline_by_two_agents_is_refused(write_fleet, manager):
    path = write_fleet(FLEET.format(files="files/a.md", other=OTHER), files={"files/a.md": "A"})

    with pytest.raises(FleetError) as raised:
        load_fleet(path, manager)

    assert "folder 'faq' is declared twice" in str(raised.value.diagnostics[0])
    assert "shared_folders" in str(raised.value.diagnostics[0])


def test_a_file_outside_the_fleet_directory_is_refused(write_fleet, manager):
    path = write_fleet(FLEET.format(files="../secret.md", other=""))

    with pytest.raises(FleetError) as raised:
        load_fleet(path, manager)

    assert "../secret.md" in str(raised.value.diagnostics[0])


def test_a_server_answering_400_to_folders_stops_the_plan_at_the_folder_line(write_fleet, manager):
    path = write_fleet(FLEET.format(files="files/a.md", other=""), files={"files/a.md": "A"})
    folders = [r for r in desired_resources(load_fleet(path, manager), manager) if r.kind == FOLDER]

    with respx.mock(base_url=BASE_URL) as router:
        router.get("/v1/folders/").mock(return_value=httpx.Response(400, json={"detail": "Folders are not supported"}))
        with LettaClient(BASE_URL, api_key="", retries=0) as client:
            [problem] = FolderHandler().preflight(LiveReader(client), folders)

    assert problem.path == ("agents", 0, "folders", 0)
    assert "does not offer folders" in problem.message and "Folders are not supported" in problem.message


def test_a_folder_is_attached_only_after_every_upload_to_it(write_fleet, manager):
    """Letta's upload puts the file into the context of the agents attached at that moment and an attach puts in the
    files there at that moment: the two at once put one file in twice, and the attach fails with a 409."""
    path = write_fleet(
        FLEET.format(files="files/a.md, files/b.md", other=""), files={"files/a.md": "A", "files/b.md": "B"}
    )
    resources = {r.address: r for r in desired_resources(load_fleet(path, manager), manager)}

    [attachment] = [r for r in resources.values() if r.kind == ATTACHMENT]
    uploads = {address for address, r in resources.items() if r.kind == FILE}

    assert len(uploads) == 2
    assert uploads <= set(attachment.depends_on)


def diagnostics_of(path, manager):
    with pytest.raises(FleetError) as raised:
        load_fleet(path, manager)
    return raised.value.diagnostics


def test_two_shared_folders_of_one_name_are_an_error_at_the_second(write_fleet, manager):
    shared = "shared_folders:\n  - {name: faq, files: [files/a.md]}\n  - {name: faq, files: [files/b.md]}\n"
    agent = FLEET.replace("      - {{name: faq, files: [{files}]}}\n", "").replace("folders:", "shared_folders: [faq]")
    path = write_fleet(shared + agent.format(other=""), files={"files/a.md": "A", "files/b.md": "B"})

    [error] = diagnostics_of(path, manager)

    assert (error.line, error.message) == (3, "shared folder 'faq' is declared twice")
    assert error.hint


@pytest.mark.parametrize("entry", ["files/a.md/", "files/a.md/.", "files/"])
def test_a_folder_file_path_that_does_not_end_with_a_file_name_is_refused(write_fleet, manager, entry):
    path = write_fleet(FLEET.format(files=entry, other=""), files={"files/a.md": "A"})

    [error] = diagnostics_of(path, manager)

    assert error.message == f"folder file does not end with a file's name: {entry}"


def test_from_bucket_among_a_folders_files_is_refused_with_its_reason(write_fleet, manager):
    path = write_fleet(FLEET.format(files="{from_bucket: {bucket: b, path: a.md}}", other=""))

    [error] = diagnostics_of(path, manager)

    assert error.message.endswith(
        "from_bucket is not supported: lettactl reads it from Supabase storage, not from a Letta server"
    )
    assert "`files:`" in error.hint


def test_an_archives_embedding_config_is_checked_as_an_agents_is(write_fleet, manager):
    archive = "    archives:\n      - {name: notes, embedding_config: {embedding_model: m, dimension: 3}}\n"
    path = write_fleet(FLEET.format(files="files/a.md", other="").split("    folders:")[0] + archive)

    messages = [error.message for error in diagnostics_of(path, manager)]

    assert "unknown key 'dimension' in agents[0].archives[0].embedding_config" in messages
    assert "missing required key 'embedding_dim' in agents[0].archives[0].embedding_config" in messages
