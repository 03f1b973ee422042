"""The listener: ``tcp://``, ``unix://`` or ``stdio://``; sessions bounded; stopped by SIGTERM.

At most ``max_sessions`` connections are served at once (one per usable core by default): each
runs its own pipeline, and a decode takes a core, so more at once would only make every answer
late. As many more wait for a place, each up to ``idle_timeout``; past that a client is told the
server is busy and closed, so a burst of clients costs a bounded amount of memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from translator import cores
from translator.config import WyomingSettings
from translator.errors import ConfigError, TranslatorError
from translator.serve.notify import Notifier
from translator.wyoming.connection import Connection
from translator.wyoming.engine import TRANSLATE, LocalEngine
from translator.wyoming.info import build_info
from translator.wyoming.protocol import write_error

log = logging.getLogger("translator.wyoming")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, it was meant to be reached


def tcp_address(uri: str) -> tuple[str, int]:
    parsed = urlparse(uri)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname or port is None:
        raise ConfigError(f"wyoming.uri: {uri!r} names no host and port; give tcp://HOST:PORT, e.g. tcp://127.0.0.1:10300")
    return parsed.hostname, port


class Server:
    def __init__(self, engine: LocalEngine, settings: WyomingSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.sessions = settings.max_sessions or cores.threads(0)
        self.info = build_info(engine, transcript_streaming=settings.transcript_streaming).event()
        self._slots = asyncio.Semaphore(self.sessions)
        self._waiting = 0
        self._connections: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._count = 0

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._count += 1
        name = writer.get_extra_info("peername")
        peer = f"client {self._count}" + (f" ({name[0]}:{name[1]})" if isinstance(name, tuple) else "")
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            if not await self._place(peer, writer):
                return
            try:
                await Connection(reader, writer, self.engine, self.settings, self.info, peer).run()
            finally:
                self._slots.release()
        finally:
            if task is not None:
                self._connections.discard(task)

    async def _place(self, peer: str, writer: asyncio.StreamWriter) -> bool:
        """Wait for a session slot; False (the client told and closed) when the server is full."""
        if self._slots.locked():
            if self._waiting >= self.sessions:
                return await self._busy(peer, writer, f"{self.sessions} sessions and {self._waiting} waiting")
            self._waiting += 1
            try:
                await asyncio.wait_for(self._slots.acquire(), self.settings.idle_timeout)
            except TimeoutError:
                return await self._busy(peer, writer, f"no session free within {self.settings.idle_timeout:g} s")
            finally:
                self._waiting -= 1
            return True
        await self._slots.acquire()
        return True

    @staticmethod
    async def _busy(peer: str, writer: asyncio.StreamWriter, why: str) -> bool:
        log.warning("%s: refused, the server is busy (%s)", peer, why)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(write_error(writer, f"server busy ({why}); try again", "busy"), 2.0)
        writer.close()
        return False

    async def run(self) -> None:
        """Serve until SIGTERM or SIGINT; the connections in progress are closed then."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        uri = self.settings.uri
        scheme = uri.partition("://")[0]
        if scheme == "stdio":
            await self._stdio()
            return
        limit = self.settings.max_header
        if scheme == "unix":
            path = Path(uri.partition("://")[2])
            path.unlink(missing_ok=True)  # a socket left by a server that did not stop cleanly
            server = await asyncio.start_unix_server(self._client, path=str(path), limit=limit)
        else:
            host, port = tcp_address(uri)
            try:
                server = await asyncio.start_server(self._client, host, port, limit=limit, reuse_address=True)
            except OSError as e:
                # Not a ConfigError: a port still held by a process that is going away frees itself, so systemd may retry.
                raise TranslatorError(
                    f"wyoming.uri: cannot listen on {host}:{port} ({e.strerror}); stop what uses it or choose another port"
                ) from None
            if not is_loopback(host):
                log.warning("listening on %s: reachable from the network, as wyoming.uri says (loopback is the default)", uri)
        if self.settings.zeroconf:
            await self._announce(uri)
        self._ready(uri)
        async with server:
            await self._stop.wait()
            server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
        if scheme == "unix":
            path.unlink(missing_ok=True)
        log.info("stopped")

    async def _stdio(self) -> None:
        """One client on stdin/stdout (a parent process speaking Wyoming to its child)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=self.settings.max_header)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout)
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        self._ready("stdio://")
        served = asyncio.create_task(self._client(reader, writer))
        stopped = asyncio.create_task(self._stop.wait())
        await asyncio.wait({served, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (served, stopped):
            task.cancel()
        await asyncio.gather(served, stopped, return_exceptions=True)

    async def _announce(self, uri: str) -> None:
        """mDNS for Home Assistant's discovery (TCP only; the zeroconf package is optional)."""
        if not uri.startswith("tcp://"):
            raise ConfigError("wyoming.zeroconf: only a tcp:// server can be announced")
        try:
            from wyoming.zeroconf import HomeAssistantZeroconf  # noqa: PLC0415 - needs the optional zeroconf package
        except ImportError:
            raise ConfigError("wyoming.zeroconf needs the zeroconf package: pip install zeroconf") from None
        host, port = tcp_address(uri)
        announcer = HomeAssistantZeroconf(
            port=port, name=f"translator-{socket.gethostname()}", host=None if host in ("0.0.0.0", "::") else host
        )
        await announcer.register_server()  # withdrawn when the process ends
        log.info("announced over mDNS as %s", announcer.name)

    def _ready(self, uri: str) -> None:
        offered = ", ".join([self.engine.model_name] + [TRANSLATE + t for t in self.engine.targets])
        voices = len(self.engine.voices())
        log.info(
            "ready on %s: asr (%s), tts (%d voice%s), handle; %d sessions at once",
            uri,
            offered,
            voices,
            "" if voices == 1 else "s",
            self.sessions,
        )
        Notifier().send("READY=1", f"STATUS=serving Wyoming on {uri}")
