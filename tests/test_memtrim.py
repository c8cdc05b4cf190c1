"""The C allocator's knobs (streamgrade.memtrim): each in a fresh interpreter, as they act on
the process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt and malloc_trim")

PROBE = ("from streamgrade.memtrim import limit_arenas, trim;"
         "print(limit_arenas(2), trim(), trim(every_s=3600))")


def _run(env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env_extra
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=60,
                          check=True).stdout.split()


@glibc
def test_arenas_are_capped_unless_the_operator_chose():
    assert _run({}) == ["True", "True", "False"]  # capped; trimmed once, then throttled
    assert _run({"MALLOC_ARENA_MAX": "4"})[0] == "False"  # the environment's choice stands
