"""The expansion of lettactl's `memory:` section into the files an agent should have, as lettactl's
memfs-reconciler/plan.ts builds them, with every problem found on the way (each at its line). Pure: it reads only
files inside the fleet's folder, through `Fleet`; what a file from one of the agent's blocks holds is the server's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from lettafleet.core import Fleet, Note, Problem, UnreadableFile
from lettafleet.plugins.resources.agents import DeclaredAgent

MEMFS, BLOCKS = "memfs", "blocks"
SKILL_NAME = r"^[a-z0-9][a-z0-9-]*$"  # lettactl's rule for a skill's folder name
TEMPLATE_VAR = r"^[A-Z0-9_]+$"
TEMPLATE_KEEPS = (".md", ".gitkeep", ".keep")  # what lettactl takes from a template folder
SKILL_SKIPS = frozenset({".git", "node_modules", "dist", "build", ".next"})  # folders lettactl leaves out of a skill
SKILL_FILE = "SKILL.md"
INDEX = "MEMORY.md"  # a MemFS folder's index
HEADING = re.compile(r"^(#{1,6})\s")
RENDERED_LIMIT = 1_000_000  # characters a file may have once its template_vars are replaced, as a file it reads
Path = tuple[Any, ...]


@dataclass(frozen=True)
class DeclaredFile:
    """One file the `memory:` section gives the agent: its path in the memory, its text (None when it is a block's,
    known only on the server), and the line that declares it."""

    path: str
    text: str | None
    at: Path
    source: str  # the key it comes from: files, template_dir, skills, from_blocks, capability_index_file
    block: str | None = None  # from_blocks: the block's label
    section: str | None = None  # from_blocks: the heading of the part taken (extract_section)


# ---- pure pieces of the expansion, as lettactl's memfs-reconciler/plan.ts does them --------------------------------


def rendered(text: str, template_vars: Mapping[str, str]) -> str | None:
    """`{{KEY}}` replaced by each variable's value, one variable after another in the order given; None when that
    would pass RENDERED_LIMIT (variables naming each other grow a text exponentially), known before it is built."""
    for key, value in template_vars.items():
        placeholder = "{{" + key + "}}"
        if len(text) + text.count(placeholder) * (len(value) - len(placeholder)) > RENDERED_LIMIT:
            return None
        text = text.replace(placeholder, value)
    return text


def extracted_section(text: str, heading: str) -> str | None:
    """The part of a Markdown text under the heading `heading` (any level), up to the next heading of that level
    or above, trimmed and ending with one newline; None when no heading reads so."""
    lines = re.split(r"\r?\n", text)
    wanted = re.compile(r"^(#{1,6})\s+" + re.escape(heading) + r"\s*$")
    start = next((index for index, line in enumerate(lines) if wanted.match(line)), None)
    if start is None:
        return None
    level = len(HEADING.match(lines[start]).group(1))  # type: ignore[union-attr]
    end = next(
        (i for i in range(start + 1, len(lines)) if (m := HEADING.match(lines[i])) and len(m.group(1)) <= level),
        len(lines),
    )
    return "\n".join(lines[start + 1 : end]).strip() + "\n"


def template_files(paths: Iterable[str]) -> list[str]:
    """Of the paths in a template folder (relative to it), those lettactl writes: Markdown files and `.gitkeep` /
    `.keep`, no other dotfile or file in a dot-folder, and not the folder's own README.md."""
    kept = []
    for path in paths:
        parts = PurePosixPath(path).parts
        name = parts[-1]
        keep_file = name in (".gitkeep", ".keep")
        if any(part.startswith(".") for part in parts[:-1]) or (name.startswith(".") and not keep_file):
            continue
        if path == "README.md" or not (keep_file or name.endswith(".md")):
            continue
        kept.append(path)
    return kept


def skill_files(paths: Iterable[str]) -> list[str]:
    """Of the paths in a skill's folder (relative to it), those lettactl copies: every file but dotfiles and what
    dependency or build folders hold."""
    return [
        path
        for path in paths
        if not any(part.startswith(".") or part in SKILL_SKIPS for part in PurePosixPath(path).parts)
    ]


def skill_name(entry: Mapping[str, Any]) -> str:
    """A skill's name: the one given, else its folder's last part (lettactl's default)."""
    return str(entry.get("name") or PurePosixPath(str(entry["from_dir"])).name)


def memory_path_problem(path: str, markdown: bool) -> str | None:
    """Why `path` cannot name a file in an agent's memory (None: it can): it must be relative, stay inside the
    memory (no `..`) and out of its repository's own `.git`, be written as servers normalize it (no `./`, `//` or
    trailing `/`: else two entries name one file), hold no control character and, where lettactl asks it, end in
    `.md`."""
    parts = PurePosixPath(path).parts
    if path.startswith("/") or ".." in parts or path.startswith("~"):
        return "must be a path inside the agent's memory: relative, with no '..'"
    if any(part.lower() == ".git" for part in parts):
        return "must not be inside .git: that folder is the memory's git repository itself"
    if any(ord(character) < 32 or ord(character) == 127 for character in path):
        return "must not hold a control character (a newline, a tab...)"
    if str(PurePosixPath(path)) != path or not parts:
        return "must be written plainly: no './', '//' or '/' at the end"
    if markdown and not path.endswith(".md"):
        return "must end in .md: memory files are Markdown"
    return None


def block_file_paths(label: str) -> tuple[str, str]:
    """Where a memory block lives as a file under MemFS: `system/<label>.md` (hosted Letta, App Server v1 layout)
    or `<label>.md` (App Server v2 layout)."""
    return f"system/{label}.md", f"{label}.md"


# ---- the expansion, with the problems found on the way ----------------------------------------------------------


@dataclass
class Expansion:
    """The files one agent's `memory:` section declares, and what stops them, collected in one pass."""

    fleet: Fleet
    at: Path
    files: dict[str, DeclaredFile]
    problems: list[Problem]

    def add(self, declared: DeclaredFile) -> None:
        reason = memory_path_problem(declared.path, markdown=False)  # a folder's file names are the disk's
        if reason:
            self.problems.append(Problem(declared.at, f"{declared.path!r} {reason}", "rename the file"))
            return
        first = self.files.get(declared.path)
        if first is None:
            self.files[declared.path] = declared
        elif first.text != declared.text or first.source != "capability_index_file":
            self.problems.append(
                Problem(
                    declared.at,
                    f"{declared.path} is written twice in the agent's memory: here and by {first.source} "
                    f"({_line_of(self.fleet, first.at)})",
                    "give one of them another path, or drop one (lettafleet refuses where lettactl lets the later win)",
                )
            )

    def read(self, relative: str, at: Path, label: str) -> str | None:
        problem = self.fleet.file_problem(relative, at, label)
        if problem:
            self.problems.append(problem)
            return None
        return self.fleet.read(relative)

    def folder(self, folder: str, at: Path, label: str) -> list[str] | None:
        """The paths under `folder`, relative to it; None (and a problem at `at`) when it cannot be walked."""
        try:
            found = self.fleet.files_under(folder)
        except UnreadableFile as error:
            self.problems.append(Problem(at, f"{label} {error.reason}: {folder}", error.hint))
            return None
        base = folder.rstrip("/") + "/"
        return [path.removeprefix(base) for path in found]


def _line_of(fleet: Fleet, at: Path) -> str:
    located = fleet.document.diagnostic(at, "", "")
    return f"line {located.line}"


def expand(fleet: Fleet, agent: DeclaredAgent) -> Expansion:
    """The files the agent's `memory:` section declares (with `mode: memfs`), and every problem of the section."""
    memory: Mapping[str, Any] = agent.data.get("memory") or {}
    at = (*agent.at, "memory")
    expansion = Expansion(fleet, at, {}, [])
    if not memory:
        return expansion
    _check_paths(memory, at, expansion)
    _template_dir(memory, at, expansion)
    _files(memory, at, expansion)
    _skills(memory, at, expansion)
    _from_blocks(memory, at, expansion, agent)
    _blocks_beside(agent, expansion)
    if memory["mode"] == MEMFS and not any(
        memory.get(key) for key in ("from_blocks", "template_dir", "skills", "files")
    ):
        expansion.problems.append(
            Problem(
                (*at, "mode"),
                "memory mode 'memfs' declares no file: none of files, template_dir, skills or from_blocks is set",
                "declare what the agent's memory holds with one of them (lettactl asks for one too)",
            )
        )
    return expansion


def _check_paths(memory: Mapping[str, Any], at: Path, expansion: Expansion) -> None:
    for key in ("preserve_existing_paths", "prune_paths"):
        seen: set[str] = set()
        for index, path in enumerate(memory.get(key) or ()):
            reason = memory_path_problem(path, markdown=False) or ("is listed twice" if path in seen else None)
            if not reason and key == "prune_paths" and PurePosixPath(path).name == INDEX:
                reason = "is an index of the agent's memory (MEMORY.md): the layout needs it, so it is never pruned"
            if reason:
                expansion.problems.append(Problem((*at, key, index), f"{key} entry {path!r} {reason}", "fix the path"))
            seen.add(path)


def _template_dir(memory: Mapping[str, Any], at: Path, expansion: Expansion) -> None:
    folder = memory.get("template_dir")
    index_file = memory.get("capability_index_file")
    if index_file and not folder:
        expansion.problems.append(
            Problem(
                (*at, "capability_index_file"),
                "capability_index_file needs template_dir: it names a file in that folder",
                "set template_dir to the folder that holds it",
            )
        )
    if not folder:
        return
    paths = expansion.folder(folder, (*at, "template_dir"), "template_dir")
    if paths is None:
        return
    if index_file:
        reason = memory_path_problem(index_file, markdown=False)
        if reason or index_file not in paths:
            why = reason or f"is not a file of template_dir {folder}"
            expansion.problems.append(
                Problem((*at, "capability_index_file"), f"capability_index_file {index_file!r} {why}", "fix the path")
            )
        else:
            text = expansion.read(f"{folder.rstrip('/')}/{index_file}", (*at, "capability_index_file"), "file")
            if text is not None:
                expansion.add(DeclaredFile(index_file, text, (*at, "capability_index_file"), "capability_index_file"))
    for path in template_files(paths):
        text = expansion.read(f"{folder.rstrip('/')}/{path}", (*at, "template_dir"), "template_dir file")
        if text is not None and path != index_file:
            expansion.add(DeclaredFile(path, text, (*at, "template_dir"), "template_dir"))


def _files(memory: Mapping[str, Any], at: Path, expansion: Expansion) -> None:
    for index, entry in enumerate(memory.get("files") or ()):
        where = (*at, "files", index)
        reason = memory_path_problem(entry["to"], markdown=True)
        if reason:
            expansion.problems.append(Problem((*where, "to"), f"to {entry['to']!r} {reason}", "fix the path"))
            continue
        text = entry.get("value")
        if "from_file" in entry:
            text = expansion.read(entry["from_file"], (*where, "from_file"), "from_file")
        if text is None:
            continue
        text = rendered(text, entry.get("template_vars") or {})
        if text is None:
            expansion.problems.append(
                Problem(
                    (*where, "template_vars"),
                    f"template_vars make {entry['to']} more than {RENDERED_LIMIT} characters long",
                    "make no variable's value name another variable, or shorten the values",
                )
            )
            continue
        expansion.add(DeclaredFile(entry["to"], text, where, "files"))


def _skills(memory: Mapping[str, Any], at: Path, expansion: Expansion) -> None:
    names: dict[str, Path] = {}
    for index, entry in enumerate(memory.get("skills") or ()):
        where = (*at, "skills", index)
        name = skill_name(entry)
        if not re.fullmatch(SKILL_NAME, name):
            expansion.problems.append(
                Problem(
                    (*where, "name") if entry.get("name") else (*where, "from_dir"),
                    f"skill name {name!r} must be lowercase letters, digits and hyphens",
                    "give the skill a `name:` of that form (its folder's name is the default)",
                )
            )
            continue
        if name in names:
            expansion.problems.append(
                Problem(where, f"skill {name!r} is declared twice", "give each skill its own name")
            )
            continue
        names[name] = where
        paths = expansion.folder(entry["from_dir"], (*where, "from_dir"), "from_dir")
        if paths is None:
            continue
        if SKILL_FILE not in paths:
            expansion.problems.append(
                Problem((*where, "from_dir"), f"skill {name!r} has no {SKILL_FILE} in {entry['from_dir']}", "add one")
            )
            continue
        for path in skill_files(paths):
            text = expansion.read(f"{entry['from_dir'].rstrip('/')}/{path}", (*where, "from_dir"), "skill file")
            if text is not None:
                expansion.add(DeclaredFile(f"skills/{name}/{path}", text, where, "skills"))


def _from_blocks(memory: Mapping[str, Any], at: Path, expansion: Expansion, agent: DeclaredAgent) -> None:
    for index, entry in enumerate(memory.get("from_blocks") or ()):
        where = (*at, "from_blocks", index)
        reason = memory_path_problem(entry["to"], markdown=True)
        if reason:
            expansion.problems.append(Problem((*where, "to"), f"to {entry['to']!r} {reason}", "fix the path"))
            continue
        if entry["to"] in block_file_paths(entry["block"]):
            continue  # under MemFS the block is that file already: nothing to write (a note says so)
        declared = DeclaredFile(entry["to"], None, where, "from_blocks", entry["block"], entry.get("extract_section"))
        expansion.add(declared)


def _blocks_beside(agent: DeclaredAgent, expansion: Expansion) -> None:
    """A memory file at the path of one of the agent's memory blocks would be written by both: refused at the
    file's line."""
    labels = [block["name"] for block in agent.data.get("memory_blocks") or ()]
    labels += list(agent.data.get("shared_blocks") or ())
    taken = {path: label for label in labels for path in block_file_paths(label)}
    for declared in list(expansion.files.values()):
        label = taken.get(declared.path)
        if label is not None and not (declared.source == "from_blocks" and declared.block == label):
            expansion.problems.append(
                Problem(
                    declared.at,
                    f"{declared.path} is where memory block {label} lives under MemFS: both would write it",
                    f"give the file another path, or take block {label} out of memory_blocks/shared_blocks",
                )
            )


def memory_notes(agent: DeclaredAgent) -> list[Problem]:
    """Where lettafleet reads the section otherwise than lettactl: said at the key's line."""
    memory: Mapping[str, Any] = agent.data.get("memory") or {}
    at = (*agent.at, "memory")
    notes: list[Problem] = []
    if "prune_missing_skills" in memory:
        notes.append(
            Note(
                (*at, "prune_missing_skills"),
                "prune_missing_skills has no effect (lettactl deprecated it): a skill taken out of the file is removed "
                "anyway, its files being in the agent's record",
                "remove the key",
            )
        )
    if "bare_repo" in memory:
        notes.append(Note((*at, "bare_repo"), "bare_repo: auto is the only way there is", "the key may be removed"))
    for index, entry in enumerate(memory.get("from_blocks") or ()):
        if entry["to"] in block_file_paths(entry["block"]):
            notes.append(
                Note(
                    (*at, "from_blocks", index, "to"),
                    f"{entry['to']} is block {entry['block']}'s own file under MemFS: nothing is written for it",
                    "keep it for lettactl, or remove the entry",
                )
            )
    if memory.get("mode") == BLOCKS and any(key not in ("mode", "verify", "bare_repo") for key in memory):
        notes.append(
            Note(
                (*at, "mode"),
                "with mode: blocks the section declares no memory file: its other keys wait for mode: memfs",
                "write mode: memfs to give the agent these files",
            )
        )
    return notes


# ---- the kind -----------------------------------------------------------------------------------------------------


def declared_files(fleet: Fleet, agent: DeclaredAgent) -> list[DeclaredFile]:
    """The files the agent should have from its `memory:` section: none unless `mode: memfs`."""
    memory = agent.data.get("memory") or {}
    if memory.get("mode") != MEMFS:
        return []
    return sorted(expand(fleet, agent).files.values(), key=lambda declared: declared.path)


def preserved(memory: Mapping[str, Any], path: str) -> bool:
    """Whether `path` is seeded once and then the agent's (`preserve_existing_paths`)."""
    return path in set(memory.get("preserve_existing_paths") or ())
