"""Compute spans: how long each part of the pipeline worked on what, seen through its observer hook.

``pipeline.observe(SpanLog())`` records every step the pipeline reports (the segmenter on each
audio block, each stage on each input event, the sink on each speech chunk), without wrapping or
replacing any part, so the pipeline measured is the one every command runs. The benchmark sums the
spans into per-stage compute time (real-time factors) and draws them on the utterance timeline.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Span:
    """A stretch of compute: one step of one part on one input."""

    part: str
    """``"vad"``, a stage name (``"asr"``, ``"mt"``, ``"tts"``) or ``"sink"``."""
    what: str
    """The input's type: ``AudioBlock`` for the VAD, ``SpeechGrowing`` = a caption decode,
    ``SpeechPaused`` / ``UtteranceEnded`` = a final decode, ``Transcript``, ``Translation``, ..."""
    utterance_id: int | None
    """The utterance the input belongs to; None for audio blocks."""
    start: float
    end: float


class SpanLog:
    """Every step the pipeline reports, in the order the worker threads finished them: a
    :class:`~translator.pipeline.Observer`."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    def begin(self, part: str, item: Any) -> None:
        """Nothing to record: a span is all a step needs."""

    def end(self, part: str, item: Any) -> None:
        """Nothing to record: a span is all a step needs."""

    def step(self, part: str, item: Any, start: float, end: float) -> None:
        # list.append is atomic under the GIL: the parts' threads need no lock
        self.spans.append(Span(part, type(item).__name__, getattr(item, "utterance_id", None), start, end))

    def seconds(self, part: str, what: Iterable[str] | None = None) -> float:
        """Compute seconds of ``part``, on inputs of the types ``what`` only when given."""
        kinds = set(what) if what is not None else None
        return sum(s.end - s.start for s in self.spans if s.part == part and (kinds is None or s.what in kinds))


__all__ = ["Span", "SpanLog"]
