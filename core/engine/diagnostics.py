"""Problems found in a fleet file, and how they are shown: `FILE:LINE:COL: message`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# A path into the fleet document: mapping keys and list indexes, e.g. ("agents", 0, "memory_blocks", 1, "limit").
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """Something wrong with the fleet, found by core or a plugin, before it is given a place in the file."""

    path: Path
    message: str
    hint: str = ""


@dataclass(frozen=True)
class Note(Problem):
    """A remark on the fleet that stops nothing: where lettafleet reads a key differently from lettactl, or
    ignores it. `validate`, `plan` and `apply` print it as `FILE:LINE:COL: note: message (hint)`."""


@dataclass(frozen=True, order=True)
class Diagnostic:
    """A problem with its place in a file. Sorts by file, line and column."""

    file: str
    line: int
    column: int
    message: str
    hint: str = field(default="", compare=False)

    def __str__(self) -> str:
        text = f"{escaped(self.file)}:{self.line}:{self.column}: {escaped(self.message)}"
        return f"{text} ({escaped(self.hint)})" if self.hint else text


def escaped(text: str) -> str:
    """`text` with control and format characters written as escapes (`\\n`, `\\x1b`, `\\u2028`): a value quoted in
    a message can then neither start a line that reads as another `FILE:LINE:COL:` nor drive the terminal."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


class FleetError(Exception):
    """The fleet file cannot be used. Carries every diagnostic found, not only the first, each once (a problem
    several resources share, such as a fleet-wide secret's unset variable, is one line)."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = sorted(set(diagnostics))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


def describe_path(path: Path) -> str:
    """`agents[0].memory_blocks[1].limit`: how a path reads in a message."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"
