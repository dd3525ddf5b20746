"""The two ways a fleet file is parsed give one answer: libyaml's fast path builds exactly the data and positions
strictyaml builds, and declines every file strictyaml refuses (strictyaml then explains it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lettafleet.core.engine.diagnostics import FleetError
from lettafleet.core.engine.document import UNICODE_LINE_BREAKS, fast_parse, parse_document, strict_parse

WRITTEN_BY_PEOPLE = {
    "an empty value": "agents:\n  - name: a\n    description:\n",
    "words YAML 1.1 would type": "a: ~\nb: null\nc: yes\nd: 1.5\ne: 0x1f\nf: 2026-11-29\n",
    "quotes": "a: 'x: y'\nb: \"q\\n\"\nc: ''\n",
    "block scalars": "a: |\n  line1\n  line2\nb: >-\n  folded\n  text\nc: |+\n  kept\n\nd: 1\n",
    "flow style": "a: [x, y]\nb: {k: v, j: [1, 2]}\nc: []\nd: {}\ne: {f: }\n",
    "comments": "# top\na: 1 # c\n# mid\nb:\n  - x # c\n  - y\n",
    "indentless lists": "a:\n- x: 1\n  y: 2\n- - c\n  - d\n",
    "a document marker": "---\na: 1\n",
    "odd keys": "true: 1\n1: a\n~: n\n? long\n: v\n'<<': quoted\n",
    "Windows line ends": "a: 1\r\nb:\r\n  - c\r\n",
    "unicode": "a: 'é✓'\nb: naïve\n",
}
REFUSED = {
    "an anchor": "a: &x 1\nb: *x\n",
    "a tag": "a: !!int 3\n",
    "a repeated key": "a: 1\na: 2\n",
    "a merge key": "a: {x: 1}\nb:\n  <<: {x: 2}\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "a tab": "a:\n\t- b\n",
    "too deep": "a: " + "[" * 45 + "]" * 45 + "\n",
}


def strict(text: str) -> tuple[object, dict] | None:
    try:
        document = strict_parse(text, Path("fleet.yaml"))
    except FleetError:
        return None
    return document.data, document.positions


@pytest.mark.parametrize("text", WRITTEN_BY_PEOPLE.values(), ids=WRITTEN_BY_PEOPLE.keys())
def test_the_fast_path_reads_what_people_write_as_strictyaml_does(text: str) -> None:
    assert strict(text) is not None
    assert fast_parse(text) == strict(text)


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED.keys())
def test_what_strictyaml_refuses_the_fast_path_declines_and_strictyaml_explains(text: str) -> None:
    assert fast_parse(text) is None
    with pytest.raises(FleetError) as refused:
        parse_document(text, Path("fleet.yaml"))
    assert "fleet.yaml:" in str(refused.value)


scalars = st.one_of(st.text(min_size=0, max_size=12), st.integers(), st.booleans(), st.none(), st.floats())
keys = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=8)
trees = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=800, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees, flow=st.sampled_from([None, True, False]))
def test_any_document_yaml_can_write_is_read_alike_by_both(tree: object, flow: bool | None) -> None:
    text = yaml.safe_dump({"agents": tree}, default_flow_style=flow, allow_unicode=True)
    expected, fast = strict(text), fast_parse(text)
    if fast is None and expected is not None:  # declined, though strictyaml reads it: only for Unicode line ends
        assert any(mark in text for mark in UNICODE_LINE_BREAKS)
    else:
        assert fast == expected
