"""strictyaml's parse of a fleet file (document.py sends it every file libyaml's fast path does not take): the
reference for what a fleet file may be, and the one that explains what is wrong with one."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Any

import strictyaml
from strictyaml import ruamel
from strictyaml.parser import StrictYAMLLoader
from strictyaml.ruamel.comments import CommentedMap, CommentedSeq
from strictyaml.ruamel.nodes import MappingNode

from lettafleet.core.engine.diagnostics import FleetError, Path
from lettafleet.core.engine.document import MAX_NESTING, MERGE_TAG, yaml_error_diagnostic


class _FleetLoader(StrictYAMLLoader):
    """strictyaml's parser (no anchors, tags or duplicate keys), with flow style allowed as lettactl files use it
    (`isolated_blocks: [faq]`). strictyaml's typed representation is skipped: the schema does that job here, and
    building it costs ten times the parse on a large fleet."""

    label = "fleet"
    allow_flow_style = True
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Each node, refused when nested deeper than a fleet needs (before Python's recursion limit is
        reached), or when it is a mapping with a merge key (`<<`), which ruamel would merge or drop silently."""
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _refused(self.parser.peek_event().start_mark, f"nested more than {MAX_NESTING} levels deep")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, MappingNode):
            for key, _ in node.value:
                if key.tag == MERGE_TAG:
                    raise _refused(key.start_mark, "merge keys (`<<`) are not supported")
        return node


def _refused(mark: Any, problem: str) -> ruamel.error.MarkedYAMLError:
    return ruamel.error.MarkedYAMLError(problem=problem, problem_mark=mark)


def strict_data(text: str, path: FilePath) -> tuple[Any, dict[Path, tuple[int, int]]]:
    """The file's data and the position of every key and item; FleetError, located, when strictyaml refuses it."""
    try:
        parsed = ruamel.load(text, Loader=_FleetLoader)
    except (strictyaml.YAMLError, ruamel.YAMLError) as error:
        raise FleetError([yaml_error_diagnostic(error, path)]) from None
    positions: dict[Path, tuple[int, int]] = {(): (1, 1)}
    return _plain(parsed, (), positions), positions


def _plain(node: Any, path: Path, positions: dict[Path, tuple[int, int]]) -> Any:
    """Turn ruamel's commented containers into dicts and lists, recording positions on the way down."""
    if isinstance(node, CommentedMap):
        result = {}
        for key, value in node.items():
            key_line, key_col, *_ = node.lc.data[key]
            positions[(*path, str(key))] = (key_line + 1, key_col + 1)
            result[str(key)] = _plain(value, (*path, str(key)), positions)
        return result
    if isinstance(node, CommentedSeq):
        result_list = []
        for index, value in enumerate(node):
            line, col = node.lc.data[index]
            positions[(*path, index)] = (line + 1, col + 1)
            result_list.append(_plain(value, (*path, index), positions))
        return result_list
    return node if node is None else str(node)
