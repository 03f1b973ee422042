"""``tts.backend``: speech synthesised by a Wyoming tts server on the LAN, the local voice standing by.

A weak box keeps its pipeline and sends each sentence to a stronger one (``translator wyoming``
or wyoming-piper), one connection per sentence (:mod:`~translator.wyoming.backend`). The whole
sentence's audio is gathered before it is passed on, so a backend that fails mid-way is replaced
by the local voice for that sentence without a word heard twice.

A backend that is down, refuses, or is slower than ``tts.backend_timeout`` costs that sentence the
timeout at most: the local voice speaks it, the user is told once, and the backend is left alone
for :data:`~translator.wyoming.backend.RETRY_AFTER` seconds, so an outage does not add the timeout
to every sentence.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.tts import Synthesize, SynthesizeVoice

from translator.audio.samples import resample, to_mono_float32
from translator.config import TtsSettings
from translator.errors import ModelError
from translator.events import Notice
from translator.stages.tts import Voice, VoiceProvider
from translator.text import one_line
from translator.wyoming import backend
from translator.wyoming.backend import Backend, BackendError, Health
from translator.wyoming.pcm import WIDTHS

DEFAULT_RATE = 22050
"""Output rate with no local voice to match: Piper's medium and high voices speak at this rate."""
MAX_SENTENCE_SECONDS = 120.0
"""A backend sending more audio than this for one sentence is broken; the bound keeps memory bounded."""


class WyomingTtsClient:
    """Blocking client of one Wyoming tts server: text in, the whole sentence's audio out."""

    def __init__(self, uri: str, timeout: float) -> None:
        self.backend = Backend(uri, timeout, "tts.backend")

    def speak(self, text: str, language: str) -> tuple[np.ndarray, int]:
        """float32 mono samples and their rate; OSError (TimeoutError included) or BackendError on failure."""
        with self.backend.exchange() as exchange:
            exchange.send(Synthesize(text=text, voice=SynthesizeVoice(language=language)).event())
            rate: int | None = None
            pieces: list[np.ndarray] = []
            frames = 0
            while True:
                event = exchange.read()
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

    def __init__(self, client: WyomingTtsClient, health: Health, language: str, local: Voice | None) -> None:
        self.language = language
        self.sample_rate: int = local.sample_rate if local is not None else DEFAULT_RATE
        self.remote_name = client.backend.name
        self.name = self.remote_name
        self._client = client
        self._health = health
        self._local = local

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        why = f"left alone for {backend.RETRY_AFTER:g} s after a failure"
        if self._health.due():
            try:
                audio, rate = self._client.speak(text, self.language)
            except (OSError, BackendError) as e:
                why = one_line(e) or type(e).__name__
                instead = f"speaking with the local voice {self._local.name}" if self._local is not None else "no local voice"
                self._health.failed(why, instead)
            else:
                self._health.recovered()
                self.name = self.remote_name
                if audio.size:
                    yield resample(audio, rate, self.sample_rate)
                return
        if self._local is None:
            raise ModelError(f"tts backend {self._health.uri}: {why}; no local voice for {self.language} to fall back to")
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
        return self._health.take_notices()


def remote_voices(local: VoiceProvider, settings: TtsSettings) -> VoiceProvider:
    """``local`` (a provider such as :func:`~translator.stages.tts.choose_voice`) behind the backend.

    The local voice is loaded too: it is what speaks when the backend cannot, and loading it only
    then would add its load (~0.4 s for Piper) to the sentence that found the backend down.
    """
    client = WyomingTtsClient(settings.backend, settings.backend_timeout)
    health = Health("tts backend", settings.backend)

    def provide(language: str) -> tuple[Voice | None, Notice | None]:
        choice = local(language)
        voice, notice = choice if isinstance(choice, tuple) else (choice, None)
        # "text only" would be wrong: the backend speaks.
        return RemoteVoice(client, health, language, voice), notice if voice is not None else None

    return provide
