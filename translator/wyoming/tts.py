"""The tts service: ``synthesize`` (or ``synthesize-start/chunk/stop``) -> ``audio-start/chunk/stop``.

Speech goes out sentence by sentence as each is synthesised (the first sentence cut at a clause
when long, as the live translator does), so the first audio leaves after one short sentence's
synthesis rather than the whole text's. In a text stream each complete sentence is spoken as
soon as the next one begins (its own ``audio-start`` .. ``audio-stop``), the rest at
``synthesize-stop``, then ``synthesize-stopped``; the ``synthesize`` a streaming client also sends,
for servers that do not stream, is ignored inside a stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeStart, SynthesizeStopped, SynthesizeVoice

from translator.errors import TranslatorError
from translator.stages.sentences import split_sentences
from translator.stages.tts import Voice
from translator.wyoming.engine import LocalEngine
from translator.wyoming.pcm import OUTPUT_WIDTH, encode
from translator.wyoming.protocol import Refused, Send

log = logging.getLogger("translator.wyoming")

CHUNK_SECONDS = 0.25
"""Audio per ``audio-chunk`` event: small enough for a client to start playing early."""


class TtsHandler:
    """One connection's speech requests."""

    def __init__(self, engine: LocalEngine, send: Send, peer: str) -> None:
        self.engine = engine
        self.send = send
        self.peer = peer
        self._voice: Voice | None = None
        """The voice of the text stream in progress; None outside a stream."""
        self._pending = ""

    async def synthesize(self, event: Event) -> None:
        if self._voice is not None:
            return  # the whole text again, for servers that do not stream: it is being spoken already
        request = Synthesize.from_event(event)
        voice = await self._resolve(request.voice)
        await self._speak(voice, request.text)

    async def start(self, event: Event) -> None:
        self._voice = await self._resolve(SynthesizeStart.from_event(event).voice)
        self._pending = ""

    async def chunk(self, event: Event) -> None:
        if self._voice is None:
            raise Refused("synthesize-chunk outside a stream; send synthesize-start first", "order")
        self._pending += event.data["text"]
        sentences = split_sentences(self._pending, self._voice.language)
        if len(sentences) < 2:
            return  # the one sentence may still be growing
        *complete, self._pending = sentences
        await self._speak(self._voice, " ".join(complete))

    async def stop(self, event: Event) -> None:
        voice, text = self._voice, self._pending
        self._voice, self._pending = None, ""
        if voice is not None and text.strip():
            await self._speak(voice, text)
        await self.send(SynthesizeStopped().event())

    async def _resolve(self, wanted: SynthesizeVoice | None) -> Voice:
        """The requested voice (loaded on a worker thread the first time: a Piper voice takes ~0.4 s)."""
        name = wanted.name if wanted is not None else None
        language = wanted.language if wanted is not None else None
        try:
            return await asyncio.to_thread(self.engine.voice, name, language)
        except TranslatorError as e:
            raise Refused(str(e), "voice") from None

    async def _speak(self, voice: Voice, text: str) -> None:
        rate = voice.sample_rate
        await self.send(AudioStart(rate=rate, width=OUTPUT_WIDTH, channels=1).event())
        pieces: Iterator[np.ndarray] = self.engine.speech(voice, text)
        step = int(rate * CHUNK_SECONDS)
        seconds = 0.0
        while (samples := await asyncio.to_thread(next, pieces, None)) is not None:  # synthesis off the event loop
            seconds += len(samples) / rate
            for k in range(0, len(samples), step):
                await self.send(
                    AudioChunk(rate=rate, width=OUTPUT_WIDTH, channels=1, audio=encode(samples[k : k + step])).event()
                )
        await self.send(AudioStop().event())
        log.info("%s: spoke %.1f s with %s: %s", self.peer, seconds, voice.name, text)
