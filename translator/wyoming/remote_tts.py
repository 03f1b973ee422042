"""``tts.backend``: speech synthesised by a Wyoming tts server on the LAN, the local voice standing by.

A weak box keeps its pipeline and sends each sentence to a stronger one (``translator wyoming``
or wyoming-piper). One connection per sentence: a sentence's audio is a few hundred milliseconds
of work, the connection a millisecond on a LAN, and nothing is left half-open between utterances.
The whole sentence's audio is gathered before it is passed on, so a backend that fails mid-way is
replaced by the local voice for that sentence without a word heard twice.

A backend that is down, refuses, or is slower than ``tts.backend_timeout`` costs that sentence the
timeout at most: the local voice speaks it, the user is told once, and the backend is left alone
for :data:`RETRY_AFTER` seconds, so an outage does not add the timeout to every sentence.
"""

from __future__ import annotations

import json
import socket
import time
import typing
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, write_event
from wyoming.tts import Synthesize, SynthesizeVoice

from translator.audio.samples import resample, to_mono_float32
from translator.config import TtsSettings, wyoming_address
from translator.errors import ModelError
from translator.events import Notice, NoticeLevel
from translator.stages.tts import Voice, VoiceProvider
from translator.text import one_line
from translator.wyoming.pcm import WIDTHS

RETRY_AFTER = 30.0
"""Seconds a failed backend is left alone before the next sentence tries it again."""
DEFAULT_RATE = 22050
"""Output rate with no local voice to match: Piper's medium and high voices speak at this rate."""
MAX_SENTENCE_SECONDS = 120.0
"""A backend sending more audio than this for one sentence is broken; the bound keeps memory bounded."""
MAX_HEADER = 16 * 1024
"""Bytes of one event's header line; the wyoming library's own reader takes a line of any length."""
MAX_EVENT = 4 * 1024 * 1024
"""Bytes of one event's data and payload together: an audio-chunk is a few kilobytes."""


class BackendError(Exception):
    """The backend answered, but not with speech."""


def read_bounded(stream: BinaryIO) -> Event | None:
    """One event, None at the end of the stream; a BackendError for what breaks the framing or the bounds.

    The backend is a LAN host, so its lengths are checked before a byte of them is read.
    """
    line = stream.readline(MAX_HEADER + 1)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise BackendError(f"sent a header line over {MAX_HEADER // 1024} KiB" if len(line) > MAX_HEADER else "closed mid-event")
    try:
        header = json.loads(line)
        event_type = header["type"]
        data = dict(header.get("data") or {})
        data_length = int(header.get("data_length") or 0)
        payload_length = int(header.get("payload_length") or 0)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise BackendError(f"sent an event that is not Wyoming's ({type(e).__name__})") from e
    if not 0 <= data_length + payload_length <= MAX_EVENT or min(data_length, payload_length) < 0:
        raise BackendError(f"sent an event of {data_length + payload_length} bytes (at most {MAX_EVENT // 2**20} MiB taken)")
    if data_length:
        try:
            data.update(json.loads(_exactly(stream, data_length)))
        except (ValueError, TypeError) as e:
            raise BackendError(f"sent event data that is not a JSON object ({type(e).__name__})") from e
    return Event(type=event_type, data=data, payload=_exactly(stream, payload_length) if payload_length else None)


def _exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)  # a buffered socket file reads until it has them all, or the end
    if len(data) < size:
        raise BackendError("closed mid-event")
    return data


class WyomingTtsClient:
    """Blocking client of one Wyoming tts server: text in, the whole sentence's audio out."""

    def __init__(self, uri: str, timeout: float) -> None:
        self.uri = uri
        self.host, self.port = wyoming_address(uri, "tts.backend")
        self.timeout = timeout

    def speak(self, text: str, language: str) -> tuple[np.ndarray, int]:
        """float32 mono samples and their rate; OSError (TimeoutError included) or BackendError on failure."""
        try:
            return self._speak(text, language)
        except TimeoutError as e:  # the socket's own message is a bare "timed out"
            raise TimeoutError(f"no whole answer within {self.timeout:g} s") from e

    def _speak(self, text: str, language: str) -> tuple[np.ndarray, int]:
        deadline = time.monotonic() + self.timeout
        with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
            stream = typing.cast(BinaryIO, sock.makefile("rwb"))  # the library's annotation; a socket file is one
            write_event(Synthesize(text=text, voice=SynthesizeVoice(language=language)).event(), stream)
            rate: int | None = None
            pieces: list[np.ndarray] = []
            frames = 0
            while True:
                # The deadline is for the whole sentence, so a server that trickles cannot stall us.
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                event = read_bounded(stream)
                if event is None:
                    raise BackendError("closed the connection before the end of the audio")
                if Error.is_type(event.type):
                    raise BackendError(f"refused: {Error.from_event(event).text}")
                if AudioStart.is_type(event.type):
                    rate = AudioStart.from_event(event).rate
                elif AudioChunk.is_type(event.type):
                    chunk = AudioChunk.from_event(event)
                    if chunk.width not in WIDTHS or chunk.channels < 1 or len(chunk.audio) % (chunk.width * chunk.channels):
                        raise BackendError(f"sent audio of {chunk.width}-byte samples x {chunk.channels} channels")
                    rate = chunk.rate
                    samples = np.frombuffer(chunk.audio, dtype=WIDTHS[chunk.width]).reshape(-1, chunk.channels)
                    pieces.append(to_mono_float32(samples))
                    frames += len(samples)
                    if frames > MAX_SENTENCE_SECONDS * rate:
                        raise BackendError(f"sent over {MAX_SENTENCE_SECONDS:g} s of audio for one sentence")
                elif AudioStop.is_type(event.type):
                    if rate is None:
                        raise BackendError("sent audio-stop before any audio")
                    return (np.concatenate(pieces) if pieces else np.zeros(0, np.float32)), rate


class RemoteVoice:
    """A :class:`~translator.stages.tts.Voice` that speaks through the backend, else through ``local``.

    ``name`` is the voice that spoke the latest sentence, so each SpeechChunk names what really
    made it. Notices (the backend lost, the backend back) wait in :meth:`take_notices`, which the
    speaker stage drains after each sentence.
    """

    def __init__(self, client: WyomingTtsClient, language: str, local: Voice | None) -> None:
        self.language = language
        self.sample_rate: int = local.sample_rate if local is not None else DEFAULT_RATE
        self.remote_name = f"wyoming:{client.host}:{client.port}"
        self.name = self.remote_name
        self._client = client
        self._local = local
        self._retry_at = 0.0
        self._down = False
        self._notices: list[Notice] = []

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        why = f"left alone for {RETRY_AFTER:g} s after a failure"
        if time.monotonic() >= self._retry_at:
            try:
                audio, rate = self._client.speak(text, self.language)
            except (OSError, BackendError) as e:
                why = one_line(e) or type(e).__name__
                self._fail(why)
            else:
                self._recovered()
                self.name = self.remote_name
                if audio.size:
                    yield resample(audio, rate, self.sample_rate)
                return
        if self._local is None:
            raise ModelError(f"tts backend {self._client.uri}: {why}; no local voice for {self.language} to fall back to")
        self.name = self._local.name
        yield from self._local.synthesize(text)

    def warm_up(self) -> None:
        """The local voice's first-call costs, and a first word to the backend: a backend that is
        down at start-up is said before the first utterance rather than during it."""
        if self._local is not None:
            self._local.warm_up()
        try:
            for _ in self.synthesize("OK."):
                pass
        except ModelError:
            pass  # no local voice and the backend down: said by the notice; the backend may come back

    def take_notices(self) -> list[Notice]:
        notices, self._notices = self._notices, []
        return notices

    def _fail(self, why: str) -> None:
        self._retry_at = time.monotonic() + RETRY_AFTER
        if self._down:
            return
        self._down = True
        instead = f"speaking with the local voice {self._local.name}" if self._local is not None else "no local voice"
        self._notices.append(
            Notice(
                f"tts backend {self._client.uri} failed ({why}): {instead}; trying it again every {RETRY_AFTER:g} s",
                time.monotonic(),
                NoticeLevel.WARNING,
            )
        )

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            self._notices.append(Notice(f"tts backend {self._client.uri} is back", time.monotonic()))


def remote_voices(local: VoiceProvider, settings: TtsSettings) -> VoiceProvider:
    """``local`` (a provider such as :func:`~translator.stages.tts.choose_voice`) behind the backend.

    The local voice is loaded too: it is what speaks when the backend cannot, and loading it only
    then would add its load (~0.4 s for Piper) to the sentence that found the backend down.
    """
    client = WyomingTtsClient(settings.backend, settings.backend_timeout)

    def provide(language: str) -> tuple[Voice | None, Notice | None]:
        choice = local(language)
        voice, notice = choice if isinstance(choice, tuple) else (choice, None)
        # "text only" would be wrong: the backend speaks.
        return RemoteVoice(client, language, voice), notice if voice is not None else None

    return provide
