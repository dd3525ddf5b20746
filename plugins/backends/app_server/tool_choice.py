"""Tools named in a fleet file (`tools:` entries without source), on the App Server. What its protocol offers
(Letta Code 0.34.12, `protocol_v2.d.ts` and the server's `toolset-catalog`): a whole *toolset* per agent or
conversation (`update_toolset`: auto, default, codex, letta or none), an allowlist per turn (`input`'s
`client_tool_allowlist`) and the server process's `--allowedTools`. No request gives one agent one tool and not
another, so a named tool has nothing to map to: it is refused at its line, with the tools Letta Code has."""

from __future__ import annotations

from lettafleet.core import Lacks

# The tools of Letta Code 0.34.12's toolsets (default, codex, letta), which every agent runs one of.
LETTA_CODE_TOOLS = (
    "ApplyPatch, Bash, Edit, EnterWorktree, ExitWorktree, Memory, Monitor, Read, SendAgentMessage, "
    "SetWorkingDirectory, Skill, Task, TaskCreate, TaskGet, TaskList, TaskStop, TaskUpdate, UpdatePlan, ViewImage, "
    "Wake, WatchPR, Workflow, Write, exec_command, write_stdin"
)
NO_TOOL_CHOICE = Lacks(
    "has no per-agent choice of tools: each agent runs a whole Letta Code toolset (chosen by model, or per agent "
    f"with `update_toolset`), never tools one by one; Letta Code's tools are {LETTA_CODE_TOOLS}",
    "remove the agent's `tools:` (it has its toolset's tools already), or keep this agent on a V1 server",
)
