"""The data that flows between stages.

Every stage consumes and produces these small frozen dataclasses, never dicts, so a stage can be
swapped or faked and the UI, the transcript log and the benchmark all read the same fields.

Time: ``audio_time``-style fields are seconds on the audio clock (0 = first sample of the
stream); ``wall`` fields are ``time.monotonic()`` seconds. ``t_end_wall`` is the wall time at which
the last voiced sample of an utterance reached the pipeline, so for any event
``event.wall - event.t_end_wall`` is its latency after the speaker stopped, computed the same way
everywhere.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
"""Every stage after the audio source works on 16 kHz mono float32."""


@dataclass(frozen=True, eq=False)
class AudioBlock:
    """A run of 16 kHz mono float32 samples as delivered by a source."""

    samples: np.ndarray
    start: float
    """Audio time of the first sample."""
    wall: float
    """When the block became available (monotonic)."""

    @property
    def end(self) -> float:
        return self.start + len(self.samples) / SAMPLE_RATE


# --- Segmenter (VAD) -> Recognizer -------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SpeechStarted:
    """Voice detected; ``start`` includes the pre-roll."""

    utterance_id: int
    start: float
    wall: float


@dataclass(frozen=True, eq=False)
class SpeechGrowing:
    """The utterance so far, emitted about every ``partial_interval`` seconds of new speech.

    Lets the recognizer re-decode for partial captions without knowing the VAD policy.
    """

    utterance_id: int
    audio: np.ndarray
    start: float
    end: float
    wall: float


@dataclass(frozen=True, eq=False)
class SpeechPaused:
    """A short pause (not yet an endpoint): the moment to start speculative finalisation."""

    utterance_id: int
    audio: np.ndarray
    start: float
    t_end: float
    """Audio time of the last voiced sample."""
    t_end_wall: float
    wall: float


@dataclass(frozen=True, eq=False)
class PauseFollowed:
    """Speech went on after the short pause ending at ``t_end`` (:mod:`translator.commits`):
    ``audio`` runs from the utterance's start past the pause into the new words, for the
    recognizer to hear whether the sentence ended at the pause. The segmenter then waits for the
    answer before it goes on with this utterance."""

    utterance_id: int
    audio: np.ndarray
    start: float
    t_end: float
    """Audio time of the pause's last voiced sample (its ``SpeechPaused.t_end``)."""
    wall: float


@dataclass(frozen=True, eq=False)
class UtteranceEnded:
    """Endpoint: the utterance is complete (or was cut at the length cap)."""

    utterance_id: int
    audio: np.ndarray
    start: float
    t_end: float
    """Audio time of the last voiced sample."""
    t_end_wall: float
    wall: float
    cut: bool = False
    """True when the length cap cut the utterance rather than a pause ending it."""
    committed: bool = False
    """True when a pause that ended a sentence ended it while the speaker went on (a sentence
    commit, :mod:`translator.commits`): the speech after it is the next utterance."""


SegmentEvent = SpeechStarted | SpeechGrowing | SpeechPaused | PauseFollowed | UtteranceEnded


# --- Recognizer -> Translator -------------------------------------------------------------------


@dataclass(frozen=True)
class Caption:
    """A partial caption while the person is still talking."""

    utterance_id: int
    committed: str
    """Prefix two consecutive hypotheses agreed on: never changes afterwards."""
    tentative: str
    """The rest of the latest hypothesis: may still change."""
    audio_end: float
    """Audio time up to which the caption covers the speech."""
    audio_end_wall: float
    """When the audio at ``audio_end`` reached the pipeline: ``wall - audio_end_wall`` is the caption lag."""
    wall: float


@dataclass(frozen=True)
class Transcript:
    """Final recognition of one utterance."""

    utterance_id: int
    text: str
    language: str
    language_probability: float
    task: str
    """``transcribe`` (text in ``language``) or ``translate`` (Whisper's English translation)."""
    start: float
    t_end: float
    t_end_wall: float
    wall: float
    compute_seconds: float
    original: str = ""
    """With ``task == "translate"``: the words as spoken (same encoder pass, one more decode)."""
    translated: bool = True
    """With ``task == "translate"``: False when Whisper's text still reads as ``language``, not
    English, after a second decode; the translator then works from ``original`` or gives up."""


@dataclass(frozen=True)
class Discarded:
    """The recognizer judged an utterance not to be speech (noise, music, a hallucination)."""

    utterance_id: int
    t_end_wall: float
    wall: float


# --- Translator -> Speaker ----------------------------------------------------------------------


@dataclass(frozen=True)
class Translation:
    """The translated text of one utterance."""

    utterance_id: int
    source_text: str
    source_language: str
    text: str
    target_language: str
    route: str
    """How it was translated, e.g. ``whisper-translate``, ``opus-mt-de-en``, ``pivot:a+b``, ``same``."""
    start: float
    t_end: float
    t_end_wall: float
    wall: float
    compute_seconds: float
    translated: bool = True
    """False when no translation could be made: what came back still read as the source language
    (Whisper's translate task answering in the language it heard, a model copying its input, see
    :mod:`~translator.stages.langcheck`) and no other route could do better. ``text`` is then
    empty, so nothing speaks or shows it as a translation; front ends show ``source_text`` marked
    "not translated"."""


# --- Speaker -> sink ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SpeechChunk:
    """A piece of synthesised speech, in order; the first of an utterance has ``index == 0``."""

    utterance_id: int
    samples: np.ndarray
    """float32 in [-1, 1], mono."""
    sample_rate: int
    index: int
    text: str
    """The sentence this chunk speaks."""
    t_end_wall: float
    wall: float
    voice: str


@dataclass(frozen=True)
class SpeechDone:
    """All speech for an utterance has been produced (or none could be: ``voice == ''``)."""

    utterance_id: int
    t_end_wall: float
    wall: float
    voice: str


@dataclass(frozen=True)
class SpeechHeard:
    """An utterance's speech has been heard to its end, or stopped by the other person talking
    over it (a live session with barge-in on: translator/live.py). Its record closes here, not at
    :class:`SpeechDone`, because the speech usually plays on after it is synthesised, and being
    talked over is part of the record."""

    utterance_id: int
    wall: float
    interrupted: bool
    """The other person talked over it: what was left of it was stopped or ducked."""


class NoticeLevel(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    """Something is lost (an output failed): a command that saw one exits non-zero."""


@dataclass(frozen=True)
class Notice:
    """Something the user should be told once (a fallback voice, a pivot route, a lost device)."""

    message: str
    wall: float
    level: NoticeLevel = NoticeLevel.INFO


@dataclass(frozen=True)
class StageFailed:
    """A stage hit an error for one utterance; the pipeline goes on with the next one."""

    stage: str
    utterance_id: int
    message: str
    wall: float


Event = (
    SpeechStarted
    | SpeechGrowing
    | SpeechPaused
    | PauseFollowed
    | UtteranceEnded
    | Caption
    | Transcript
    | Discarded
    | Translation
    | SpeechChunk
    | SpeechDone
    | SpeechHeard
    | Notice
    | StageFailed
)

__all__ = [
    "SAMPLE_RATE",
    "AudioBlock",
    "SpeechStarted",
    "SpeechGrowing",
    "SpeechPaused",
    "PauseFollowed",
    "UtteranceEnded",
    "SegmentEvent",
    "Caption",
    "Transcript",
    "Discarded",
    "Translation",
    "SpeechChunk",
    "SpeechDone",
    "SpeechHeard",
    "Notice",
    "NoticeLevel",
    "StageFailed",
    "Event",
]
