"""The redaction rule: any 8 or more characters of a secret count as the secret."""

from __future__ import annotations

import random
import time

from streamgrade.redact import Redactor

KEY = "sk-proj-Q7f3ZpL9xR2mW8vN4bK6tY1hJ5cD0sAeGuIoPl"


def covered(text: str, secrets: list[str]) -> list[bool]:
    """Brute force: which characters of ``text`` lie in an 8-character window that is a
    substring of a secret."""
    out = [False] * len(text)
    for s in secrets:
        if len(s) < 8:
            continue
        grams = {s[i : i + 8] for i in range(len(s) - 7)}
        for i in range(len(text) - 7):
            if text[i : i + 8] in grams:
                out[i : i + 8] = [True] * 8
    return out


def test_whole_and_partial_key():
    r = Redactor([KEY])
    assert r(f"key {KEY} end") == "key [redacted] end"
    assert r(f"a{KEY[5:13]}b") == "a[redacted]b"  # exactly 8 characters
    assert r(f"a{KEY[5:12]}b") == f"a{KEY[5:12]}b"  # 7 are not the key
    assert r(f"{KEY[:20]}{KEY[30:]}") == "[redacted]"  # two pieces that touch: one span
    assert r(f"{KEY[:9]} {KEY[-9:]}") == "[redacted] [redacted]"
    assert r("nothing here") == "nothing here" and r("") == ""


def test_spans_match_brute_force_on_random_texts():
    rng = random.Random(3)
    for _ in range(3000):
        alpha = "abc"[: rng.randint(1, 3)]
        secrets = ["".join(rng.choice(alpha) for _ in range(rng.randint(3, 14))) for _ in range(rng.randint(1, 3))]
        text = "".join(rng.choice(alpha + "x") for _ in range(rng.randint(0, 60)))
        spans = Redactor(secrets).spans(text)
        got = [False] * len(text)
        for start, end in spans:
            got[start:end] = [True] * (end - start)
        assert got == covered(text, secrets), (secrets, text, spans)
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))  # merged, in order


def test_short_and_empty_secrets():
    r = Redactor(["", None, "EMPTY"])
    assert r("EMPTY and EMPT") == "[redacted] and EMPT"
    assert not Redactor([]) and not Redactor(["", None])
    assert Redactor([KEY]) and "sk-" not in repr(Redactor([KEY]))


def test_fast_on_a_megabyte():
    r = Redactor([KEY])
    key_chars = bytes(ord(KEY[i % len(KEY)]) for i in range(256))  # random text of the key's characters
    texts = ["lorem ipsum dolor sit amet " * 40_000, "a" * 500_000 + KEY + "b" * 500_000,
             KEY * 21_740, random.Random(1).randbytes(1_000_000).translate(key_chars).decode()]
    t0 = time.perf_counter()
    outs = [r(t) for t in texts]
    elapsed = time.perf_counter() - t0
    assert outs[1] == "a" * 500_000 + "[redacted]" + "b" * 500_000
    assert outs[2] == "[redacted]"
    assert all(KEY[i : i + 8] not in o for o in outs for i in range(len(KEY) - 7))
    assert elapsed < 4.0, elapsed  # about 0.3 s here; generous for slow CI machines
