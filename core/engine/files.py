"""Reading the files a fleet consists of: the fleet file and the files it names, and nothing else.

Only regular files are read, never more than a size limit, as strict UTF-8 without NUL bytes; a file a fleet
names must resolve (links followed) to a place inside the fleet file's folder. Opening never blocks: a FIFO or a
device is refused from its status, before a byte is read.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MEBIBYTE = 1024 * 1024
MAX_REFERENCED_FILE_BYTES = 1 * MEBIBYTE  # a prompt, a block value or a tool's source
MAX_FLEET_FILE_BYTES = 16 * MEBIBYTE  # a fleet file of thousands of agents still fits

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
_REASONS = {
    errno.ENOENT: ("not found", "create the file or correct the path"),
    errno.ENOTDIR: ("not found (a part of its path is not a folder)", "correct the path"),
    errno.ELOOP: ("is a symbolic link that loops", "point the link at a file"),
    errno.ENAMETOOLONG: ("has a path too long for this system", "use a shorter path"),
    errno.EACCES: ("cannot be read: permission denied", "make the file readable"),
    errno.EPERM: ("cannot be read: permission denied", "make the file readable"),
}


class UnreadableFile(Exception):
    """Why a file cannot be used, worded to follow its name: `not found`, `is a FIFO, not a regular file`.
    `line` and `column` place the fault inside the file, when it has one place (a NUL byte, bad UTF-8)."""

    def __init__(self, reason: str, hint: str = "", line: int = 1, column: int = 1):
        super().__init__(reason)
        self.reason = reason
        self.hint = hint
        self.line = line
        self.column = column


def read_text_file(path: Path, limit: int = MAX_FLEET_FILE_BYTES, follow_links: bool = True) -> str:
    """The UTF-8 text of the regular file at `path`. Raises UnreadableFile saying why not."""
    flags = _OPEN_FLAGS if follow_links else _OPEN_FLAGS | os.O_NOFOLLOW
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        raise _unreadable(error, path) from None
    try:
        _check_regular(os.fstat(descriptor), limit)
        data = _read_at_most(descriptor, limit + 1)
    except OSError as error:
        raise _unreadable(error, path) from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise _too_large(limit)
    return _decoded(data)


def read_file_inside(root: Path, relative: str, limit: int = MAX_REFERENCED_FILE_BYTES) -> str:
    """The text of `relative`, a path a fleet gives, only if it resolves to a regular file inside `root`. The
    path must end with the file's name: `faq.md/` would resolve to faq.md, a file whose name is then empty."""
    if os.path.basename(relative) in ("", ".", ".."):
        raise UnreadableFile("does not end with a file's name", "name the file itself, with no '/' after its name")
    return read_text_file(resolve_inside(root, relative), limit, follow_links=False)


def resolve_inside(root: Path, relative: str) -> Path:
    """`relative` resolved against `root` with every link followed. Raises UnreadableFile when it is absolute,
    leads out of `root`, or cannot be resolved (a broken link, a loop, a path too long)."""
    _check_nameable(relative)
    if Path(relative).is_absolute():
        raise UnreadableFile(
            "must be relative to the fleet file, not absolute", "write the path relative to the fleet file's directory"
        )
    candidate = root / relative
    real_root = os.path.realpath(root)
    # First as far as the path resolves, so a path out of the folder is named so even when nothing is there.
    if not Path(os.path.realpath(candidate)).is_relative_to(real_root):
        raise _leaves_root()
    try:
        resolved = Path(os.path.realpath(candidate, strict=True))
    except OSError as error:
        raise _unreadable(error, candidate) from None
    if not resolved.is_relative_to(real_root):
        raise _leaves_root()
    return resolved


def _check_nameable(relative: str) -> None:
    """Raises UnreadableFile when `relative` holds what no path on this system can: a NUL, or a lone surrogate
    (YAML's `\\ud800` escape writes one) that the file system's encoding refuses."""
    if "\0" in relative:
        raise UnreadableFile("contains a NUL character", "remove it from the path")
    try:
        os.fsencode(relative)
    except UnicodeEncodeError as error:
        character = ascii(relative[error.start])
        raise UnreadableFile(
            f"contains a character no file name can hold ({character})", "remove it from the path"
        ) from None


def list_folder_inside(root: Path, folder: str) -> list[str]:
    """The names in `folder` (relative to `root`), which must resolve inside `root`; none if it does not exist."""
    if not os.path.lexists(root / folder):
        return []
    resolved = resolve_inside(root, folder)
    try:
        return sorted(entry.name for entry in os.scandir(resolved))
    except NotADirectoryError:
        return []
    except OSError as error:
        raise _unreadable(error, resolved) from None


def files_under_inside(root: Path, folder: str) -> list[str]:
    """Every regular file under `folder` (relative to `root`, which it must resolve inside), as paths relative to
    `folder` with `/`, sorted. Symbolic links inside it are skipped, never followed (so none leads out)."""
    resolved = resolve_inside(root, folder)
    if not resolved.is_dir():
        raise UnreadableFile("is not a folder", "name a folder")
    found: list[str] = []
    for current, folders, names in os.walk(resolved, onerror=_raise_unreadable):
        folders[:] = [name for name in folders if not os.path.islink(os.path.join(current, name))]
        for name in names:
            path = os.path.join(current, name)
            if not os.path.islink(path) and os.path.isfile(path):
                found.append(os.path.relpath(path, resolved).replace(os.sep, "/"))
    return sorted(found)


def _raise_unreadable(error: OSError) -> None:
    raise _unreadable(error, Path(error.filename or ""))


def _check_regular(status: os.stat_result, limit: int) -> None:
    if stat.S_ISDIR(status.st_mode):
        raise UnreadableFile("is a directory, not a regular file", "name a file")
    if stat.S_ISFIFO(status.st_mode):
        raise UnreadableFile("is a FIFO, not a regular file", "name a regular file")
    if not stat.S_ISREG(status.st_mode):
        raise UnreadableFile("is a device or socket, not a regular file", "name a regular file")
    if status.st_size > limit:
        raise _too_large(limit)


def _read_at_most(descriptor: int, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = os.read(descriptor, min(remaining, MEBIBYTE))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _decoded(data: bytes) -> str:
    nul = data.find(b"\0")
    if nul >= 0:
        line, column = _place(data, nul)
        raise UnreadableFile(f"contains a NUL byte (line {line}, column {column})", "remove it", line, column)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _place(data, error.start)
        raise UnreadableFile(
            f"is not UTF-8 text (line {line}, column {column})", "save the file as UTF-8", line, column
        ) from None


def _place(data: bytes, offset: int) -> tuple[int, int]:
    """Line and column (1-based, in bytes) of a byte offset."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


def _leaves_root() -> UnreadableFile:
    return UnreadableFile(
        "leaves the fleet file's directory", "keep referenced files inside the directory tree of the fleet file"
    )


def _too_large(limit: int) -> UnreadableFile:
    return UnreadableFile(f"is larger than {limit // MEBIBYTE} MiB", "keep referenced files small, or split them")


def _unreadable(error: OSError, path: Path) -> UnreadableFile:
    if error.errno == errno.ENOENT and os.path.islink(path):
        return UnreadableFile("is a broken symbolic link", "point the link at a file, or remove it")
    reason, hint = _REASONS.get(error.errno or 0, (f"cannot be read: {error.strerror}", "make it a readable file"))
    return UnreadableFile(reason, hint)
