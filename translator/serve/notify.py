"""The sd_notify protocol: telling systemd READY, STATUS, WATCHDOG, RELOADING and STOPPING.

Written here rather than taken from a library: ``sdnotify`` (last release 2017) swallows every
error silently; ``systemd-python`` and ``cysystemd`` are C extensions that need libsystemd-dev and
a compiler on the box. The protocol is one ``sendto`` of ``KEY=value`` lines on an ``AF_UNIX``
datagram socket.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

log = logging.getLogger("translator.service")


class Notifier:
    """``KEY=value`` lines in one datagram to ``$NOTIFY_SOCKET``, and the watchdog's schedule.

    A socket name starting with ``@`` is in the abstract namespace; without ``$NOTIFY_SOCKET`` (not
    under systemd) every call is a no-op. The variables are removed from the environment so child
    processes (espeak-ng) do not inherit them, as ``sd_notify(unset_environment=1)`` does.
    """

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", "")
        usec = env.pop("WATCHDOG_USEC", "")
        pid = env.pop("WATCHDOG_PID", "")
        self.address: bytes | None = None
        if address.startswith("@"):
            self.address = b"\0" + os.fsencode(address[1:])
        elif address.startswith("/"):
            self.address = os.fsencode(address)
        self.watchdog_interval: float | None = None
        """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), None when no watchdog is set."""
        try:
            if int(usec) > 0 and (not pid or int(pid) == os.getpid()):
                self.watchdog_interval = int(usec) / 2 / 1e6
        except ValueError:
            pass
        self.next_ping = 0.0
        """``time.monotonic()`` when the next WATCHDOG=1 is due."""
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; False when not under systemd or it failed."""
        if self.address is None:
            return False
        message = "\n".join(f.replace("\n", " ") for f in fields).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(message, self.address)
            except OSError as e:
                if not self._failed:
                    self._failed = True  # said once: a datagram per tick would flood the journal
                    log.warning("cannot notify systemd at %s (%s)", os.fsdecode(self.address).replace("\0", "@"), e.strerror or e)
                return False
        self._failed = False
        return True

    def watchdog(self, now: float, healthy: bool) -> bool:
        """WATCHDOG=1 when one is due and ``healthy``; True when a ping was sent.

        An unhealthy pipeline is simply not pinged: systemd then kills and restarts the service
        ``WatchdogSec=`` later, which is what a hung stage needs.
        """
        interval = self.watchdog_interval
        if interval is None or now < self.next_ping or not healthy:
            return False
        self.next_ping = now + interval
        return self.send("WATCHDOG=1")

    def until_ping(self, now: float, tick: float) -> float:
        """How long the main loop may sleep: ``tick``, or less when a ping is due sooner."""
        if self.watchdog_interval is None:
            return tick
        return min(tick, max(self.next_ping - now, 0.01))

    def reloading(self, status: str) -> None:
        """RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC), which systemd 253 and later use to
        tell this reload from an earlier one."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", f"STATUS={status}")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
