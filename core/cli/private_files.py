"""Files that hold a plan or a comment body: created readable by their owner only, and replaced whole."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private_text(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 from the first byte: a temporary file made that way beside it (so
    an existing file with wider permissions is replaced, not reused) is renamed over `path` once complete."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
