"""``translator wyoming`` over its other transports (unix://, stdio://) and announced over mDNS.

Each test starts its own small server (tiny.en, no voice): these are about the transport, not the
models.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import subprocess
from pathlib import Path

from conftest import REPO, skip_or_fail
from test_wyoming import Server, describe, free_port, read, running, wyoming_cmd
from wyoming.client import AsyncUnixClient
from wyoming.event import read_event, write_event
from wyoming.info import Describe, Info

SMALL = ("--asr", "tiny.en", "--set", "tts.enabled=false")
"""The quickest server to start: these tests are about the transport, not the models."""


def test_a_unix_socket_server_serves_and_removes_its_socket(tmp_path: Path) -> None:
    path = tmp_path / "wyoming.sock"

    async def go() -> Info:
        async with AsyncUnixClient(str(path)) as c:
            await c.write_event(Describe().event())
            return Info.from_event(await read(c))

    with running(Server(wyoming_cmd(f"unix://{path}", *SMALL)), r"ready on unix://"):
        info = asyncio.run(go())
        assert [m.name for m in info.asr[0].models][0] == "tiny.en" and not info.tts
    assert not path.exists()


def test_a_stdio_server_serves_its_parent_and_ends_with_its_input(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        wyoming_cmd("stdio://", *SMALL), cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        write_event(Describe().event(), proc.stdin)
        event = read_event(proc.stdout)
        assert event is not None and Info.is_type(event.type), event
        assert Info.from_event(event).asr[0].models[0].name == "tiny.en"
        proc.stdin.close()  # the one client leaves: the server is done
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.stderr is not None
    assert b"ready on stdio://" in proc.stderr.read()


def test_zeroconf_announces_the_tcp_server_as_the_peers_do() -> None:
    """Found by the zeroconf package's own browser, as Home Assistant finds Wyoming services: the
    ``_wyoming._tcp`` type, and an address and port that reach the server."""
    try:
        from zeroconf import ServiceBrowser, ServiceListener, Zeroconf  # noqa: PLC0415 - an optional extra
    except ImportError:
        skip_or_fail("the zeroconf package is not installed (pip install -e '.[zeroconf]')")
    port = free_port()
    found: queue.Queue[tuple[str, list[str], int]] = queue.Queue()

    class Listener(ServiceListener):
        def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            info = zc.get_service_info(type_, name, timeout=5000)
            if info is not None and info.port == port:
                found.put((name, [socket.inet_ntoa(a) for a in info.addresses], info.port))

        def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            pass

        def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            pass

    s = Server(wyoming_cmd(f"tcp://127.0.0.1:{port}", *SMALL, "--zeroconf"), port)
    zc = Zeroconf()
    try:
        ServiceBrowser(zc, "_wyoming._tcp.local.", Listener())
        s.wait_line(r"announced over mDNS as translator-", timeout=300)
        name, addresses, announced = found.get(timeout=30)
        assert name.startswith("translator-") and name.endswith("._wyoming._tcp.local.")
        assert addresses == ["127.0.0.1"] and announced == port
        s.wait_line(r"ready on tcp://", timeout=30)
        assert [m.name for m in asyncio.run(describe(port)).asr[0].models][0] == "tiny.en"
    finally:
        zc.close()
        assert s.stop() == 0, s.log(50)
