"""Parse a fleet file into plain data, keeping the line and column of every key and item.

strictyaml defines what a fleet file may be (no anchors, tags, merge keys, duplicate keys or implicit types) and
explains every file that is not. Its parser is pure Python, though: five seconds for a thousand agents. So a file
is first read through libyaml's C parser (PyYAML's `CSafeLoader`), which builds the same data and positions when
the file is one strictyaml accepts as it is; anything else (a syntax error, an anchor, a tag, a repeated key, ...)
goes to strictyaml, which refuses it with its located message. A test keeps the two paths' answers equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path as FilePath
from typing import Any

import yaml

from lettafleet.core.engine.diagnostics import Diagnostic, FleetError, Path
from lettafleet.core.engine.files import MAX_FLEET_FILE_BYTES, UnreadableFile, read_text_file

MAX_NESTING = 40  # a fleet file needs about 8 levels; far below the depth at which parsing would overflow
MERGE_TAG = "tag:yaml.org,2002:merge"
UNICODE_LINE_BREAKS = ("\x85", "\u2028", "\u2029")


@dataclass(frozen=True)
class FleetDocument:
    """A parsed fleet file: its data (scalars still strings, as strictyaml leaves them) and where each part stands.

    Positions are found when first asked for (a message to locate), by reading `text` again: a valid fleet file of
    thousands of agents needs none, and holding one for every key and item costs more than the data."""

    path: FilePath
    data: Any
    text: str = field(default="", repr=False, compare=False)
    known_positions: dict[Path, tuple[int, int]] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def positions(self) -> dict[Path, tuple[int, int]]:
        """The line and column (1-based) of every key and item, by path."""
        if self.known_positions is not None:
            return self.known_positions
        fast = fast_parse(self.text)
        return fast[1] if fast is not None else strict_parse(self.text, self.path).positions

    @property
    def display_name(self) -> str:
        return str(self.path)

    def position(self, path: Path) -> tuple[int, int]:
        """Line and column (1-based) of the nearest part of `path` that the file has."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.positions:
                return self.positions[path[:end]]
        return (1, 1)

    def diagnostic(self, path: Path, message: str, hint: str = "") -> Diagnostic:
        line, column = self.position(path)
        return Diagnostic(self.display_name, line, column, message, hint)


def load_document(path: FilePath | str) -> FleetDocument:
    """Read and parse one fleet file. Raises FleetError with a located message when the YAML is malformed."""
    path = FilePath(path)
    try:
        text = read_text_file(path, MAX_FLEET_FILE_BYTES)
    except UnreadableFile as error:
        hint = "check the path given with -f" if error.reason == "not found" else error.hint
        raise FleetError([Diagnostic(str(path), error.line, error.column, f"file {error.reason}", hint)]) from None
    return parse_document(text, path)


def parse_document(text: str, path: FilePath) -> FleetDocument:
    if not text.strip():
        raise FleetError([Diagnostic(str(path), 1, 1, "the file is empty", "a fleet file needs an `agents:` list")])
    data = fast_data(text)
    if data is not None:
        return FleetDocument(path=path, data=data, text=text)
    return strict_parse(text, path)


def strict_parse(text: str, path: FilePath) -> FleetDocument:
    """strictyaml's parse: the reference, and the one that explains what is wrong with a file. Loaded only for
    such a file (strictyaml is a tenth of a second of every command's start-up otherwise)."""
    from lettafleet.core.engine.strict_document import strict_data

    data, positions = strict_data(text, path)
    return FleetDocument(path=path, data=data, text=text, known_positions=positions)


class _NotPlain(Exception):
    """The file uses something strictyaml refuses or reads its own way: leave it to strictyaml."""


def fast_parse(text: str) -> tuple[Any, dict[Path, tuple[int, int]]] | None:
    """The data and positions strictyaml would give, from libyaml's events; None when the file is not one plain
    YAML document of mappings, lists and untagged scalars (strictyaml then parses it, and explains)."""
    positions: dict[Path, tuple[int, int]] = {(): (1, 1)}
    data = _libyaml_data(text, positions)
    return None if data is None else (data, positions)


def fast_data(text: str) -> Any | None:
    """`fast_parse`'s data alone, without recording a position for every key and item."""
    return _libyaml_data(text, None)


def _libyaml_data(text: str, positions: dict[Path, tuple[int, int]] | None) -> Any | None:
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return None  # PyYAML built without libyaml: no faster than strictyaml
    if any(mark in text for mark in UNICODE_LINE_BREAKS):
        return None  # libyaml counts these as line ends and strictyaml does not: positions would differ
    try:
        events = yaml.parse(text, Loader=loader)
        if not isinstance(next(events), yaml.StreamStartEvent) or not isinstance(next(events), yaml.DocumentStartEvent):
            return None
        data = _node(events, next(events), (), positions, depth=1)
        if not isinstance(next(events), yaml.DocumentEndEvent) or not isinstance(next(events), yaml.StreamEndEvent):
            return None
    except (_NotPlain, yaml.YAMLError, StopIteration):
        return None
    return data


def _node(events: Any, event: Any, path: Path, positions: dict[Path, tuple[int, int]] | None, depth: int) -> Any:
    """One node's data; with `positions`, where each key and item inside it stands, by path."""
    if depth > MAX_NESTING or getattr(event, "anchor", None) is not None:
        raise _NotPlain
    if isinstance(event, yaml.ScalarEvent):
        if event.tag is not None and event.implicit == (False, False):
            raise _NotPlain  # an explicit tag (`!!int 3`)
        return event.value
    if isinstance(event, yaml.SequenceStartEvent) and _untagged(event):
        items: list[Any] = []
        while not isinstance(item := next(events), yaml.SequenceEndEvent):
            at = path
            if positions is not None:
                at = (*path, len(items))
                positions[at] = _place(item)
            items.append(_node(events, item, at, positions, depth + 1))
        return items
    if isinstance(event, yaml.MappingStartEvent) and _untagged(event):
        mapping: dict[str, Any] = {}
        while not isinstance(key := next(events), yaml.MappingEndEvent):
            if not isinstance(key, yaml.ScalarEvent) or key.anchor is not None or key.value in mapping:
                raise _NotPlain  # a complex key, or a repeated one
            if key.value == "<<" and not key.style:
                raise _NotPlain  # a merge key
            at = path
            if positions is not None:
                at = (*path, key.value)
                positions[at] = _place(key)
            mapping[key.value] = _node(events, next(events), at, positions, depth + 1)
        return mapping
    raise _NotPlain  # an alias, or a tagged collection


def _place(event: Any) -> tuple[int, int]:
    """Where an event starts, 1-based: libyaml marks every event it parses."""
    return (event.start_mark.line + 1, event.start_mark.column + 1)


def _untagged(event: Any) -> bool:
    return event.tag is None or bool(event.implicit)


def yaml_error_diagnostic(error: Exception, path: FilePath) -> Diagnostic:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
    context = getattr(error, "context", None)
    message = f"{context}: {problem}" if context and context not in problem else problem
    return Diagnostic(str(path), line, column, f"invalid YAML: {message}", _yaml_hint(message))


def _yaml_hint(message: str) -> str:
    if "indent" in message or "mapping values" in message or "block" in message:
        return "check the indentation: items of one list or mapping must line up"
    if "duplicate" in message.lower():
        return "each key may appear once in a mapping; remove or rename the repeated one"
    if "merge keys" in message:
        return "write the keys out in each mapping"
    if "nested" in message:
        return "a fleet file needs only a few levels of nesting: check the brackets and indentation"
    if "flow" in message.lower():
        return "write lists as `[a, b]` or one `- item` per line"
    return "fix the YAML syntax at this place"
