"""Where a configuration value came from, so that an error names it: the TOML file, the
environment variable (an alias or ``STREAMGRADE_<SECTION>__<KEY>``) or the command line.

:func:`streamgrade.config.load_config` records the source of every (section,) and
(section, key) each layer sets, later layers overwriting earlier ones as their values do;
an error at a field path (msgspec's ``$.openai.rpm``, or a rule of ``_check``) is then
reported against the longest recorded prefix of that path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from .errors import ConfigError

#: Where a value came from, by field path (section,) or (section, key): the TOML file's
#: path, "environment variable STREAMGRADE_OPENAI__RPM" or :data:`CLI`.
Sources = dict[tuple[str, ...], str]
CLI = "command-line option"


class Invalid(Exception):
    """A value breaks a rule no type says; ``field`` (dotted) is the value, ``detail`` how."""

    def __init__(self, field: str, detail: str):
        super().__init__(f"{field}: {detail}")
        self.field, self.detail = field, detail


def note_sources(layer: Mapping[str, Any], label: str, sources: Sources) -> None:
    """Record ``label`` as the source of every section and (section, key) ``layer`` sets."""
    for section, value in layer.items():
        sources[(section,)] = label
        if isinstance(value, Mapping):
            for key in value:
                sources[(section, key)] = label


_AT_RE = re.compile(r"^(?P<detail>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN_RE = re.compile(r"unknown field `(?P<name>[^`]+)`")


def located(field: str, detail: str, sources: Sources) -> ConfigError:
    """A ConfigError for ``field`` (dotted, as ``openai.rpm`` or ``openai.prices[...].input``)
    that names the layer that supplied it: ``environment variable NAME: detail (field
    openai.rpm)``, ``FILE: openai.rpm: detail``, ``command-line option for openai.rpm: detail``."""
    names = re.findall(r"[^.\[\]]+|\[[^\]]*\]", field)
    parts = tuple(n for n in names if not n.startswith("["))
    source = next((sources[parts[:n]] for n in range(len(parts), 0, -1) if parts[:n] in sources), None)
    if source is None and parts:  # a whole section's rule: the layers that set its keys
        source = ", ".join(sorted({v for k, v in sources.items() if k[: len(parts)] == parts})) or None
    if source is None:
        return ConfigError(f"configuration: {field}: {detail}" if field else f"configuration: {detail}")
    if source.startswith("environment variable"):
        return ConfigError(f"{source}: {detail} (field {field})")
    if source == CLI:
        return ConfigError(f"command-line option for {field}: {detail}")
    return ConfigError(f"{source}: {field}: {detail}")


def validation_error(exc: msgspec.ValidationError, sources: Sources) -> ConfigError:
    """Map msgspec's ``... - at `$.section.key``` back to the layer that supplied it."""
    m = _AT_RE.match(str(exc))
    detail, path = m.group("detail"), (m.group("path") or "").lstrip(".")
    unknown = _UNKNOWN_RE.search(detail)
    if unknown:  # reported at the object that holds it: the field is the unknown one
        path = f"{path}.{unknown.group('name')}" if path else unknown.group("name")
    detail = detail.replace("`", "")
    return located(path, detail[:1].lower() + detail[1:], sources)
