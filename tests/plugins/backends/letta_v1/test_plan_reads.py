"""A plan's reads of agents on a V1 server keep only what the kinds compare: thousands of agents are held without
`memory` (a second copy of their blocks) and without Letta's template bookkeeping, as each page arrives."""

from __future__ import annotations

import respx

from lettafleet.core.engine.live import LiveReader
from lettafleet.plugins.backends.letta_v1.client import LettaClient
from lettafleet.plugins.backends.letta_v1.reads import AGENTS, V1PlanReads

BASE = "https://letta.test"
BLOCK = {"id": "block-1", "label": "persona", "value": "Kind.", "limit": 2000, "metadata": {}, "is_template": False}
AGENT = {
    "id": "agent-1",
    "name": "support",
    "system": "You help.",
    "tags": ["team"],
    "metadata": {"managed_by": "lettafleet"},
    "llm_config": {"handle": "letta/letta-free"},
    "compaction_settings": {"mode": "all"},
    "blocks": [BLOCK],
    "memory": {"blocks": [BLOCK], "prompt_template": "{% for block in blocks %}..."},
    "message_ids": ["message-1"],
    "created_by_id": "user-1",
}


@respx.mock
def test_agents_are_kept_without_what_no_kind_compares():
    respx.get(f"{BASE}/v1/agents/").mock(side_effect=[respx.MockResponse(json=[AGENT]), respx.MockResponse(json=[])])
    with LettaClient(BASE, api_key="") as client:
        reader = LiveReader(client, reads=V1PlanReads())
        [agent] = reader.list_all(*AGENTS[:1], **AGENTS[1])
        reader.close()

    assert agent == {
        "id": "agent-1",
        "name": "support",
        "system": "You help.",
        "tags": ["team"],
        "metadata": {"managed_by": "lettafleet"},
        "llm_config": {"handle": "letta/letta-free"},
        "compaction_settings": {"mode": "all"},
        "blocks": [{"id": "block-1", "label": "persona", "value": "Kind.", "limit": 2000, "metadata": {}}],
    }
