"""Every reader says what it reads: the explain table and the README's format table list
each registered format (so a new reader cannot be added without its line)."""

from __future__ import annotations

from pathlib import Path

from streamgrade.formats import BUILTIN
from streamgrade.formats.explain import EXPECTS


def test_every_builtin_reader_has_an_expects_line():
    assert sorted(EXPECTS) == sorted(f.name for f in BUILTIN)


def test_every_builtin_reader_is_in_the_readme_format_table():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme[readme.index("## Input formats"):readme.index("### A new dump in a few lines of TOML")]
    missing = [f.name for f in BUILTIN if f"| `{f.name}` |" not in table]
    assert not missing, f"README format table lacks {missing}"
