"""A Wyoming server on the LAN as a backend: one bounded request per connection, and its health.

``asr.backend`` (:mod:`~translator.wyoming.remote_asr`) and ``tts.backend``
(:mod:`~translator.wyoming.remote_tts`) are both a blocking client of a server the pipeline does
not control. One connection per request: a request is a few hundred milliseconds of work, the
connection a millisecond on a LAN, and nothing is left half-open between utterances. Whatever the
server sends is read within the bounds :mod:`~translator.wyoming.protocol` holds the server's own
clients to, and the whole answer within the backend's timeout, so a server that trickles cannot
stall the pipeline.

A backend that fails is left alone for :data:`RETRY_AFTER` seconds, so an outage does not add
the timeout to every request; that it is down, and that it is back, is said once each.
"""

from __future__ import annotations

import contextlib
import socket
import time
import typing
from collections.abc import Iterator
from typing import BinaryIO

from wyoming.error import Error
from wyoming.event import Event, write_event

from translator.config import wyoming_address
from translator.events import Notice, NoticeLevel
from translator.wyoming.protocol import Limits, ProtocolError, merge_data, parse_header, too_long

RETRY_AFTER = 30.0
"""Seconds a failed backend is left alone before the next request tries it again."""
LIMITS = Limits(header=16 * 1024, payload=4 * 1024 * 1024)
"""A header line of 16 KiB, an event's data and payload of 4 MiB: an audio-chunk is a few kilobytes."""


class BackendError(Exception):
    """The backend answered, but not as the protocol says."""


def read_bounded(stream: BinaryIO, limits: Limits = LIMITS) -> Event | None:
    """One event, None at the end of the stream; a BackendError for what breaks the framing or the bounds."""
    line = stream.readline(limits.header + 1)
    if not line:
        return None
    try:
        if not line.endswith(b"\n"):
            if len(line) > limits.header:
                raise ProtocolError(too_long(limits))
            raise BackendError("closed mid-event")
        event_type, data, data_length, payload_length = parse_header(line, limits)
        data = merge_data(data, _exactly(stream, data_length))
    except ProtocolError as e:
        raise BackendError(f"broke the protocol: {e}") from e
    return Event(type=event_type, data=data, payload=_exactly(stream, payload_length) if payload_length else None)


def _exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size) if size else b""  # a buffered socket file reads until it has them all, or the end
    if len(data) < size:
        raise BackendError("closed mid-event")
    return data


class Exchange:
    """One request's connection: events out, the answer's events in, all before one deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._stream = typing.cast(BinaryIO, sock.makefile("rwb"))  # the library's annotation; a socket file is one
        self._deadline = deadline

    def send(self, event: Event) -> None:
        self._left()
        write_event(event, self._stream)

    def read(self) -> Event:
        """The next event; BackendError for an ``error`` event or a connection closed first."""
        self._left()
        event = read_bounded(self._stream)
        if event is None:
            raise BackendError("closed the connection before the end of its answer")
        if Error.is_type(event.type):
            raise BackendError(f"refused: {Error.from_event(event).text}")
        return event

    def _left(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self._sock.settimeout(left)


class Backend:
    """Where a backend is (``wyoming://HOST:PORT``) and how long a request may take."""

    def __init__(self, uri: str, timeout: float, setting: str) -> None:
        self.uri = uri
        self.host, self.port = wyoming_address(uri, setting)
        self.timeout = timeout
        self.name = f"wyoming:{self.host}:{self.port}"

    @contextlib.contextmanager
    def exchange(self) -> Iterator[Exchange]:
        """A connection for one request; OSError (TimeoutError included) or BackendError on failure."""
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
                yield Exchange(sock, time.monotonic() + self.timeout)
        except TimeoutError as e:  # the socket's own message is a bare "timed out"
            raise TimeoutError(f"no whole answer within {self.timeout:g} s") from e


class Health:
    """A backend as its users see it: tried unless it failed in the last :data:`RETRY_AFTER`
    seconds; its failure and its return are said once each, as Notices waiting in
    :meth:`take_notices` for the stage that drains them."""

    def __init__(self, what: str, uri: str) -> None:
        self.what = what
        """``asr backend``, ``tts backend``: how the notices name it."""
        self.uri = uri
        self._retry_at = 0.0
        self._down = False
        self._notices: list[Notice] = []

    def due(self) -> bool:
        return time.monotonic() >= self._retry_at

    def failed(self, why: str, instead: str) -> None:
        self._retry_at = time.monotonic() + RETRY_AFTER
        if self._down:
            return
        self._down = True
        self._notices.append(
            Notice(
                f"{self.what} {self.uri} failed ({why}): {instead}; trying it again every {RETRY_AFTER:g} s",
                time.monotonic(),
                NoticeLevel.WARNING,
            )
        )

    def recovered(self) -> None:
        if self._down:
            self._down = False
            self._notices.append(Notice(f"{self.what} {self.uri} is back", time.monotonic()))

    def take_notices(self) -> list[Notice]:
        notices, self._notices = self._notices, []
        return notices
