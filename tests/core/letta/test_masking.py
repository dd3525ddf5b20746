"""The one masker: a secret is hidden in every form a server may echo it in, and where a text cuts it short."""

from __future__ import annotations

import json
import threading
from urllib.parse import quote, quote_plus

import pytest

from lettafleet.core.letta.masking import MASK, SecretMasker, public_url

TRICKY = [
    'quo"te-1234',
    "back\\slash-1234",
    "wörd-ünïcode-1234",
    "a&b=c d+e/f-1234",
    'it\'s "both" \\ kinds',
]
FORMS = {
    "raw": lambda s: s,
    "json": lambda s: json.dumps(s)[1:-1],
    "json, not ASCII": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "repr": lambda s: repr(s)[1:-1],
    "repr inside JSON": lambda s: json.dumps(repr(s)[1:-1])[1:-1],
    "URL-encoded": lambda s: quote(s, safe=""),
    "URL path": lambda s: quote(s),
    "form-encoded": lambda s: quote_plus(s),
    "JSON, URL-encoded": lambda s: quote(json.dumps(s)[1:-1], safe=""),
}


@pytest.mark.parametrize("secret", TRICKY)
@pytest.mark.parametrize("form", FORMS)
def test_every_form_a_server_echoes_is_hidden(secret, form):
    echoed = FORMS[form](secret)
    masked = SecretMasker([secret])(f"refused input: {echoed} (see docs)")
    assert masked == "refused input: *** (see docs)"


def test_a_text_cut_inside_a_secret_does_not_show_its_start():
    secret = "sk-live-0123456789abcdef"
    mask = SecretMasker([secret])
    assert mask(f"token was {secret[:9]}") == "token was ***"
    assert mask(f"token was {secret[:5]}... (cut)") == "token was ***... (cut)"
    assert mask(f"{secret[-7:]} was the end") == "*** was the end"


def test_a_cut_made_here_masks_first_so_no_part_of_a_secret_shows():
    secret = "S" + "0123456789" * 150  # 1,501 characters
    text = "x" * 990 + secret + " and more"
    cut = SecretMasker([secret]).cut(text, 1000)
    assert len(cut) <= 1000 and "S012" not in cut and "0123" not in cut
    assert cut.startswith("x" * 990) and "***" in cut


@pytest.mark.parametrize("short", ["q7", "k9z"])
def test_a_short_secret_is_hidden_where_it_stands_as_a_whole_value(short):
    mask = SecretMasker([short])
    echoed = f"""{{'input': ['{short}']}} {{"K": "{short}"}} {json.dumps({"a": short})} ?token={short}&x=1"""
    assert short not in mask(echoed)


def test_a_short_secret_inside_words_is_left_alone():
    assert SecretMasker(["ab"])("absent labels stay readable") == "absent labels stay readable"


def test_values_added_later_are_hidden_too():
    mask = SecretMasker(["first-secret"])
    mask.add("second-secret", None, "")
    assert mask("first-secret second-secret") == "*** ***"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://admin:hunter2@letta.example:8283/api", "http://letta.example:8283/api"),
        ("https://letta.example/?token=abc#frag", "https://letta.example/"),
        ("http://[::1]:8283", "http://[::1]:8283"),
        ("http://127.0.0.1:8283", "http://127.0.0.1:8283"),
    ],
)
def test_a_url_is_shown_without_credentials(url, shown):
    assert public_url(url) == shown


def test_secrets_added_from_many_threads_at_once_are_all_masked() -> None:
    """A plan reads every agent's record (a secret) 32 at a time: no value added meanwhile may be lost."""
    masker = SecretMasker()
    records = [f'{{"agent": "agent-{index:04d}", "made": "2026-12-07T18:{index % 60:02d}"}}' for index in range(160)]
    barrier = threading.Barrier(32)

    def add_five(first: int) -> None:
        barrier.wait()
        for record in records[first : first + 5]:
            masker.add(record)

    threads = [threading.Thread(target=add_five, args=(first,)) for first in range(0, 160, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [record for record in records if masker(f"said {record}") != f"said {MASK}"] == []
