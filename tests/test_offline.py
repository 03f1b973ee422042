"""The offline guarantee: the whole file pipeline runs with every non-loopback connection refused.

The guard is a ``sys.addaudithook`` hook on ``socket.connect``/``sendto``/``getaddrinfo``: it sees
every connection any library (or C extension going through Python's socket module) tries, records
it and makes it fail. It is installed once per process (audit hooks cannot be removed) and only
armed inside the ``no_network`` fixture. Loopback and Unix sockets stay allowed (PulseAudio, the
test's own servers).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from translator.offline import OFFLINE_ENV, enforce_offline, is_offline

GERMAN_CLIP = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "speech" / "de" / "picovoice_leopard_test_de.wav"
_NAME_LOOKUPS = ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr")


class SocketGuard:
    def __init__(self) -> None:
        self.armed = False
        self.blocked: list[str] = []

    @staticmethod
    def _local_host(host: object) -> bool:
        if host in (None, "", "localhost", b"localhost"):
            return True
        if isinstance(host, bytes):
            host = host.decode(errors="replace")
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False  # a host name other than localhost would need DNS: not offline

    def _local_address(self, address: object) -> bool:
        if isinstance(address, (str, bytes)):  # AF_UNIX path
            return True
        if isinstance(address, tuple) and address:
            return self._local_host(address[0])
        return False

    def hook(self, event: str, args: tuple) -> None:
        if not self.armed:
            return
        if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
            address = args[1] if len(args) > 1 else None
            if not self._local_address(address):
                self._refuse(f"{event} {address!r}")
        elif event in _NAME_LOOKUPS and not self._local_host(args[0] if args else None):
            self._refuse(f"{event} {args[0]!r}")

    def _refuse(self, what: str) -> None:
        self.blocked.append(what)
        raise OSError(f"network access during an offline test: {what}")


_GUARD = SocketGuard()
sys.addaudithook(_GUARD.hook)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[SocketGuard]:
    from huggingface_hub import constants

    for key in OFFLINE_ENV:  # restored afterwards: enforce_offline() changes the whole process
        monkeypatch.setenv(key, "0")
        monkeypatch.delenv(key)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)
    _GUARD.blocked.clear()
    _GUARD.armed = True
    try:
        yield _GUARD
    finally:
        _GUARD.armed = False


def test_the_guard_refuses_the_network_and_allows_loopback(no_network: SocketGuard) -> None:
    with pytest.raises(OSError, match="network access during an offline test"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: never routable
    with pytest.raises(OSError, match="network access"):
        socket.getaddrinfo("huggingface.co", 443)
    server = socket.create_server(("127.0.0.1", 0))
    with server, socket.create_connection(server.getsockname(), timeout=1):
        pass
    assert len(no_network.blocked) == 2
    no_network.blocked.clear()


def test_enforce_offline_switches_the_hub_libraries_off(no_network: SocketGuard) -> None:
    from huggingface_hub import constants

    enforce_offline()
    for key, value in OFFLINE_ENV.items():
        assert __import__("os").environ[key] == value
    assert constants.HF_HUB_OFFLINE is True
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    with pytest.raises((OfflineModeIsEnabled, LocalEntryNotFoundError)):
        hf_hub_download("Systran/faster-whisper-tiny", "config.json", cache_dir=str(Path("/nonexistent")))
    assert no_network.blocked == []  # refused by the library itself, before any socket


def test_is_offline_reads_the_switch_now(no_network: SocketGuard, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert is_offline() is False  # downloads allowed: 'translator models install' may run
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "yes")  # set after huggingface_hub read the environment
    assert is_offline() is True
    monkeypatch.delenv("TRANSFORMERS_OFFLINE")
    assert is_offline() is False
    enforce_offline()
    assert is_offline() is True


def test_whole_file_pipeline_makes_no_network_connection(
    no_network: SocketGuard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from translator.cli import main

    if not GERMAN_CLIP.is_file():
        pytest.fail(f"speech corpus not found at {GERMAN_CLIP}")
    monkeypatch.setenv("TRANSLATOR_MODELS", str(tmp_path_factory.getbasetemp() / "offline-store"))
    code = main(
        ["translate", str(GERMAN_CLIP), "--to", "en", "-o", str(tmp_path / "o.wav"), "--jsonl", str(tmp_path / "t.jsonl")]
    )
    assert no_network.blocked == [], f"the pipeline tried to reach the network: {no_network.blocked}"
    assert code == 0
    lines = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines, "no utterance was written to the transcript"
    assert (tmp_path / "o.wav").stat().st_size > 44
