"""A small client of systemd's service notification protocol (no libsystemd needed).

systemd passes a ``Type=notify`` service the address of a unix datagram socket in
``$NOTIFY_SOCKET``; the service sends it newline-separated ``KEY=VALUE`` assignments, one
state change per datagram, as described in sd_notify(3):

* ``READY=1``: start-up finished (``systemctl start`` returns, dependants start);
* ``STATUS=...``: a one-line, human-readable status shown by ``systemctl status``;
* ``STOPPING=1``: the service began shutting down;
* ``WATCHDOG=1``: the keep-alive ping of the service watchdog (``WatchdogSec=``).

The address is an absolute file system path, or, when it starts with ``@``, a name in the
Linux abstract socket namespace (the ``@`` stands for the leading NUL byte), as in
sd_notify(3). Other forms (``vsock:`` of newer systemd) are not supported and disable the
client with one warning.

:func:`watchdog_interval` reads ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID`` like
sd_watchdog_enabled(3) and returns the recommended ping interval, half the timeout.

Outside systemd (``$NOTIFY_SOCKET`` unset) every call is a no-op. Socket errors never
propagate into the daemon: the first one is logged as a warning, later ones at debug
level, and the datagram is dropped (a lost ``WATCHDOG=1`` is covered by the next ping,
sent at half the timeout).
"""

from __future__ import annotations

import logging
import os
import re
import socket
from typing import Mapping

log = logging.getLogger("streamgrade.sdnotify")

_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _address(raw: str | None) -> str | bytes | None:
    """The socket address for ``sendto`` from a ``$NOTIFY_SOCKET`` value, or None when it
    is unset or empty. Raises ValueError for an unsupported form."""
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()  # abstract namespace, sd_notify(3)
    if raw.startswith("/"):
        return raw
    raise ValueError(f"unsupported NOTIFY_SOCKET address {raw!r} (expected an absolute path or @name)")


def _value(value: object) -> str:
    if value is True:
        return "1"
    if value is False:
        return "0"
    # One assignment a line: a newline inside a value would start a bogus assignment.
    return " ".join(str(value).splitlines())


class Notifier:
    """Send sd_notify(3) messages to ``$NOTIFY_SOCKET`` (or the ``address`` given).

    ``enabled`` is False outside systemd, and then every method does nothing and returns
    False. Methods return True when the datagram was sent. They never raise for I/O errors;
    :meth:`notify` raises ValueError only for a field name that is not ``[A-Z][A-Z0-9_]*``
    (a programming error)."""

    def __init__(self, address: str | None = None, *, env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        raw = address if address is not None else env.get("NOTIFY_SOCKET")
        self.raw_address = raw or None
        self._warned = False
        self._sock: socket.socket | None = None
        try:
            self._addr = _address(raw)
        except ValueError as exc:
            self._addr = None
            self._warn(str(exc))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Notifier":
        return cls(env=env)

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def _warn(self, msg: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("sd_notify: %s (further errors at debug level)", msg)
        else:
            log.debug("sd_notify: %s", msg)

    def notify(self, **fields: object) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram, e.g. ``notify(READY=1, STATUS="up")``
        sends ``b"READY=1\\nSTATUS=up"``. True/False become 1/0; newlines inside a value
        become spaces."""
        for key in fields:
            if not _KEY.match(key):
                raise ValueError(f"invalid sd_notify field name {key!r}")
        if self._addr is None or not fields:
            return False
        data = "\n".join(f"{k}={_value(v)}" for k, v in fields.items()).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the event loop on a full receive queue: drop and warn instead.
                self._sock.setblocking(False)
            self._sock.sendto(data, self._addr)
            return True
        except OSError as exc:
            self._warn(f"cannot send to {self.raw_address}: {exc.strerror or exc}")
            return False

    def ready(self) -> bool:
        """``READY=1``: start-up finished (sd_notify(3))."""
        return self.notify(READY=1)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the keep-alive ping (sd_notify(3), sd_watchdog_enabled(3))."""
        return self.notify(WATCHDOG=1)

    def stopping(self) -> bool:
        """``STOPPING=1``: shutting down (sd_notify(3))."""
        return self.notify(STOPPING=1)

    def status(self, text: str) -> bool:
        """``STATUS=text``: one line for ``systemctl status`` (sd_notify(3))."""
        return self.notify(STATUS=text)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "Notifier":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """The watchdog ping interval in seconds, or None when no watchdog is asked for.

    As sd_watchdog_enabled(3): ``$WATCHDOG_USEC`` is the timeout in microseconds (a
    positive integer), and ``$WATCHDOG_PID``, when set, must be this process's PID (else the
    variables were meant for another process, e.g. inherited from a parent). The result is
    half the timeout, the ping interval that page recommends."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    try:
        timeout = int(usec)
    except ValueError:
        log.warning("sd_notify: ignoring WATCHDOG_USEC=%r (not an integer)", usec)
        return None
    if timeout <= 0:
        return None
    wpid = env.get("WATCHDOG_PID")
    if wpid:
        try:
            if int(wpid) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return timeout / 1e6 / 2
