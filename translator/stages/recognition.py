"""What the recognizer gives and takes besides audio: one recognised utterance, the utterance
before it as context, the task choice, and the signal that a decode was given up (plain data,
apart from the engine that makes them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from translator.config import AsrSettings
    from translator.stages.language_prior import LanguagePrior


@dataclass(frozen=True)
class Recognition:
    """One recognised utterance and the scores the guards judged it by."""

    text: str
    language: str
    language_probability: float
    """Among the allowed languages when those are given; 1.0 when the language was given."""
    task: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    compute_seconds: float
    tokens: int
    window_seconds: float
    """Audio seconds the encoder saw (30 per window when the stock window was used or retried)."""
    original: str = ""
    """With the translate task: the words as spoken, decoded from the same encoder output, so the
    user sees what was said as well as Whisper's English for the price of one more decode."""
    translated: bool = True
    """False when the translate task's text still reads as the spoken language after a second,
    harder decode (:mod:`~translator.stages.langcheck`): ``text`` is then no English translation."""


class Abandoned(Exception):
    """A recognition given up part way because its ``abandon`` check said so (a caption decode
    giving way to a final, see :mod:`translator.scheduler`): no result, and nothing went wrong."""


TaskChoice = str | Callable[[str], str]
"""A task, or a function of the detected language giving it (the translator's route decides)."""


@dataclass(frozen=True)
class Context:
    """The utterance just before, to decode the next one after it (``asr.context_gap``)."""

    audio: np.ndarray
    text: str
    """What was recognised in ``audio``: forced as the decoder's prefix."""
    language: str
    task: str


class Recognizer(Protocol):
    """What the recognizer stage asks of a recognizer: :class:`~translator.stages.recognizer.WhisperRecognizer`,
    or :class:`~translator.wyoming.remote_asr.RemoteRecognizer` (finals from a Wyoming server):
    recognitions, and how the decoder goes on after given words (a sentence commit's question)."""

    def recognize(
        self,
        audio: np.ndarray,
        settings: AsrSettings = ...,
        *,
        language: str | None = None,
        allowed: tuple[str, ...] | None = None,
        task: TaskChoice = "transcribe",
        prompt: str | None = None,
        retry: bool = True,
        prior: LanguagePrior | None = None,
        context: Context | None = None,
        abandon: Callable[[], bool] | None = None,
    ) -> Recognition | None: ...

    def continuation(self, audio: np.ndarray, text: str, language: str, settings: AsrSettings = ...) -> str: ...


__all__ = ["Context", "Recognition", "Recognizer", "TaskChoice"]
