"""One ``transcribe`` request's audio through its own pipeline, while the audio streams in.

The connection's event loop hands over samples as each ``audio-chunk`` arrives; they are cut into
the microphone's 128 ms blocks and go through the segmenter and recognizer on the pipeline's
threads at once, so each utterance is decoded at its pause (speculation) and its text is usually
final by the time ``audio-stop`` comes. The results come back to the event loop as :class:`Final`
and :class:`Failed` items, then :data:`DONE`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from translator.audio.blocks import LIVE_BLOCK_SECONDS, Blocker, block_size
from translator.events import AudioBlock, Event, Notice, StageFailed, Transcript, Translation
from translator.pipeline import Pipeline

log = logging.getLogger("translator.wyoming")


@dataclass(frozen=True)
class Final:
    """One utterance's final text: as spoken, or its translation."""

    text: str
    language: str


@dataclass(frozen=True)
class Failed:
    """A stage failed on one utterance (a missing route, a broken model)."""

    message: str


@dataclass(frozen=True)
class Crashed:
    """The pipeline itself failed (a bug): the request is answered with an error."""

    error: BaseException


class _Done:
    """The pipeline has finished: every result is in."""


DONE = _Done()
Result = Final | Failed | Crashed | _Done


class AsrStream:
    """The pipeline of one audio stream, run on threads; :attr:`results` is read on the event loop.

    ``translate`` says which events carry the answer: the transcripts, or the translations.
    """

    def __init__(self, pipeline: Pipeline, *, translate: bool, loop: asyncio.AbstractEventLoop) -> None:
        self.pipeline = pipeline
        self.translate = translate
        self.results: asyncio.Queue[Result] = asyncio.Queue()
        self._loop = loop
        # Unbounded, yet bounded: the request's audio is capped (wyoming.max_audio) before it gets here.
        self._blocks: queue.Queue[AudioBlock | None] = queue.Queue()
        self._blocker = Blocker(block_size(LIVE_BLOCK_SECONDS))
        self._ended = False
        self._thread = threading.Thread(target=self._run, name="wyoming-asr", daemon=True)
        self._thread.start()

    def feed(self, samples: np.ndarray) -> None:
        """16 kHz mono float32 that just arrived."""
        for block in self._blocker.add(samples, time.monotonic()):
            self._blocks.put(block)

    def end(self, tail: np.ndarray) -> None:
        """The stream is complete (``audio-stop``): what is held goes in, and the segmenter ends the
        utterance in flight as its endpoint would."""
        if self._ended:
            return
        self.feed(tail)
        for block in self._blocker.flush(time.monotonic()):
            self._blocks.put(block)
        self._ended = True
        self._blocks.put(None)

    def cancel(self) -> None:
        """The client went away: take no more audio (the utterance in flight still finishes)."""
        self.pipeline.stop()
        if not self._ended:
            self._ended = True
            self._blocks.put(None)

    async def finished(self) -> None:
        """Wait until the pipeline's threads are done (after :meth:`end` or :meth:`cancel`)."""
        await asyncio.to_thread(self._thread.join)

    def _source(self) -> Iterator[AudioBlock]:
        while (block := self._blocks.get()) is not None:
            yield block

    def _post(self, item: Result) -> None:
        self._loop.call_soon_threadsafe(self.results.put_nowait, item)

    def _run(self) -> None:
        try:
            for event in self.pipeline.run(self._source()):
                item = self._result(event)
                if item is not None:
                    self._post(item)
        except BaseException as e:  # noqa: BLE001 - handed to the event loop, which answers with an error
            self._post(Crashed(e))
        finally:
            self._post(DONE)

    def _result(self, event: Event) -> Final | Failed | None:
        if isinstance(event, StageFailed):
            return Failed(event.message)
        if isinstance(event, Notice):
            log.info("%s", event.message)
        elif self.translate and isinstance(event, Translation):
            if not event.translated:
                log.info("utterance %d not translated into %s: %s", event.utterance_id, event.target_language, event.source_text)
            return Final(event.text, event.target_language)
        elif not self.translate and isinstance(event, Transcript):
            return Final(event.text, event.language)
        return None
