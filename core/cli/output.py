"""How the commands print: a table or fields for people (plain text when not on a terminal), JSON or YAML for
machines."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import rich_click as click

F = TypeVar("F", bound=Callable[..., Any])
PREVIEW_WIDTH = 60


def output_option(*formats: str) -> Callable[[F], F]:
    """`-o/--output`: the first format is for people (the default), the others for scripts."""
    people, scripts = formats[0], " or ".join(formats[1:])
    return click.option(
        "-o",
        "--output",
        type=click.Choice(list(formats)),
        default=people,
        show_default=True,
        help=f"{people} for people; {scripts} for scripts.",
    )


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Mapping[str, Any]], Any] | None = None  # how print_records gets the cell from a record
    # Free text (summaries, values) has a width and wraps on a terminal; names, ids and dates never wrap.
    # Plain output (not a terminal) never wraps nor truncates.
    width: int | None = None


def print_records(
    records: Sequence[Mapping[str, Any]], columns: Sequence[Column], output: str, empty: str = "Nothing found."
) -> None:
    """Records as a table (people) or as a JSON / YAML list (machines). JSON and YAML carry whole records."""
    if output == "json":
        click.echo(json.dumps(list(records), indent=2))
    elif output == "yaml":
        click.echo(to_yaml(list(records)), nl=False)
    elif not records:
        click.echo(empty)
    else:
        print_table(
            [[_cell(column.value(record) if column.value else None) for column in columns] for record in records],
            columns,
        )


def print_table(rows: Sequence[Sequence[str]], columns: Sequence[Column]) -> None:
    from rich.console import Console  # loaded by the commands that print a table alone
    from rich.table import Table

    console = Console()
    if console.is_terminal:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in columns:
            table.add_column(column.header, max_width=column.width, overflow="fold", no_wrap=column.width is None)
        for row in rows:
            table.add_row(*row)
        console.print(table, markup=False, highlight=False)
        return
    # Not a terminal: aligned plain text, one line per row, so grep and awk see whole values.
    widths = [max(len(column.header), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]
    for cells in [[column.header for column in columns], *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip())


def print_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """`Label: value` lines, aligned, for describe commands."""
    pairs = list(pairs)
    width = max(len(label) for label, _ in pairs) + 1
    for label, value in pairs:
        click.echo(f"{label + ':':<{width}} {_cell(value)}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def preview(text: str | None, width: int = PREVIEW_WIDTH) -> str:
    """One line of at most `width` characters, for table cells."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def short_date(stamp: str | None) -> str:
    """`2026-11-25T17:38:12.767871Z` -> `2026-11-25 17:38:12` (UTC, as the server gives it)."""
    return stamp.replace("T", " ")[:19] if stamp else "-"


_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_./-]*$")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def to_yaml(value: Any) -> str:
    """YAML for JSON-like data. Strings that could be read as anything else are written as JSON strings, which
    are valid YAML double-quoted scalars, so the document reads back exactly (no PyYAML needed to write it)."""
    return "\n".join(_yaml_lines(value, "")) + "\n"


def _yaml_lines(value: Any, pad: str) -> list[str]:
    lines: list[str] = []
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            head = f"{pad}{_yaml_scalar(str(key))}:"
            if _yaml_nested(item):
                lines.append(head)
                lines.extend(_yaml_lines(item, pad + "  "))
            else:
                lines.append(f"{head} {_yaml_scalar(item)}")
    elif isinstance(value, list | tuple) and value:
        for item in value:
            if _yaml_nested(item):
                nested = _yaml_lines(item, pad + "  ")
                lines.append(f"{pad}- {nested[0][len(pad) + 2 :]}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        lines.append(pad + _yaml_scalar(value))
    return lines


def _yaml_nested(value: Any) -> bool:
    return isinstance(value, Mapping | list | tuple) and bool(value)


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    if isinstance(value, str) and _PLAIN.match(value) and value.lower() not in _RESERVED:
        return value
    text = json.dumps(value, ensure_ascii=False)
    # JSON leaves some non-printable characters (U+2028, U+0085, ...) raw; YAML readers take them as line breaks.
    return "".join(char if char.isprintable() else json.dumps(char)[1:-1] for char in text)
