"""Files a fleet refers to: only regular UTF-8 files inside the fleet's folder are read, whatever names them;
everything else is one located error from `validate` (exit 1), never a hang, a traceback or a read outside."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from lettafleet.core.cli.app import main
from lettafleet.core.engine.files import MAX_REFERENCED_FILE_BYTES, UnreadableFile, files_under_inside

SECRET = "OUTSIDE-THE-FLEET-FOLDER"
TOOL = 'def x(text: str) -> str:\n    """Echo.\n\n    Args:\n        text: what to echo.\n    """\n    return text\n'
FLEET = """agents:
  - name: a
    llm_config: {{model: letta/letta-free, context_window: 32000}}
    system_prompt: {{{prompt}}}
    embedding: letta/letta-free
{tools}"""

# How a fleet names a file: (what it names, the fleet's text, the line:col of the naming entry, the message's label).
WAYS = {
    "from_file": ("notes/x.md", FLEET.format(prompt="from_file: notes/x.md", tools=""), "4:21", "from_file"),
    "tool from_file": (
        "tools/x.py",
        FLEET.format(prompt="value: hi", tools="    tools: [{name: x, from_file: tools/x.py}]\n"),
        "6:23",
        "from_file",
    ),
    "tools/*": ("tools/x.py", FLEET.format(prompt="value: hi", tools='    tools: ["tools/*"]\n'), "6:13", "tool file"),
    "bare name": ("tools/x.py", FLEET.format(prompt="value: hi", tools="    tools: [x]\n"), "6:13", "tool file"),
}


def link_outside(target: Path, outside: Path) -> None:
    target.symlink_to(outside / "secret.py")


def link_to_dev_zero(target: Path, outside: Path) -> None:
    target.symlink_to("/dev/zero")


# What is at the named place, and the reason the error gives.
FAULTS: dict[str, tuple[Callable[[Path, Path], object], str]] = {
    "a link out of the folder": (link_outside, "leaves the fleet file's directory"),
    "a link to /dev/zero": (link_to_dev_zero, "leaves the fleet file's directory"),
    "a FIFO": (lambda target, _: os.mkfifo(target), "is a FIFO, not a regular file"),
    "a directory": (lambda target, _: target.mkdir(), "is a directory, not a regular file"),
    "a dangling link": (lambda target, _: target.symlink_to("missing.py"), "is a broken symbolic link"),
    "a link loop": (lambda target, _: target.symlink_to(target.name), "is a symbolic link that loops"),
    "non-UTF-8 text": (lambda target, _: target.write_bytes(b"# caf\xe9\n"), "is not UTF-8 text (line 1, column 6)"),
    "a NUL byte": (lambda target, _: target.write_bytes(b"def x():\n  \0\n"), "contains a NUL byte (line 2, column 3)"),
    "a file over the limit": (
        lambda target, _: target.write_text("#" * (MAX_REFERENCED_FILE_BYTES + 1)),
        "is larger than 1 MiB",
    ),
}


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A read that blocks (a FIFO without a writer) fails the test after a few seconds instead of hanging CI."""

    def timed_out(signum: int, frame: object) -> None:
        raise TimeoutError("validate hung")

    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """The fleet's folder, and a folder beside it holding a valid tool whose text must never be read."""
    root, outside = tmp_path / "fleet", tmp_path / "outside"
    for folder in (root / "notes", root / "tools", outside):
        folder.mkdir(parents=True)
    (outside / "secret.py").write_text(TOOL.replace("Echo.", SECRET))
    return root, outside


def validate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["validate", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.output


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("way", WAYS)
def test_a_named_file_that_cannot_be_read_safely_is_one_located_error(folders, way, fault):
    root, outside = folders
    relative, text, place, label = WAYS[way]
    make, reason = FAULTS[fault]
    make(root / relative, outside)
    fleet = root / "fleet.yaml"
    fleet.write_text(text)

    code, output = validate(str(fleet))

    assert code == 1
    assert f"{fleet}:{place}: {label} {reason}: {relative}" in output
    assert SECRET not in output


@pytest.mark.parametrize("way", ["from_file", "tool from_file"])
def test_a_path_holding_a_lone_surrogate_is_a_located_error(folders, way):
    # YAML's "\\ud800" escape writes half of a UTF-16 pair, which no file name on this system can hold.
    root, _ = folders
    relative, text, place, label = WAYS[way]
    fleet = root / "fleet.yaml"
    fleet.write_text(text.replace(relative, '"notes/\\ud800.md"'))

    code, output = validate(str(fleet))

    assert code == 1
    reason = "contains a character no file name can hold ('\\ud800')"
    assert f"{fleet}:{place}: {label} {reason}: notes/\\ud800.md" in output


@pytest.mark.parametrize("way", ["from_file", "tool from_file"])
def test_a_path_too_long_for_the_system_is_a_located_error(folders, way):
    root, _ = folders
    relative, text, place, label = WAYS[way]
    long_name = relative.replace("x.", "x" * 300 + ".")
    fleet = root / "fleet.yaml"
    fleet.write_text(text.replace(relative, long_name))

    code, output = validate(str(fleet))

    assert code == 1
    assert f"{fleet}:{place}: {label} has a path too long for this system: {long_name}" in output


def test_a_tools_folder_linked_out_of_the_fleet_folder_is_refused_at_the_entry(folders):
    root, outside = folders
    (root / "tools").rmdir()
    (root / "tools").symlink_to(outside)
    fleet = root / "fleet.yaml"
    fleet.write_text(WAYS["tools/*"][1])

    code, output = validate(str(fleet))

    assert code == 1
    assert f"{fleet}:6:13: tools/*: the folder tools leaves the fleet file's directory" in output
    assert "secret" not in output


def test_links_that_stay_inside_the_fleet_folder_are_followed(folders):
    root, _ = folders
    (root / "shared").mkdir()
    (root / "shared" / "x.py").write_text(TOOL)
    (root / "tools" / "x.py").symlink_to("../shared/x.py")
    fleet = root / "fleet.yaml"
    fleet.write_text(WAYS["bare name"][1])

    code, output = validate(str(fleet))

    assert (code, output) == (0, f"{fleet}: valid (1 agent, 1 tool, 1 tool attachment)\n")


FLEET_FILE_FAULTS = {
    "a FIFO": (lambda path: os.mkfifo(path), "file is a FIFO, not a regular file", "1:1"),
    "/dev/zero": (lambda path: path.symlink_to("/dev/zero"), "file is a device or socket, not a regular file", "1:1"),
    "a link loop": (lambda path: path.symlink_to(path.name), "file is a symbolic link that loops", "1:1"),
    "a NUL byte": (
        lambda path: path.write_bytes(b"agents:\n  - name: a\0\n"),
        "file contains a NUL byte (line 2, column 12)",
        "2:12",
    ),
    "non-UTF-8 text": (
        lambda path: path.write_bytes(b"agents:\n  - name: caf\xe9\n"),
        "file is not UTF-8 text (line 2, column 14)",
        "2:14",
    ),
}


@pytest.mark.parametrize("fault", FLEET_FILE_FAULTS)
def test_a_fleet_file_that_cannot_be_read_safely_is_a_located_error(tmp_path, fault):
    make, message, place = FLEET_FILE_FAULTS[fault]
    fleet = tmp_path / "fleet.yaml"
    make(fleet)

    code, output = validate(str(fleet))

    assert code == 1
    assert f"{fleet}:{place}: {message}" in output


def test_a_fleet_file_path_too_long_for_the_system_is_an_error(tmp_path):
    fleet = tmp_path / ("f" * 300 + ".yaml")

    code, output = validate(str(fleet))

    assert code == 1
    assert f"{fleet}:1:1: file has a path too long for this system" in output


def test_files_under_a_folder_are_every_regular_file_below_it_links_skipped_and_none_out_of_the_fleet(tmp_path):
    inside, outside = tmp_path / "fleet", tmp_path / "outside"
    (inside / "tpl" / "deep").mkdir(parents=True)
    outside.mkdir()
    (inside / "tpl" / "a.md").write_text("a")
    (inside / "tpl" / "deep" / "b.md").write_text("b")
    (outside / "secret.md").write_text("s")
    os.symlink(outside / "secret.md", inside / "tpl" / "link.md")
    os.symlink(outside, inside / "tpl" / "linked-folder")
    os.symlink(outside, inside / "out")
    assert files_under_inside(inside, "tpl") == ["a.md", "deep/b.md"]
    with pytest.raises(UnreadableFile, match="leaves the fleet file's directory"):
        files_under_inside(inside, "out")
    with pytest.raises(UnreadableFile, match="is not a folder"):
        files_under_inside(inside, "tpl/a.md")
