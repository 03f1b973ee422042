"""The Wyoming server's own pieces, without models: bounded event reading and the audio conversions."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from wyoming.audio import AudioChunk
from wyoming.event import Event, async_write_event

from translator.errors import ConfigError
from translator.events import SAMPLE_RATE
from translator.wyoming.pcm import Decoder, FormatError, encode
from translator.wyoming.protocol import Limits, Malformed, TooLarge, read_event

LIMITS = Limits(header=1024, payload=4096)


def read(data: bytes, limits: Limits = LIMITS) -> Event | None:
    async def go() -> Event | None:
        reader = asyncio.StreamReader(limit=limits.header)
        reader.feed_data(data)
        reader.feed_eof()
        return await read_event(reader, limits)

    return asyncio.run(go())


def wire(event: Event) -> bytes:
    """``event`` as the wyoming library writes it."""

    class Sink:
        def __init__(self) -> None:
            self.data = b""

        def writelines(self, parts: list[bytes]) -> None:
            self.data += b"".join(parts)

        def write(self, part: bytes) -> None:
            self.data += part

        async def drain(self) -> None:
            pass

    sink = Sink()
    asyncio.run(async_write_event(event, sink))  # type: ignore[arg-type]
    return sink.data


def test_an_event_written_by_the_library_reads_back_with_its_data_and_payload() -> None:
    chunk = AudioChunk(rate=16000, width=2, channels=1, audio=b"\x01\x02" * 100)
    event = read(wire(chunk.event()))
    assert event is not None and AudioChunk.is_type(event.type)
    back = AudioChunk.from_event(event)
    assert (back.rate, back.width, back.channels, back.audio) == (16000, 2, 1, chunk.audio)
    assert read(b"") is None  # closed between events


@pytest.mark.parametrize(
    ("data", "error", "needle"),
    [
        (b'{"type": "x", "pad": "' + b"a" * 2000 + b'"}\n', TooLarge, "header longer than 1024"),
        (b'{"type": "audio-chunk", "payload_length": 5000}\n', TooLarge, "5000 bytes; at most 4096"),
        (b'{"type": "x", "data_length": 3000, "payload_length": 3000}\n', TooLarge, "6000 bytes"),
        (b"{not json\n", Malformed, "not JSON"),
        (b"[1, 2]\n", Malformed, "string 'type'"),
        (b'{"type": "x", "data": [1]}\n', Malformed, "'data' must be a JSON object"),
        (b'{"type": "x", "payload_length": -1}\n', Malformed, "payload_length must be a whole number"),
        (b'{"type": "x", "payload_length": 10}\nabc', Malformed, "closed inside"),
        (b'{"type": "x", "data_length": 3}\n[1]', Malformed, "data must be a JSON object"),
        (b'{"type": "x"', Malformed, "closed inside an event header"),
    ],
)
def test_what_breaks_the_framing_or_the_bounds_is_refused_before_it_is_read(data: bytes, error: type, needle: str) -> None:
    with pytest.raises(error, match=needle):
        read(data)


def test_a_payload_is_refused_by_its_announced_length_without_waiting_for_its_bytes() -> None:
    async def go() -> None:
        reader = asyncio.StreamReader(limit=LIMITS.header)
        reader.feed_data(json.dumps({"type": "audio-chunk", "payload_length": 10**9}).encode() + b"\n")
        # no EOF and no payload: a reader that waited for the bytes would hang here
        with pytest.raises(TooLarge):
            await asyncio.wait_for(read_event(reader, LIMITS), 5)

    asyncio.run(go())


def test_stereo_44k_int16_becomes_16k_mono_float_across_chunks() -> None:
    rate = 44100
    t = np.arange(rate) / rate
    left = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    stereo = np.stack([left, np.zeros_like(left)], axis=1)  # speech on one side only is still heard
    decode = Decoder(rate, 2, 2)
    step = 4410
    pieces = [decode(stereo[k : k + step].tobytes(), rate, 2, 2) for k in range(0, rate, step)]
    out = np.concatenate(pieces + [decode.tail()])
    assert out.dtype == np.float32
    assert abs(len(out) - SAMPLE_RATE) <= 2
    assert 0.2 < np.abs(out[2000:-2000]).max() <= 0.26  # the mean of 0.5 and silence


def test_8bit_unsigned_and_32bit_audio_scale_to_the_same_level() -> None:
    assert np.allclose(Decoder(16000, 1, 1)(bytes([128, 255, 0]), 16000, 1, 1), [0.0, 127 / 128, -1.0])
    full = np.array([2**30], dtype="<i4").tobytes()
    assert np.allclose(Decoder(16000, 4, 1)(full, 16000, 4, 1), [0.5])


@pytest.mark.parametrize(
    ("fmt", "needle"),
    [((16000, 3, 1), "3-byte samples"), ((4000, 2, 1), "4000 Hz"), ((16000, 2, 9), "9 channels")],
)
def test_formats_not_taken_are_refused_saying_what_to_send(fmt: tuple[int, int, int], needle: str) -> None:
    with pytest.raises(FormatError, match=needle):
        Decoder(*fmt)


def test_a_stream_keeps_its_format_and_whole_frames() -> None:
    decode = Decoder(16000, 2, 1)
    with pytest.raises(FormatError, match="keep one format per stream"):
        decode(b"\0\0", 22050, 2, 1)
    with pytest.raises(FormatError, match="whole number of 2-byte frames"):
        decode(b"\0\0\0", 16000, 2, 1)


def test_speech_goes_out_as_16_bit_little_endian_clipped() -> None:
    out = np.frombuffer(encode(np.array([0.0, 1.0, -1.0, 2.0], dtype=np.float32)), dtype="<i2")
    assert out.tolist() == [0, 32767, -32767, 32767]


def test_a_bind_beyond_loopback_is_told_apart() -> None:
    from translator.wyoming.server import is_loopback, tcp_address

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.20", "homeassistant.local"))
    assert tcp_address("tcp://[::1]:10300") == ("::1", 10300)
    with pytest.raises(ConfigError, match="names no host and port"):
        tcp_address("tcp://127.0.0.1")
