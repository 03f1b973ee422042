"""``translator wyoming`` against the real wyoming client library on 127.0.0.1: real models, real audio.

One server for the module (base, the bundled Piper voice, a test-built de->en text model), started
as a user would start it; every test is a client of it, and the bad clients are each followed by
a good one, which the server must still answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, SPEECH, clip
from mtmodels import build_marian
from procs import Watched
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

IDLE = 3.0
"""The server's idle timeout here: short, so the idle client is timed out quickly."""
MAX_AUDIO = 20.0
READ_TIMEOUT = 120.0
"""Seconds a client waits for one answer before the test fails (a hang, not a slow answer)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wyoming_cmd(uri: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "translator.cli", "wyoming", "--uri", uri, *args]


class Server(Watched):
    label = "translator wyoming"

    def __init__(self, cmd: list[str], port: int = 0, env: dict[str, str] | None = None) -> None:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )
        assert proc.stderr is not None
        super().__init__(proc, proc.stderr)
        self.port = port


@contextlib.contextmanager
def running(server: Server, ready: str, timeout: float = 300) -> Iterator[Server]:
    """``server`` once its log says ``ready``; stopped on the way out, which must be clean."""
    try:
        server.wait_line(ready, timeout=timeout)
        yield server
    finally:
        assert server.stop() == 0, server.log(50)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Iterator[Server]:
    mt_dir = tmp_path_factory.mktemp("mt") / "opus-mt-de-en"
    build_marian(mt_dir, "de", "en")
    port = free_port()
    settings = [f"wyoming.idle_timeout={IDLE}", f"wyoming.max_audio={MAX_AUDIO}", "wyoming.max_sessions=2"]
    s = Server(
        wyoming_cmd(f"tcp://127.0.0.1:{port}", "--asr", "base", "--mt-model", str(mt_dir), *(f"--set={x}" for x in settings)),
        port,
    )
    with running(s, r"ready on tcp://", timeout=300):
        yield s


# --- a client -------------------------------------------------------------------------------------


async def read(client: AsyncTcpClient) -> Event:
    event = await asyncio.wait_for(client.read_event(), READ_TIMEOUT)
    assert event is not None, "the server closed the connection"
    return event


async def until(client: AsyncTcpClient, *types: str) -> list[Event]:
    """Events up to and including the first of ``types`` (or an error)."""
    events = []
    while True:
        events.append(await read(client))
        if events[-1].type in types + ("error",):
            return events


def pcm(path: Path) -> tuple[np.ndarray, int]:
    """A corpus file as 16-bit frames (frames x channels) at its own rate."""
    data, rate = sf.read(path, dtype="int16", always_2d=True)
    return data, rate


async def transcribe(
    port: int, frames: np.ndarray, rate: int, *, name: str | None = None, language: str | None = None
) -> list[Event]:
    """A Home Assistant-style request: transcribe, 128 ms audio-chunks, audio-stop; every event back."""
    channels = frames.shape[1]
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Transcribe(name=name, language=language).event())
        await c.write_event(AudioStart(rate=rate, width=2, channels=channels).event())
        step = int(rate * 0.128)
        for k in range(0, len(frames), step):
            await c.write_event(AudioChunk(rate=rate, width=2, channels=channels, audio=frames[k : k + step].tobytes()).event())
        await c.write_event(AudioStop().event())
        return await until(c, "transcript")


async def describe(port: int) -> Info:
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Describe().event())
        event = await read(c)
        assert Info.is_type(event.type), event
        return Info.from_event(event)


def answers(server: Server) -> None:
    """The server still serves a new client. Clients that just left may still hold their sessions
    for a moment (the server frees one when it reads the end of its connection), so a "busy"
    answer is asked again for a while; any other answer is final."""

    async def ask() -> Event:
        async with AsyncTcpClient("127.0.0.1", server.port) as c:
            await c.write_event(Describe().event())
            return await read(c)

    deadline = time.monotonic() + 10.0
    event = asyncio.run(ask())
    while event.type == "error" and event.data.get("code") == "busy" and time.monotonic() < deadline:
        time.sleep(0.1)
        event = asyncio.run(ask())
    assert Info.is_type(event.type) and Info.from_event(event).asr, event


async def raw(port: int, data: bytes) -> Event | None:
    """Bytes as they are (a broken client); the server's answer, if any, before it closes."""
    async with AsyncTcpClient("127.0.0.1", port) as c:
        assert c._writer is not None
        c._writer.write(data)
        await c._writer.drain()
        return await asyncio.wait_for(c.read_event(), READ_TIMEOUT)


# --- the services ---------------------------------------------------------------------------------


def test_describe_lists_the_speech_model_its_translations_the_voices_and_handle(server: Server) -> None:
    info = asyncio.run(describe(server.port))
    asr = info.asr[0]
    names = [m.name for m in asr.models]
    assert names[0] == "base" and "translate:en" in names
    assert asr.supports_transcript_streaming
    assert {"en", "es", "de"} <= set(asr.models[0].languages)
    assert "en_US-joe-medium" in [v.name for v in info.tts[0].voices]
    assert [m.name for m in info.handle[0].models] == ["translate:en"]


def test_a_corpus_clip_is_transcribed(server: Server) -> None:
    c = clip("en/LDC93S1.wav")
    events = asyncio.run(transcribe(server.port, *pcm(c.path), language="en-US"))  # a locale, as Home Assistant may send
    transcript = Transcript.from_event(events[-1])
    assert events[-1].type == "transcript", events[-1]
    words = transcript.text.lower()
    assert "dark suit" in words and "greasy" in words, transcript.text  # base: "...greasy wash for her whole year."
    assert transcript.language == "en"


def test_a_44k_stereo_clip_is_resampled_and_streamed_as_chunks(server: Server) -> None:
    """Two utterances (the clip, a silence longer than wyoming.endpoint, the clip): a chunk each,
    joined they are the transcript."""
    frames, rate = pcm(SPEECH / "en" / "jfk.flac")
    assert rate == 44100 and frames.shape[1] == 2
    phrase = frames[: int(2.6 * rate)]  # "And so my fellow Americans"
    audio = np.concatenate([phrase, np.zeros((int(2.5 * rate), 2), dtype=np.int16), phrase])
    events = asyncio.run(transcribe(server.port, audio, rate))
    types = [e.type for e in events]
    assert types[0] == "transcript-start" and types[-2:] == ["transcript-stop", "transcript"], types
    chunks = [e.data["text"] for e in events if e.type == "transcript-chunk"]
    assert len(chunks) >= 2, chunks
    assert "".join(chunks) == events[-1].data["text"]
    assert events[-1].data["text"].lower().count("americans") == 2, events[-1].data


def test_a_request_is_cut_only_at_a_long_silence(server: Server) -> None:
    """jfk pauses 0.9 s twice ("And so my fellow Americans ... ask not ... what your country"): the
    live endpoint (0.4 s) would cut it in three, decoded apart; the server keeps it one utterance,
    so its words keep each other's context."""
    events = asyncio.run(transcribe(server.port, *pcm(SPEECH / "en" / "jfk.16k.wav")))
    chunks = [e.data["text"] for e in events if e.type == "transcript-chunk"]
    assert len(chunks) == 1, chunks
    assert "fellow americans" in chunks[0].lower() and "ask not" in chunks[0].lower(), chunks


def test_two_clients_at_once_each_get_their_own_transcript(server: Server) -> None:
    """Two pipelines over the one loaded model (max_sessions = 2): neither hears the other's audio."""

    async def both() -> list[list[Event]]:
        a, b = pcm(clip("en/LDC93S1.wav").path), pcm(clip("en/picovoice_leopard_test.wav").path)
        return list(await asyncio.gather(transcribe(server.port, *a), transcribe(server.port, *b)))

    first, second = (events[-1].data["text"].lower() for events in asyncio.run(both()))
    assert "greasy" in first and "quilter" not in first, first
    assert "quilter" in second and "gospel" in second and "greasy" not in second, second


FOUR = {
    "en/LDC93S1.wav": "greasy",
    "en/picovoice_leopard_test.wav": "gospel",
    "en/uberi_english.wav": "2",
    "en/jfk.16k.wav": "country",
}
"""Four clips and a word base hears in each (it hears LDC93S1's "wash water all year" as "wash for her whole year", "one two three" as "1, 2, 3")."""
RSS_BOUND = 640 * 2**20
"""Bytes the server may hold while it serves four clients: its models (base, the joe voice, a
Marian model) took 408 MiB idle and 434 MiB at most with four clients (2026-12-01); a session adds
a pipeline and its audio, not a model, so a leak per session or per request shows well before this."""


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_four_clients_at_once_each_get_their_transcript_in_bounded_memory(server: Server) -> None:
    """Two sessions (max_sessions = 2) and two clients waiting for them: every transcript right,
    the server's memory bounded throughout, and a new client answered afterwards."""
    peak = [rss(server.proc.pid)]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            peak.append(rss(server.proc.pid))

    async def four() -> list[list[Event]]:
        return list(await asyncio.gather(*(transcribe(server.port, *pcm(clip(name).path)) for name in FOUR)))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        results = asyncio.run(four())
    finally:
        done.set()
        watcher.join(5)
    for (name, word), events in zip(FOUR.items(), results, strict=True):
        assert events[-1].type == "transcript", (name, events[-1])
        text = events[-1].data["text"].lower()
        others = [w for w in FOUR.values() if w != word]
        assert word in text and not any(w in text for w in others), (name, text)  # its own words, nobody else's
    assert max(peak) < RSS_BOUND, f"{peak[0] / 2**20:.0f} MiB before, {max(peak) / 2**20:.0f} MiB at most"
    answers(server)


def test_translate_model_answers_with_whisper_s_english(server: Server) -> None:
    c = clip("es/picovoice_leopard_test_es.wav")
    # Home Assistant sends its pipeline's language, the target's in a translating pipeline: no hint
    events = asyncio.run(transcribe(server.port, *pcm(c.path), name="translate:en", language="en"))
    server.wait_line(r"translating es->en with Whisper's translate task", timeout=30)  # Spanish was detected
    transcript = Transcript.from_event(events[-1])
    assert events[-1].type == "transcript", events[-1]
    assert transcript.language == "en"
    words = set(transcript.text.lower().replace(",", " ").replace(".", " ").split())
    assert words & {"the", "are", "is", "with"}, transcript.text
    assert not words & {"las", "son", "tiene", "muy"}, transcript.text  # not the Spanish passed off as English


def test_an_unknown_translation_target_is_refused_naming_what_is_offered(server: Server) -> None:
    frames, rate = pcm(clip("en/LDC93S1.wav").path)
    events = asyncio.run(transcribe(server.port, frames[: rate // 2], rate, name="translate:xx"))  # its audio dropped unread
    assert events[-1].type == "error" and "translate:en" in events[-1].data["text"], events[-1]
    answers(server)


def test_synthesize_returns_piper_speech(server: Server) -> None:
    async def go() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", server.port) as c:
            await c.write_event(Synthesize(text="Hello there. How are you today?").event())
            return await until(c, "audio-stop")

    events = asyncio.run(go())
    start = AudioStart.from_event(events[0])
    assert (start.rate, start.width, start.channels) == (22050, 2, 1)
    audio = np.frombuffer(b"".join(e.payload or b"" for e in events if e.type == "audio-chunk"), dtype="<i2")
    assert 1.0 < len(audio) / start.rate < 5.0
    assert np.abs(audio).max() > 3000  # speech, not silence
    assert events[-1].type == "audio-stop"


def test_a_voice_is_named_from_the_installed_ones_never_by_path(server: Server) -> None:
    async def go(voice: SynthesizeVoice) -> Event:
        async with AsyncTcpClient("127.0.0.1", server.port) as c:
            await c.write_event(Synthesize(text="Hello.", voice=voice).event())
            return await read(c)

    event = asyncio.run(go(SynthesizeVoice(name="/etc/passwd.onnx")))
    assert event.type == "error" and event.data["code"] == "voice" and "en_US-joe-medium" in event.data["text"], event
    assert AudioStart.is_type(asyncio.run(go(SynthesizeVoice(language="en-US"))).type)


def test_streamed_text_is_spoken_sentence_by_sentence(server: Server) -> None:
    async def go() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", server.port) as c:
            await c.write_event(SynthesizeStart().event())
            for piece in ("Good morning. How", " are you", " today?"):
                await c.write_event(SynthesizeChunk(text=piece).event())
            await c.write_event(Synthesize(text="Good morning. How are you today?").event())  # the copy for old servers
            await c.write_event(SynthesizeStop().event())
            return await until(c, "synthesize-stopped")

    types = [e.type for e in asyncio.run(go()) if e.type != "audio-chunk"]
    # the first sentence as soon as the second began, the second at the stop; the copy ignored
    assert types == ["audio-start", "audio-stop", "audio-start", "audio-stop", "synthesize-stopped"], types


def test_handle_translates_a_transcript_with_the_text_model(server: Server) -> None:
    async def go(transcript: Transcript) -> Event:
        async with AsyncTcpClient("127.0.0.1", server.port) as c:
            await c.write_event(transcript.event())
            return await read(c)

    event = asyncio.run(go(Transcript(text="Guten Morgen, wie geht es dir?", language="de")))
    assert Handled.is_type(event.type), event
    text = Handled.from_event(event).text or ""
    assert text and text != "Guten Morgen, wie geht es dir?"  # the test model's (junk) translation
    assert server.wait_line(r"handled \(opus-mt-de-en\)", timeout=30)
    event = asyncio.run(go(Transcript(text="Bonjour", language="xx")))
    assert NotHandled.is_type(event.type) and "xx" in (NotHandled.from_event(event).text or "")


# --- bad clients ----------------------------------------------------------------------------------


def test_an_oversized_header_is_refused_and_the_server_goes_on(server: Server) -> None:
    event = asyncio.run(raw(server.port, b'{"type": "describe", "pad": "' + b"x" * 40000))
    assert event is not None and event.type == "error" and event.data["code"] == "too-large", event
    answers(server)


def test_an_oversized_payload_is_refused_unread(server: Server) -> None:
    header = {"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, "payload_length": 50_000_000}
    event = asyncio.run(raw(server.port, json.dumps(header).encode() + b"\n"))
    assert event is not None and event.type == "error" and "at most" in event.data["text"], event
    answers(server)


def test_malformed_json_is_refused(server: Server) -> None:
    event = asyncio.run(raw(server.port, b"{this is not json}\n"))
    assert event is not None and event.type == "error" and event.data["code"] == "malformed", event
    answers(server)


def test_an_unknown_event_is_dropped_and_the_connection_goes_on(server: Server) -> None:
    async def go() -> Event:
        async with AsyncTcpClient("127.0.0.1", server.port) as c:
            await c.write_event(Event(type="no-such-event", data={"x": 1}))
            await c.write_event(Describe().event())
            return await read(c)

    assert Info.is_type(asyncio.run(go()).type)
    assert server.wait_line(r"dropped an event of unknown type 'no-such-event'", timeout=30)


def test_audio_in_a_format_not_taken_is_refused_clearly(server: Server) -> None:
    async def go() -> Event:
        async with AsyncTcpClient("127.0.0.1", server.port) as c:
            await c.write_event(AudioStart(rate=16000, width=3, channels=1).event())
            return await read(c)

    event = asyncio.run(go())
    assert event.type == "error" and event.data["code"] == "audio-format" and "16-bit" in event.data["text"], event
    answers(server)


def test_more_audio_than_a_request_may_send_is_refused(server: Server) -> None:
    silence = np.zeros((int((MAX_AUDIO + 1) * 16000), 1), dtype=np.int16)
    events = asyncio.run(transcribe(server.port, silence, 16000))
    assert events[-1].type == "error" and events[-1].data["code"] == "too-long", events[-1]
    answers(server)


def test_a_client_that_leaves_mid_utterance_frees_its_session(server: Server) -> None:
    frames, rate = pcm(clip("en/LDC93S1.wav").path)

    async def go() -> None:
        async with AsyncTcpClient("127.0.0.1", server.port) as c:
            await c.write_event(AudioStart(rate=rate, width=2, channels=1).event())
            await c.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=frames[: rate * 2].tobytes()).event())

    before = time.monotonic()
    for _ in range(3):  # more than max_sessions: a session that was not freed would block the last
        asyncio.run(go())
    # the end of the connection, or a reset when the client closed with audio still unread
    server.wait_line(r"(disconnected|connection lost) mid-utterance", timeout=60, count=3, after=before)
    events = asyncio.run(transcribe(server.port, frames, rate))
    assert "greasy" in events[-1].data["text"].lower(), events[-1]


def test_an_idle_client_is_timed_out(server: Server) -> None:
    async def go() -> Event:
        async with AsyncTcpClient("127.0.0.1", server.port) as c:
            await c.write_event(Transcribe().event())  # then nothing: no audio-stop ever
            return await read(c)

    event = asyncio.run(go())
    assert event.type == "error" and event.data["code"] == "timeout", event
    answers(server)


def test_clients_beyond_the_sessions_and_the_waiting_room_are_refused(server: Server) -> None:
    async def go() -> Event | None:
        held = [AsyncTcpClient("127.0.0.1", server.port) for _ in range(4)]  # 2 sessions + 2 waiting
        for c in held:  # the server takes connections in the order they came
            await c.connect()
        try:
            async with AsyncTcpClient("127.0.0.1", server.port) as fifth:
                return await asyncio.wait_for(fifth.read_event(), READ_TIMEOUT)
        finally:
            for c in held:
                await c.disconnect()

    event = asyncio.run(go())
    assert event is not None and event.type == "error" and event.data["code"] == "busy", event
    answers(server)
