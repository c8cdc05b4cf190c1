"""Give the C allocator's free memory back to the operating system.

A long run's resident memory grows without live data growing: tracemalloc sees the Python
heap flat from 10,000 to 100,000 sessions, while the C allocator's main arena (glibc
malloc: the event loop's larger objects, SQLite's pages) ends with ~13 MB free inside it
that it never returns, because a live block sits above the free ones. ``malloc_trim(0)``
(glibc >= 2.8) releases every free page of every arena (madvise ``MADV_DONTNEED``), wherever
it lies. :func:`trim` calls it, at most every ``every_s`` seconds; elsewhere (musl, macOS)
it does nothing.

:func:`limit_arenas` caps glibc's malloc arenas (``mallopt(M_ARENA_MAX)``, as the
``MALLOC_ARENA_MAX`` environment variable does): each worker thread (file writers, readers,
the reports' timer) otherwise gets an arena of its own, up to 8 per core, whose free pages
add up as the threads come and go.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time

_trim = None
_last = -1e18


def _load():
    global _trim
    if _trim is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _trim = libc.malloc_trim
            _trim.argtypes = [ctypes.c_size_t]
            _trim.restype = ctypes.c_int
        except (OSError, AttributeError):
            _trim = False
    return _trim


def trim(every_s: float = 0.0) -> bool:
    """Release the C allocator's free memory to the OS (glibc ``malloc_trim(0)``, a few ms
    on a 100 MB heap), unless it was done less than ``every_s`` seconds ago. Returns
    whether it ran."""
    global _last
    now = time.monotonic()
    if now - _last < every_s:
        return False
    fn = _load()
    if not fn:
        return False
    _last = now
    fn(0)
    return True


M_ARENA_MAX = -8  # glibc malloc.h


def limit_arenas(n: int = 2) -> bool:
    """Cap glibc's malloc arenas at ``n`` (``mallopt(M_ARENA_MAX, n)``); call it before worker
    threads start. Does nothing when ``MALLOC_ARENA_MAX`` is set (the operator's choice) or
    the C library is not glibc. Returns whether the cap was set."""
    import os

    if os.environ.get("MALLOC_ARENA_MAX") or not _load():
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, n))


__all__ = ["trim", "limit_arenas"]
