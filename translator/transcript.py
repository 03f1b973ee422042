"""Per-utterance records built from pipeline events, and the files they are written to.

The UI, the JSON-lines transcripts (``translate --jsonl``, ``run --transcript``, the service's
log), the subtitles and the benchmark all read the same :class:`UtteranceRecord`, so a latency
means the same thing everywhere: seconds after the last voiced sample reached the pipeline, the
moment the speaker stopped.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Self

from translator.errors import OutputError
from translator.events import (
    Caption,
    Event,
    SpeechChunk,
    SpeechDone,
    SpeechHeard,
    StageFailed,
    Transcript,
    Translation,
    UtteranceEnded,
)


@dataclass(frozen=True)
class UtteranceRecord:
    """Everything known about one finished utterance. Latencies are seconds after ``t_end``."""

    utterance_id: int
    start: float
    end: float
    language: str
    source_text: str
    target_language: str
    text: str
    route: str
    voice: str
    asr_final: float | None
    """Final transcript ready, after the last voiced sample reached the pipeline."""
    mt: float | None
    speech_to_speech: float | None
    """First translated audio handed to the output, after the last voiced sample."""
    caption_lags: tuple[float, ...]
    """For each partial caption: when it appeared minus the audio time it covers."""
    asr_compute: float | None
    mt_compute: float | None
    speech_seconds: float
    cut: bool
    error: str = ""
    language_probability: float | None = None
    """How sure detection was of ``language`` (1.0 when it was given), None without a transcript."""
    translated: bool = True
    """False when the translation came back in the source language and was dropped
    (:attr:`Translation.translated`): ``text`` is empty, ``source_text`` holds the words."""
    continued: bool = False
    """The speaker went on: a sentence commit ended this segment at a pause (:mod:`translator.commits`),
    and the next record carries what followed."""
    interrupted: bool = False
    """The other person talked over its translation (barge-in): what was left of it was stopped
    or ducked (``audio.barge_in``)."""

    def to_json(self, finished: datetime | None = None) -> str:
        """The record as one JSON line (no newline): the one format of every transcript file.

        ``finished`` (an aware datetime) adds ``time``, when the utterance finished in ISO 8601,
        first: a live session that runs for weeks needs it, because ``start``/``end`` count from
        the start of the current microphone session, not from a file's beginning.
        """
        fields = dataclasses.asdict(self)
        if finished is not None:
            fields = {"time": finished.isoformat(timespec="milliseconds"), **fields}
        return json.dumps(fields, ensure_ascii=False)


class UtteranceCollector:
    """Joins the events of each utterance into a record once its last stage is done.

    What closes an utterance: SpeechDone with a speaker, SpeechHeard with ``heard`` (a live
    session with barge-in, which says whether the speech was talked over), Translation when
    speech output is off.
    """

    def __init__(self, *, speaking: bool = True, heard: bool = False) -> None:
        self.speaking = speaking
        self.heard = heard
        self._voices: dict[int, str] = {}  # synthesised, with ``heard``: waiting to be heard
        self._ended: dict[int, UtteranceEnded] = {}
        self._captions: dict[int, list[float]] = {}
        self._transcripts: dict[int, Transcript] = {}
        self._translations: dict[int, Translation] = {}
        self._first_audio: dict[int, float] = {}
        self._speech: dict[int, float] = {}

    def feed(self, event: Event) -> UtteranceRecord | None:
        """Take one event; return the record when it completes an utterance."""
        if isinstance(event, UtteranceEnded):
            self._ended[event.utterance_id] = event
        elif isinstance(event, Caption):
            self._captions.setdefault(event.utterance_id, []).append(event.wall - event.audio_end_wall)
        elif isinstance(event, Transcript):
            self._transcripts[event.utterance_id] = event
        elif isinstance(event, Translation):
            self._translations[event.utterance_id] = event
            if not self.speaking:
                return self._close(event.utterance_id, voice="")
        elif isinstance(event, SpeechChunk):
            self._first_audio.setdefault(event.utterance_id, event.wall)
            uid = event.utterance_id
            self._speech[uid] = self._speech.get(uid, 0.0) + len(event.samples) / event.sample_rate
        elif isinstance(event, SpeechDone):
            if not self.heard:
                return self._close(event.utterance_id, voice=event.voice)
            self._voices[event.utterance_id] = event.voice
        elif isinstance(event, SpeechHeard) and event.utterance_id in self._voices:
            voice = self._voices[event.utterance_id]
            return self._close(event.utterance_id, voice=voice, interrupted=event.interrupted)
        elif isinstance(event, StageFailed) and event.utterance_id in self._ended:
            return self._close(event.utterance_id, voice="", error=f"{event.stage}: {event.message}")
        return None

    def unheard(self, talked_over: Callable[[int], bool]) -> list[UtteranceRecord]:
        """With ``heard``: the records of the utterances synthesised and not yet heard, closed now
        (``talked_over`` says which were, so far), for a run that quits at once: its transcript
        keeps what was translated."""
        voices = list(self._voices.items())
        records = [self._close(uid, voice=voice, interrupted=talked_over(uid)) for uid, voice in voices]
        return [r for r in records if r is not None]

    def _close(self, uid: int, *, voice: str, error: str = "", interrupted: bool = False) -> UtteranceRecord | None:
        ended = self._ended.pop(uid, None)
        self._voices.pop(uid, None)
        tr = self._transcripts.pop(uid, None)
        mt = self._translations.pop(uid, None)
        first = self._first_audio.pop(uid, None)
        lags = tuple(self._captions.pop(uid, []))
        speech = self._speech.pop(uid, 0.0)
        if ended is None or (tr is None and not error):
            return None
        t0 = ended.t_end_wall
        return UtteranceRecord(
            utterance_id=uid,
            start=round(ended.start, 3),
            end=round(ended.t_end, 3),
            language=tr.language if tr else "",
            source_text=mt.source_text if mt else (tr.text if tr else ""),
            target_language=mt.target_language if mt else "",
            text=mt.text if mt else "",
            route=mt.route if mt else "",
            voice=voice,
            asr_final=_round(tr.wall - t0) if tr else None,
            mt=_round(mt.wall - t0) if mt else None,
            speech_to_speech=_round(first - t0) if first is not None else None,
            caption_lags=tuple(_round(x) for x in lags),
            asr_compute=_round(tr.compute_seconds) if tr else None,
            mt_compute=_round(mt.compute_seconds) if mt else None,
            speech_seconds=round(speech, 3),
            cut=ended.cut,
            error=error,
            language_probability=round(tr.language_probability, 3) if tr else None,
            translated=mt.translated if mt else True,
            continued=ended.committed,
            interrupted=interrupted,
        )


def _round(x: float) -> float:
    return round(x, 4)


class _LineFile:
    """A text file written a record at a time and flushed each time, so a crash loses nothing."""

    def __init__(self, path: str | Path, *, append: bool = False) -> None:
        self.path = Path(path)
        try:
            self._f: IO[str] = open(self.path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115 - open for the writer's life; close() closes it
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write ({e.strerror}); check the directory exists and is writable") from None

    def _write(self, text: str) -> None:
        try:
            self._f.write(text)
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as e:
            raise OutputError(f"{self.path}: write failed ({e.strerror}); earlier lines are kept") from None

    def write(self, record: UtteranceRecord) -> None:
        """Write one utterance in this file's format (each subclass has its own)."""
        raise NotImplementedError

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JsonlWriter(_LineFile):
    """One JSON object per line and per utterance: a line is either whole or absent."""

    def write(self, record: UtteranceRecord) -> None:
        self._write(record.to_json() + "\n")


NOT_TRANSLATED = "not translated"
"""What every front end says beside the source words of an utterance whose translation came back
in the source language (:attr:`UtteranceRecord.translated` False)."""

INTERRUPTED = "talked over"
"""What every front end says of a translation the other person talked over
(:attr:`UtteranceRecord.interrupted`)."""

NOT_TRANSLATED_MARK = f"[{NOT_TRANSLATED}]"
"""Before those source words in the subtitles."""


class SrtWriter(_LineFile):
    """SubRip subtitles of the translation, timed on the source audio; an utterance without one
    shows its source words after :data:`NOT_TRANSLATED_MARK`."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self._n = 0

    def write(self, record: UtteranceRecord) -> None:
        text = record.text.strip()
        if not record.translated and record.source_text.strip():
            text = f"{NOT_TRANSLATED_MARK} {record.source_text.strip()}"
        if not text:
            return
        self._n += 1
        end = max(record.end, record.start + 0.5)
        self._write(f"{self._n}\n{srt_time(record.start)} --> {srt_time(end)}\n{text}\n\n")


def srt_time(seconds: float) -> str:
    ms = int(round(max(seconds, 0.0) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"
