"""Remove secrets (the judge's API key) from text that may echo them.

Rule: any substring of a secret that is :data:`MIN_RUN` (8) characters or longer counts as
the secret, so a key cut short by a truncation, or echoed in part by a server, is still
removed. Every maximal stretch of the text made of such substrings becomes
:data:`REPLACEMENT`. A secret shorter than 8 characters (a local server's placeholder key)
is replaced only where it appears whole.

Redact a whole text first, then cut it: cutting first can leave a partial secret that no
longer matches as a whole. A secret cut by a bound on what is read leaves at most 7 of its
characters, which by the rule is not the secret.

Cost: linear in the text. Blocks of 4 characters at every 4th position are looked up in
the set of the secrets' 4-grams (any 8-character run of a secret contains one of these
aligned blocks), and only around a hit are the 8-character windows checked; about 40 ms
for 1 MB of text without secrets (measured on the test machine).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MIN_RUN", "REPLACEMENT", "Redactor"]

#: The shortest run of a secret's characters that counts as the secret.
MIN_RUN = 8
REPLACEMENT = "[redacted]"
_BLOCK = MIN_RUN // 2


class Redactor:
    """Callable that returns a text with the ``secrets`` removed (see module docstring).

    Empty secrets are ignored; a Redactor without secrets returns texts unchanged and is
    false. Its ``repr`` never shows the secrets.
    """

    __slots__ = ("_grams", "_blocks", "_short")

    def __init__(self, secrets: Iterable[str | None]):
        grams: dict[str, tuple[str, int]] = {}  # 8-gram -> (a secret, an offset of it there)
        short: list[str] = []
        for s in secrets:
            if not s:
                continue
            if len(s) < MIN_RUN:
                short.append(s)
                continue
            for i in range(len(s) - MIN_RUN + 1):
                grams.setdefault(s[i : i + MIN_RUN], (s, i))
        self._grams = grams
        self._blocks = frozenset(g[j : j + _BLOCK] for g in grams for j in range(MIN_RUN - _BLOCK + 1))
        # longest first, so that a short secret holding another is replaced whole
        self._short = tuple(sorted(set(short), key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._grams or self._short)

    def __repr__(self) -> str:
        return "<Redactor>"

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The [start, end) character spans of ``text`` that count as a secret of 8 or more
        characters, merged where they overlap or touch, in order."""
        n = len(text)
        if not self._grams or n < MIN_RUN:
            return []
        grams, blocks = self._grams, self._blocks
        last = n - MIN_RUN  # the last start of an 8-character window
        spans: list[tuple[int, int]] = []
        nxt = 0  # windows starting before this are decided
        b = 0
        while b <= n - _BLOCK:
            if text[b : b + _BLOCK] in blocks:
                # the windows holding the block [b, b + 4) start from b - 4 to b
                i, stop = max(b - _BLOCK, nxt), min(b, last)
                while i <= stop:
                    hit = grams.get(text[i : i + MIN_RUN])
                    if hit is None:
                        i += 1
                        continue
                    end = i + _run(text, i, *hit)
                    if spans and i <= spans[-1][1]:
                        spans[-1] = (spans[-1][0], end)
                    else:
                        spans.append((i, end))
                    i = end - MIN_RUN + 1  # windows before lie inside the run: all secret
                nxt = max(nxt, i)
            b += _BLOCK
            if b < nxt:  # skip the blocks whose windows are all decided
                b = -(-nxt // _BLOCK) * _BLOCK
        return spans

    def __call__(self, text: str) -> str:
        """``text`` with every secret (by the rule in the module docstring) replaced by
        ``[redacted]``."""
        if not text:
            return text
        spans = self.spans(text)
        if spans:
            parts, at = [], 0
            for start, end in spans:
                parts.append(self._whole(text[at:start]))
                parts.append(REPLACEMENT)
                at = end
            parts.append(self._whole(text[at:]))
            return "".join(parts)
        return self._whole(text)

    def _whole(self, text: str) -> str:
        for s in self._short:
            if s in text:
                text = text.replace(s, REPLACEMENT)
        return text


def _run(text: str, i: int, secret: str, offset: int) -> int:
    """Length of the longest run ``text[i:i + L] == secret[offset:offset + L]`` (at least
    8, as the caller found an 8-gram there), by binary search over slice comparisons."""
    lo, hi = MIN_RUN, min(len(secret) - offset, len(text) - i)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text[i : i + mid] == secret[offset : offset + mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
