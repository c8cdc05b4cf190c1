"""Readers from other packages: the ``streamgrade.formats`` entry point group, and
:func:`register_format` for code that embeds streamgrade.

A third-party package adds a reader by declaring, in its own ``pyproject.toml``::

    [project.entry-points."streamgrade.formats"]
    my-dump = "my_package.reader:MyDumpFormat"

where ``MyDumpFormat`` is a class (or a ready instance) with the
:class:`~streamgrade.formats.base.Format` protocol (``name``, ``find``, ``assemble``,
optionally ``exclusive``). Plugins are asked after the config's mappings and before the
built-in readers. A plugin that cannot be loaded is logged with the reason and skipped; it
never stops a run. README.md, "Adding a reader", has a complete example.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from .base import Format

log = logging.getLogger("streamgrade.formats")

GROUP = "streamgrade.formats"
_registered: dict[str, Format] = {}
_loaded: dict[str, Format] | None = None


def register_format(fmt: Format) -> None:
    """Add a reader for this process (after the config's mappings, before the built-in
    readers); ``configure_formats`` places it. Replaces an earlier one of the same name."""
    _registered[fmt.name] = fmt


def unregister_format(name: str) -> None:
    """Remove a reader added with :func:`register_format` (tests)."""
    _registered.pop(name, None)


def plugin_formats() -> list[Format]:
    """The readers of installed packages' ``streamgrade.formats`` entry points (loaded once),
    then those added with :func:`register_format`."""
    global _loaded
    if _loaded is None:
        _loaded = {}
        for ep in entry_points(group=GROUP):
            try:
                obj = ep.load()
                fmt = obj() if isinstance(obj, type) else obj
                if not all(hasattr(fmt, a) for a in ("name", "find", "assemble")):
                    raise TypeError("not a Format: needs name, find and assemble")
                _loaded[fmt.name] = fmt
            except Exception as exc:  # a broken plugin must not stop a run
                log.warning("reader plugin %s (%s) not loaded: %s", ep.name, ep.value, exc)
    return [*_loaded.values(), *_registered.values()]


__all__ = ["register_format", "unregister_format", "plugin_formats", "GROUP"]
