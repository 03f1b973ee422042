"""``asr.backend``: final transcripts from a Wyoming asr server on the LAN, the local model standing by.

A weak box keeps its VAD, its captions and its UI, and sends each finished utterance (the final
recognition: the pause's speculation, or the endpoint's when speech resumed) to a stronger one
running ``translator wyoming`` or wyoming-faster-whisper, as Home Assistant does: ``transcribe``,
``audio-start``, the utterance as 16 kHz 16-bit ``audio-chunk``\\ s, ``audio-stop``; the
``transcript`` is the final. Captions stay with the local model: a caption is a guess the next
one replaces, and a round trip per caption would load the server for nothing.

A backend that is down, refuses, breaks the protocol or is slower than ``asr.backend_timeout``
costs that utterance the timeout at most: the local model recognises it, the user is told once,
and the backend is left alone for a while (:mod:`~translator.wyoming.backend`).

Language: the transcript's own (``translator wyoming`` names it), else the one the session forces
(``languages.from``), else English for an English-only local model; a server that names none for
a detected language is taken as failing (wyoming-faster-whisper names none: give it and the
session ``--language``/``languages.from``). The servers transcribe only, so an utterance whose
route is Whisper's translate task (X -> English with no text model) is decoded by the local model,
said once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from wyoming.asr import Transcribe
from wyoming.asr import Transcript as WyomingTranscript
from wyoming.audio import AudioChunk, AudioStart, AudioStop

from translator.config import AsrSettings
from translator.events import SAMPLE_RATE, Caption, Discarded, Notice, SegmentEvent, Transcript
from translator.speculation import Confirm, Provisional, Retract
from translator.stages.asr import RecognizerStage
from translator.stages.guards import SILENCE_DBFS, rms_dbfs
from translator.stages.language_prior import LanguagePrior
from translator.stages.recognition import Context, Recognition, TaskChoice
from translator.stages.recognizer import DEFAULT, WhisperRecognizer
from translator.text import one_line
from translator.wyoming.backend import Backend, BackendError, Health
from translator.wyoming.pcm import encode

CHUNK_SECONDS = 1.0
"""Audio per ``audio-chunk``: 32 kB of 16-bit samples, well inside a server's payload limit."""


class WyomingAsrClient:
    """Blocking client of one Wyoming asr server: an utterance in, its text (and language) out."""

    def __init__(self, uri: str, timeout: float) -> None:
        self.backend = Backend(uri, timeout, "asr.backend")

    def transcribe(self, audio: np.ndarray, language: str | None) -> tuple[str, str | None]:
        """The transcript's text and language (None when the server names none); OSError
        (TimeoutError included) or BackendError on failure."""
        with self.backend.exchange() as exchange:
            exchange.send(Transcribe(language=language).event())
            exchange.send(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
            step = int(CHUNK_SECONDS * SAMPLE_RATE)
            for k in range(0, len(audio), step):
                exchange.send(AudioChunk(rate=SAMPLE_RATE, width=2, channels=1, audio=encode(audio[k : k + step])).event())
            exchange.send(AudioStop().event())
            while True:  # transcript-start/chunk/stop (streaming servers) come first: the transcript has it all
                event = exchange.read()
                if WyomingTranscript.is_type(event.type):
                    transcript = WyomingTranscript.from_event(event)
                    return transcript.text.strip(), transcript.language or None


class _LocalInstead(Exception):
    """This recognition is the local model's (said, when it needs saying, by a notice)."""


class RemoteRecognizer:
    """The :meth:`WhisperRecognizer.recognize` shape, finals from the backend.

    A recognition with ``retry`` False is a caption (the stage asks so of captions only) and goes
    to ``local``; so does a final when the backend fails or was failing a moment ago, and the
    short decode a sentence commit asks for (:meth:`continuation`).
    """

    def __init__(self, client: WyomingAsrClient, local: WhisperRecognizer) -> None:
        self._client = client
        self._local = local
        self._health = Health("asr backend", client.backend.uri)
        self._translating_said = False
        self._notices: list[Notice] = []

    def recognize(
        self,
        audio: np.ndarray,
        settings: AsrSettings = DEFAULT,
        *,
        language: str | None = None,
        allowed: tuple[str, ...] | None = None,
        task: TaskChoice = "transcribe",
        prompt: str | None = None,
        retry: bool = True,
        prior: LanguagePrior | None = None,
        context: Context | None = None,
        abandon: Callable[[], bool] | None = None,
    ) -> Recognition | None:
        if rms_dbfs(audio) < SILENCE_DBFS:
            return None  # what the local model says of silence, without a round trip
        if task == "translate":
            self._say_translating(language)
        elif retry and self._health.due():
            with contextlib.suppress(_LocalInstead):
                return self._remote(audio, language, task)
        return self._local.recognize(
            audio,
            settings,
            language=language,
            allowed=allowed,
            task=task,
            prompt=prompt,
            retry=retry,
            prior=prior,
            context=context,
            abandon=abandon,
        )

    def _remote(self, audio: np.ndarray, language: str | None, task: TaskChoice) -> Recognition | None:
        """The backend's recognition (None: it heard nothing); :class:`_LocalInstead` when the local
        model must do it (the backend failed, or the utterance needs the translate task)."""
        started = time.perf_counter()
        try:
            text, spoken = self._client.transcribe(np.asarray(audio, dtype=np.float32), language)
            spoken = spoken or language or (None if self._local.multilingual else "en")
            if spoken is None:
                raise BackendError("named no language for the transcript; set languages.from")
        except (OSError, BackendError) as e:
            self._health.failed(
                one_line(e) or type(e).__name__, f"recognising with the local model {self._local.model_fields[0]}"
            )
            raise _LocalInstead from e
        self._health.recovered()
        resolved = task if isinstance(task, str) else task(spoken)
        if resolved == "translate":
            self._say_translating(spoken)
            raise _LocalInstead
        if not text:
            return None
        return Recognition(
            text=text,
            language=spoken,
            language_probability=1.0,
            task="transcribe",
            avg_logprob=0.0,
            no_speech_prob=0.0,
            compression_ratio=1.0,
            compute_seconds=time.perf_counter() - started,
            tokens=0,
            window_seconds=len(audio) / SAMPLE_RATE,
        )

    def _say_translating(self, language: str | None) -> None:
        if not self._translating_said:
            self._translating_said = True
            self._notices.append(
                Notice(
                    f"asr backend {self._health.uri} transcribes only: Whisper's translate task"
                    f"{f' for {language}' if language else ''} runs on the local model",
                    time.monotonic(),
                )
            )

    def continuation(self, audio: np.ndarray, text: str, language: str, settings: AsrSettings = DEFAULT) -> str:
        """The local model's: a sentence commit asks the decoder for three tokens after given words,
        which no Wyoming request can (a transcript has no forced prefix)."""
        return self._local.continuation(audio, text, language, settings)

    def warm_up(self) -> None:
        """A first request (a second of silence) to the backend: one that is down at start-up is said
        before the first utterance rather than during it."""
        with contextlib.suppress(_LocalInstead):
            self._remote(np.zeros(SAMPLE_RATE, np.float32), "en", "transcribe")

    def take_notices(self) -> list[Notice]:
        notices, self._notices = self._health.take_notices() + self._notices, []
        return notices


class RemoteRecognizerStage(RecognizerStage):
    """The recognizer stage over a :class:`RemoteRecognizer`, passing on what the backend has to
    say (it failed, it is back) after each event."""

    def __init__(self, recognizer: RemoteRecognizer, settings: AsrSettings, **options: Any) -> None:
        super().__init__(recognizer, settings, **options)
        self.remote = recognizer

    def feed(self, event: SegmentEvent) -> Iterator[Caption | Transcript | Discarded | Notice | Provisional | Confirm | Retract]:
        yield from super().feed(event)
        yield from self.remote.take_notices()
