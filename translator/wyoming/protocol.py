"""Wyoming events off the wire, within bounds; and onto it.

An event is a JSON header line, then ``data_length`` bytes of JSON merged into its data, then
``payload_length`` bytes of payload (audio). The wyoming library's reader trusts its peer: it
reads a header line, data and payload of any size whole. A server that Home Assistant and every
satellite on a LAN connect to cannot: here the header line is capped by the stream's own limit
(the server opens every stream with ``limit = max_header``) and the two lengths together by
``max_payload``, checked before a byte of them is read. The same checks guard the blocking client
of a remote backend (:mod:`translator.wyoming.backend`), whose server is a LAN host too. What breaks the framing raises a
:class:`ProtocolError`: the connection cannot be trusted after it, so the caller answers with
an ``error`` event and closes it.

This module knows nothing of speech; the engines are the handlers' business.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from wyoming.error import Error
from wyoming.event import Event, async_write_event

Send = Callable[[Event], Awaitable[None]]
"""How a handler answers its client."""


class ProtocolError(Exception):
    """The client broke the framing: the connection ends; ``str()`` is the one line its
    ``error`` event carries."""

    code = "protocol"


class TooLarge(ProtocolError):
    code = "too-large"


class Malformed(ProtocolError):
    code = "malformed"


class Refused(Exception):
    """A well-formed request this server will not serve (a model it does not offer, audio in a
    format it does not take, more audio than a request may send): answered with an ``error``
    event, while the connection goes on; ``code`` names the kind."""

    def __init__(self, message: str, code: str = "refused") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Limits:
    header: int
    """Bytes of the JSON header line, newline included."""
    payload: int
    """Bytes of ``data_length`` + ``payload_length``."""


def _length(header: dict[str, Any], key: str) -> int:
    value = header.get(key) or 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Malformed(f"{key} must be a whole number of bytes, got {value!r}")
    return value


def parse_header(line: bytes, limits: Limits) -> tuple[str, dict[str, Any], int, int]:
    """A header line as (type, data, data_length, payload_length), the lengths checked against
    ``limits`` before a byte of them is read; ProtocolError for what breaks the framing."""
    try:
        header = json.loads(line)
    except ValueError:  # JSONDecodeError, and UnicodeDecodeError for bytes that are no UTF-8
        raise Malformed("event header is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise Malformed("event header must be a JSON object with a string 'type'")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise Malformed("event 'data' must be a JSON object")
    data_length, payload_length = _length(header, "data_length"), _length(header, "payload_length")
    if data_length + payload_length > limits.payload:
        raise TooLarge(f"event data and payload of {data_length + payload_length} bytes; at most {limits.payload} are taken")
    return header["type"], data, data_length, payload_length


def merge_data(data: dict[str, Any], extra: bytes) -> dict[str, Any]:
    """``data`` with the ``data_length`` bytes that followed the header merged in."""
    if not extra:
        return data
    try:
        more = json.loads(extra)
    except ValueError:
        raise Malformed("event data is not JSON") from None
    if not isinstance(more, dict):
        raise Malformed("event data must be a JSON object")
    return {**data, **more}


async def read_event(reader: asyncio.StreamReader, limits: Limits) -> Event | None:
    """The next event, or None when the client closed the connection between events."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        raise Malformed("the connection closed inside an event header") from None
    except asyncio.LimitOverrunError:
        raise TooLarge(too_long(limits)) from None
    event_type, data, data_length, payload_length = parse_header(line, limits)
    try:
        extra = await reader.readexactly(data_length) if data_length else b""
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        raise Malformed("the connection closed inside an event's data or payload") from None
    return Event(type=event_type, data=merge_data(data, extra), payload=payload)


def too_long(limits: Limits) -> str:
    return f"event header longer than {limits.header} bytes"


async def write_event(writer: asyncio.StreamWriter, event: Event) -> None:
    """One event to the client (header, data and payload are written without an await between
    them, so events written from two tasks never interleave)."""
    await async_write_event(event, writer)


async def write_error(writer: asyncio.StreamWriter, text: str, code: str) -> None:
    await write_event(writer, Error(text=text, code=code).event())
