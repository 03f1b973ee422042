"""The asr service: ``transcribe`` + ``audio-start/chunk/stop`` -> ``transcript``.

The audio goes through the same streaming pipeline as the live translator while it arrives
(:mod:`~translator.wyoming.stream`). With ``transcript_streaming`` each utterance's final text is
sent as a ``transcript-chunk`` the moment it is known (the chunks, joined, are the transcript);
the live captions in between are not, because they change and a chunk cannot be taken back.
A model ``translate:LANG`` (or ``wyoming.translate``) makes the text the translation into LANG.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart
from wyoming.event import Event

from translator.config import WyomingSettings
from translator.errors import TranslatorError
from translator.languages import joiner
from translator.text import one_line
from translator.wyoming.engine import LocalEngine
from translator.wyoming.pcm import Decoder, FormatError
from translator.wyoming.protocol import Refused, Send
from translator.wyoming.stream import DONE, AsrStream, Crashed, Failed, Final

log = logging.getLogger("translator.wyoming")


class AsrHandler:
    """One connection's speech-to-text requests, one at a time."""

    def __init__(self, engine: LocalEngine, settings: WyomingSettings, send: Send, peer: str) -> None:
        self.engine = engine
        self.settings = settings
        self.send = send
        self.peer = peer
        self._request = Transcribe()
        self._stream: AsrStream | None = None
        self._decoder: Decoder | None = None
        self._collector: asyncio.Task[tuple[str, str | None, list[str]]] | None = None
        self._seconds = 0.0
        self._requested = False
        self._dropping = False
        """A refused request's audio is still arriving: drop it until its audio-stop."""

    @property
    def pending(self) -> bool:
        """A request has begun (``transcribe`` or audio) and not been answered: a client that
        leaves or goes quiet now does so mid-utterance."""
        return self._requested or self._stream is not None

    async def transcribe(self, event: Event) -> None:
        self._request = Transcribe.from_event(event)
        self._requested = True

    async def audio_start(self, event: Event) -> None:
        start = AudioStart.from_event(event)
        await self.close()  # a new stream replaces one that never stopped
        self._dropping = False
        await self._refusing(self._open, start.rate, start.width, start.channels)

    async def _refusing(self, step: Callable[..., None], *args: Any) -> None:
        """``step``; when it refuses the request, the rest of its audio is dropped unread (the
        client is still sending it) and the ``error`` answers the request, not the connection."""
        try:
            step(*args)
        except Refused:
            await self.close()
            self._dropping = True
            raise

    def _open(self, rate: int, width: int, channels: int) -> None:
        try:
            self._decoder = Decoder(rate, width, channels)
            target = self.engine.target_for(self._request.name)
            langs = self.engine.languages(self._request.language, target)
        except FormatError as e:
            raise Refused(str(e), "audio-format") from None
        except TranslatorError as e:
            raise Refused(str(e), "model") from None
        translate = target is not None
        self._stream = AsrStream(
            self.engine.pipeline(langs, translate=translate), translate=translate, loop=asyncio.get_running_loop()
        )
        self._seconds = 0.0
        self._collector = asyncio.create_task(self._collect(self._stream, langs.source if not translate else target))

    async def audio_chunk(self, event: Event) -> None:
        if self._dropping:
            return
        await self._refusing(self._feed, AudioChunk.from_event(event))

    def _feed(self, chunk: AudioChunk) -> None:
        if self._stream is None:  # audio without audio-start: the chunk announces the format
            self._open(chunk.rate, chunk.width, chunk.channels)
        assert self._stream is not None and self._decoder is not None
        self._seconds += len(chunk.audio) / (chunk.width * chunk.channels * chunk.rate)
        if self._seconds > self.settings.max_audio:
            raise Refused(f"more than {self.settings.max_audio:g} s of audio in one request (wyoming.max_audio)", "too-long")
        try:
            samples = self._decoder(chunk.audio, chunk.rate, chunk.width, chunk.channels)
        except FormatError as e:
            raise Refused(str(e), "audio-format") from None
        self._stream.feed(samples)

    async def audio_stop(self, event: Event) -> None:
        if self._dropping:  # the refused request's end: its error has been sent
            self._dropping = self._requested = False
            return
        stream, decoder, collector = self._stream, self._decoder, self._collector
        if stream is None or decoder is None or collector is None:
            self._request, self._requested = Transcribe(), False
            await self.send(Transcript(text="").event())  # a stop with no audio before it: nothing was said
            return
        stream.end(decoder.tail())
        text, language, failures = await collector
        self._stream = self._decoder = self._collector = None
        self._request, self._requested = Transcribe(), False
        if failures and not text:
            raise Refused(failures[0], "failed")
        for failure in failures:
            log.warning("%s: an utterance failed: %s", self.peer, failure)
        if self.settings.transcript_streaming:
            await self.send(TranscriptStop().event())
        log.info("%s: transcript (%s, %.1f s of audio): %s", self.peer, language or "?", self._seconds, text)
        await self.send(Transcript(text=text, language=language).event())

    async def _collect(self, stream: AsrStream, language: str | None) -> tuple[str, str | None, list[str]]:
        """The stream's results until the pipeline is done; each final text is streamed as it comes."""
        texts: list[str] = []
        failures: list[str] = []
        if self.settings.transcript_streaming:
            await self.send(TranscriptStart(language=language).event())
        while (item := await stream.results.get()) is not DONE:
            if isinstance(item, Final) and item.text.strip():
                piece = (joiner(item.language) if texts else "") + item.text.strip()
                texts.append(piece)
                language = item.language
                if self.settings.transcript_streaming:
                    await self.send(TranscriptChunk(text=piece).event())
            elif isinstance(item, Failed):
                failures.append(item.message)
            elif isinstance(item, Crashed):
                log.error("%s: the pipeline failed", self.peer, exc_info=item.error)
                failures.append(f"recognition failed: {one_line(item.error)}")
        return "".join(texts), language, failures

    async def close(self) -> None:
        """Drop the stream in flight (the client left or started another); its threads finish first,
        so a freed session holds no compute."""
        stream, collector = self._stream, self._collector
        self._stream = self._decoder = self._collector = None
        if stream is None:
            return
        stream.cancel()
        await stream.finished()
        if collector is not None:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # it may have failed writing to the closed connection
                await collector
