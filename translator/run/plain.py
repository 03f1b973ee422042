"""``translator run --plain`` and ``--jsonl``: one time-stamped line per event, or one JSON object
per utterance. The lines are made by pure functions of the event or record; the renderers only
time-stamp, deduplicate and write them."""

from __future__ import annotations

import statistics
import sys
import time
from typing import IO

from translator.audio.duplex import DESCRIPTIONS
from translator.events import (
    Caption,
    Discarded,
    Event,
    Notice,
    NoticeLevel,
    SpeechChunk,
    SpeechStarted,
    StageFailed,
    Transcript,
    Translation,
    UtteranceEnded,
)
from translator.live import State
from translator.run.snapshot import Renderer, SessionInfo, Snapshot
from translator.text import ms, one_line
from translator.transcript import INTERRUPTED, NOT_TRANSLATED, UtteranceRecord

UNCUT = sys.maxsize
"""What people said is shown whole; only messages (errors, notices) are cut to one_line's limit."""


def said(text: str) -> str:
    """Spoken or translated text on one line, never shortened."""
    return one_line(text, UNCUT)


def latency_text(record: UtteranceRecord) -> str:
    """``asr 412 ms · mt 480 ms · speech 620 ms · caption lag 0.35 s (3 captions)``."""
    parts = [f"asr {ms(record.asr_final)}", f"mt {ms(record.mt)}"]
    if record.speech_to_speech is not None:
        parts.append(f"speech {ms(record.speech_to_speech)}")
    if record.caption_lags:
        n = len(record.caption_lags)
        parts.append(f"caption lag {statistics.median(record.caption_lags):.2f} s ({n} caption{'s' if n > 1 else ''})")
    return " · ".join(parts)


def heard_text(event: Transcript) -> str:
    """The words as spoken (Whisper's own translation keeps them in ``original``)."""
    return said(event.original if event.task == "translate" and event.original else event.text)


def ready_line(info: SessionInfo) -> str:
    speaker = f"speaking on {info.speaker!r}" if info.speaker else "not speaking"
    guard = ""
    if info.speaker:
        guard = f"; {DESCRIPTIONS[info.duplex]}" if info.duplex is not None else ""
    keys = "; hold space to talk" if info.ptt else ""
    return f"ready: {info.languages}; microphone {info.microphone!r}; {speaker}{guard}{keys}; Ctrl-C to stop"


def caption_text(event: Caption) -> str:
    return said(f"{event.committed} {event.tentative}")


def event_line(event: Event) -> str | None:
    """The line for one event; None for those --plain does not show. Notices: :func:`status_line`."""
    uid = getattr(event, "utterance_id", None)
    if isinstance(event, SpeechStarted):
        return f"#{uid} speech started at {event.start:.2f} s"
    if isinstance(event, Caption):
        stable = f"  (stable: {said(event.committed)})" if event.committed.strip() else ""
        return f"#{uid} caption: {caption_text(event)}{stable}"
    if isinstance(event, UtteranceEnded):
        cut = ", cut at the length cap" if event.cut else ", a sentence ended: speech goes on" if event.committed else ""
        return f"#{uid} speech ended at {event.t_end:.2f} s ({event.t_end - event.start:.1f} s{cut})"
    if isinstance(event, Transcript):
        return f"#{uid} heard ({event.language}): {heard_text(event)}"
    if isinstance(event, Translation) and not event.translated:
        return f"#{uid} {NOT_TRANSLATED} ({event.source_language} → {event.target_language}, {event.route}): {said(event.source_text)}"
    if isinstance(event, Translation) and event.route != "same":
        return f"#{uid} translated ({event.source_language} → {event.target_language}, {event.route}): {said(event.text)}"
    if isinstance(event, SpeechChunk) and event.index == 0:
        return f"#{uid} speaking ({event.voice})"
    if isinstance(event, Discarded):
        return f"#{uid} not speech, discarded"
    if isinstance(event, Notice):
        return status_line(event.message, event.level)
    if isinstance(event, StageFailed):
        return f"#{uid} error: {event.stage} failed: {one_line(event.message)}"
    return None


def record_line(record: UtteranceRecord) -> str:
    route = f"{record.language or '?'} → {record.target_language or '?'}"
    error = f" · error: {one_line(record.error)}" if record.error else ""
    missing = "" if record.translated else f" · {NOT_TRANSLATED}"
    over = f" · {INTERRUPTED}" if record.interrupted else ""
    return f"#{record.utterance_id} done ({route}): {latency_text(record)}{missing}{over}{error}"


def status_line(message: str, level: NoticeLevel = NoticeLevel.INFO) -> str:
    prefix = "" if level is NoticeLevel.INFO else f"{level.value}: "
    return f"{prefix}{one_line(message)}"


class PlainRenderer(Renderer):
    """One line per event, time-stamped, no colours; a caption only when its text changed."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self._captions: dict[int, str] = {}
        self._muted = False
        self._talking: bool | None = None

    def line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        try:
            self.out.write(f"{stamp} {text}\n")
            self.out.flush()
        except (OSError, ValueError):  # a closed pipe or terminal: go on translating
            pass

    def started(self, info: SessionInfo) -> None:
        self.line(ready_line(info))

    def event(self, event: Event) -> None:
        if isinstance(event, Caption):
            text = caption_text(event)
            if not text or text == self._captions.get(event.utterance_id):
                return
            self._captions[event.utterance_id] = text
        elif isinstance(event, (Transcript, Discarded)):
            self._captions.pop(event.utterance_id, None)
        line = event_line(event)
        if line is not None:
            self.line(line)

    def record(self, record: UtteranceRecord) -> None:
        self.line(record_line(record))

    def status(self, message: str, level: NoticeLevel = NoticeLevel.INFO) -> None:
        self.line(status_line(message, level))

    def tick(self, snap: Snapshot) -> None:
        muted = snap.state is State.SPEAKING_MUTED
        if muted != self._muted:
            self._muted = muted
            self.line("microphone muted while speaking" if muted else "microphone open")
        if snap.talking != self._talking:
            if self._talking is not None:
                self.line("push-to-talk: talking" if snap.talking else "push-to-talk: microphone off")
            self._talking = snap.talking


class JsonlRenderer(PlainRenderer):
    """One JSON object per utterance on stdout (the ``--transcript`` file's records); notices
    and errors as plain lines on stderr."""

    def __init__(self, out: IO[str] | None = None, err: IO[str] | None = None) -> None:
        super().__init__(err or sys.stderr)
        self.records = out or sys.stdout

    def event(self, event: Event) -> None:
        if isinstance(event, (Notice, StageFailed)):
            super().event(event)

    def record(self, record: UtteranceRecord) -> None:
        try:
            self.records.write(record.to_json() + "\n")
            self.records.flush()
        except (OSError, ValueError):  # a closed pipe or terminal: go on translating
            pass

    def tick(self, snap: Snapshot) -> None:
        pass
