"""An App Server agent as the read commands show it (V1's fields), and `send --all`'s reply from streamed pieces."""

from __future__ import annotations

from lettafleet.plugins.commands.agents import agent_summary
from lettafleet.plugins.commands.app_server_bulk_send import reply_text
from lettafleet.plugins.commands.app_server_reads import as_v1_agent
from lettafleet.plugins.commands.memory_report import MemoryUse

AGENT = {
    "id": "agent-local-1",
    "name": "support",
    "system": "You help.",
    "tags": ["git-memory-enabled"],
    "model": "openai-compatible/my-model",
    "model_settings": {"context_window_limit": 16000},
    "llm_config": {"model": "my-model", "model_endpoint": "https://example.invalid/v1", "context_window": 128000},
}
FILES = [
    {"relative_path": "MEMORY.md", "content": "# Memory\n", "description": None},
    {"relative_path": "persona.md", "content": "I help.", "description": "who I am"},
    {"relative_path": "system/human.md", "content": "A user.", "description": None},
]


def test_memory_files_are_the_blocks_and_the_index_is_not_one() -> None:
    shown = agent_summary(as_v1_agent(AGENT, FILES))

    assert shown["blocks"] == ["persona", "system/human"]
    assert shown["model"] == "openai-compatible/my-model"


def test_the_agents_own_context_window_is_the_one_weighed_against() -> None:
    use = MemoryUse.of(as_v1_agent(AGENT, FILES))

    assert use.window == 16000  # the agent's limit, not the model's 128000
    assert use.prompt_characters == len("You help.")


def test_the_providers_endpoint_is_not_shown_as_the_agents() -> None:
    assert "model_endpoint" not in as_v1_agent(AGENT, FILES)["llm_config"]


def test_a_reply_streamed_in_pieces_is_joined_and_two_messages_are_two_lines() -> None:
    events = [
        {"message_type": "assistant_message", "id": "m1", "content": "Hel"},
        {"message_type": "reasoning_message", "id": "r1", "reasoning": "hmm"},
        {"message_type": "assistant_message", "id": "m1", "content": "lo"},
        {"message_type": "assistant_message", "id": "m2", "content": "Bye"},
    ]

    assert reply_text(events) == "Hello\nBye"
