"""The one masker: hides API keys, tokens and sensitive fleet values in any text lettafleet prints or writes.

A server may echo a value in another form than it was sent: JSON-escaped, URL-encoded, as a Python repr (Letta
0.16.8's validation errors), or cut short. Every one of those forms is hidden, and so is a cut-off start or end
of one where a text was cut. docs/fleet-file.md ("Secrets") says what is hidden where.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

MASK = "***"
# A value shorter than this is hidden only where it stands whole, as a quoted string or a query value: hiding
# every "ab" would garble every message, and a value that short is guessed in a blink anyway.
SHORT = 4
# The fewest characters of a cut-off secret that are hidden at a cut; fewer are indistinguishable from ordinary text.
CUT_AT_LEAST = 3
# Text beyond this (a whole HTML page as an error) is dropped before masking, which would only take time.
_MASKED_AT_MOST = 100_000
# Where a text may have been cut: its ends, and an ellipsis a server or a renderer put in.
_ELLIPSIS = re.compile(r"\.\.\.|…")

_ENCODINGS: tuple[Callable[[str], str], ...] = (
    lambda text: json.dumps(text)[1:-1],
    lambda text: json.dumps(text, ensure_ascii=False)[1:-1],
    lambda text: repr(text)[1:-1],
    lambda text: ascii(text)[1:-1],
    lambda text: quote(text, safe=""),
    lambda text: quote(text),
    lambda text: quote_plus(text),
)


def encoded_forms(secret: str) -> set[str]:
    """`secret` as a server may echo it: raw, and through one or two of the encodings above (a repr inside JSON,
    a JSON body URL-encoded)."""
    forms = {secret}
    for _ in range(2):
        forms |= {encode(form) for form in forms for encode in _ENCODINGS}
    return forms


class SecretMasker:
    """Replaces every form of the secrets it knows with `***`; safe to share between threads."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._long: tuple[str, ...] = ()
        self._short_forms: tuple[str, ...] = ()
        self._short: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Hide these values too (empty ones and None are ignored). Only the new values' forms are worked out: a
        plan reads one record per agent, each a secret, and encoding them all again on every read was quadratic."""
        with self._lock:
            new = {secret for secret in secrets if secret} - self._secrets
            if not new:
                return
            forms = {form for secret in new for form in encoded_forms(secret)}
            known_long, known_short = set(self._long), set(self._short_forms)
            long_forms = _longest_first(self._long, (f for f in forms if len(f) >= SHORT and f not in known_long))
            short_forms = _longest_first(
                self._short_forms, (f for f in forms if len(f) < SHORT and f not in known_short)
            )
            # Whole: between quotes ('ab', "ab", \"ab\") or as a query value (=ab&), never inside a longer word.
            alternatives = "|".join(map(re.escape, short_forms))
            short = re.compile(rf"(?<=['\"=])(?:{alternatives})(?=\\?['\"&]|\s|$)") if short_forms else None
            self._secrets, self._long, self._short_forms, self._short = (
                self._secrets | new,
                long_forms,
                short_forms,
                short,
            )

    def __call__(self, text: str) -> str:
        long_forms, short = self._long, self._short  # one consistent snapshot, whatever another thread adds
        for form in long_forms:
            if form in text:
                text = text.replace(form, MASK)
        if short is not None:
            text = short.sub(MASK, text)
        return _mask_cut_ends(text, long_forms) if long_forms else text

    def cut(self, text: str, limit: int) -> str:
        """At most `limit` characters of `text`, masked before it is cut so no cut can reveal part of a secret."""
        masked = self(text[:_MASKED_AT_MOST])  # a cut there is a cut like any other: its end is masked too
        return masked if len(masked) <= limit else masked[: limit - 1] + "…"


def _longest_first(known: tuple[str, ...], new: Iterable[str]) -> tuple[str, ...]:
    """`known` (already longest first) with `new` merged in, longest first: a longer form is replaced before a
    shorter one it contains."""
    return tuple(sorted((*known, *new), key=len, reverse=True))  # nearly sorted already: timsort merges in one pass


def _mask_cut_ends(text: str, forms: Iterable[str]) -> str:
    """Hide the start of a secret where a text ends (or an ellipsis follows), and its end where a text starts."""
    ends = sorted({len(text), *(match.start() for match in _ELLIPSIS.finditer(text))}, reverse=True)
    starts = sorted({0, *(match.end() for match in _ELLIPSIS.finditer(text))}, reverse=True)
    spans = [span for end in ends if (span := _longest_cut_start(text, end, forms))]
    spans += [span for start in starts if (span := _longest_cut_end(text, start, forms))]
    for begin, finish in sorted(set(spans), reverse=True):
        text = text[:begin] + MASK + text[finish:]
    return text


def _longest_cut_start(text: str, end: int, forms: Iterable[str]) -> tuple[int, int] | None:
    """The longest span ending at `end` that is the start of a form (at least CUT_AT_LEAST characters)."""
    best = 0
    for form in forms:
        first = max(0, end - len(form) + 1)
        at = text.find(form[0], first, end - CUT_AT_LEAST + 1)
        while at != -1 and end - at > best:
            if form.startswith(text[at:end]):
                best = end - at
                break
            at = text.find(form[0], at + 1, end - CUT_AT_LEAST + 1)
    return (end - best, end) if best else None


def _longest_cut_end(text: str, start: int, forms: Iterable[str]) -> tuple[int, int] | None:
    """The longest span starting at `start` that is the end of a form (at least CUT_AT_LEAST characters)."""
    best = 0
    for form in forms:
        last = min(len(text), start + len(form) - 1)
        at = text.rfind(form[-1], start + CUT_AT_LEAST - 1, last)
        while at != -1 and at + 1 - start > best:
            if form.endswith(text[start : at + 1]):
                best = at + 1 - start
                break
            at = text.rfind(form[-1], start + CUT_AT_LEAST - 1, at)
    return (start, start + best) if best else None


def public_url(url: str) -> str:
    """A URL as it may be shown: without a user name, password, query string or fragment (any may hold a
    credential)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc and not parts.query and not parts.fragment:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
