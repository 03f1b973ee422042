"""When live captions may use the CPU: only when the work that produces the translation does not need it.

A caption is a convenience; the final transcript, its translation and the first sentence of its
speech are the product. On a box with cores to spare the two never meet, but on a Raspberry Pi
(one core of this machine, or less) a caption decode in flight when the pause comes delays the final
by the whole decode, and a caption decoded while Piper speaks the first sentence halves Piper's
share of the core. So the recognizer asks :class:`Scheduler` before each caption decode, and the
scheduler, a pipeline observer that sees every stage's inbox, says:

- **skip** while urgent work is queued or running: a pause, an endpoint or a sentence-commit
  question (:mod:`translator.commits`) for the recognizer, a
  transcript for the translator, a translation whose first sentence is not synthesised yet;
- **skip** when the speaker has gone quiet and a caption would take longer than the rest of the
  pause: the pause would find the recognizer busy with a caption the final replaces anyway;
- **skip** until captions have used at most :data:`CAPTION_SHARE` of the time since the previous
  one: each caption decode's cost is measured as it runs (the bench's spans measure every
  stage's), so when caption decodes are slow the caption interval widens, and it shrinks back as
  they speed up;
- **stale** when the snapshot waited longer than :data:`STALE_CAPTION` (the recognizer is behind
  real time): dropped, and the first of a run of them is said once (``BEHIND``).

A caption already decoding gives way too: the recognizer asks :meth:`Scheduler.preempted` between
the encoder and the decoder and abandons the caption when a pause or an endpoint is waiting.
Queues stay bounded by the pipeline; finals are never dropped (every utterance is finalised), so
what is shed when the box is too slow is captions.
"""

from __future__ import annotations

import enum
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from translator.events import PauseFollowed, SpeechGrowing, SpeechPaused, Transcript, Translation, UtteranceEnded
from translator.speculation import Provisional

CAPTION_SHARE = 0.5
"""Most of the recognizer's time captions may take: with a caption costing ``c`` seconds, the next
starts no sooner than ``c * (1 / share - 1)`` after it ended (``c`` after it at 0.5), so finals,
which may come at any moment, never find the recognizer busy more than half the time."""

STALE_CAPTION = 1.0
"""Seconds a caption snapshot may wait before it is dropped: by then newer speech has been heard,
and a caption that late only competes with the work that is behind."""

COST_WEIGHT = 0.3
"""Weight of the newest step in a cost's moving average: a few steps follow a change of load
(another program, thermal throttling) without one odd step swinging it."""

URGENT = (SpeechPaused, PauseFollowed, UtteranceEnded, Transcript, Translation)
"""Inputs on the way to the translation: the pause and the endpoint (the final decode), the
question whether a sentence ended at a pause (its answer releases that sentence's translation,
:mod:`translator.commits`), the transcript (translation), the translation (its first sentence's
synthesis)."""


class CaptionTurn(enum.StrEnum):
    """What the scheduler says to a caption snapshot."""

    DECODE = "decoded"
    BUSY = "busy"
    """Urgent work is queued or running."""
    PAUSING = "pausing"
    """The speaker is quiet and the pause may come before a caption would be done."""
    SPACED = "spaced"
    """Too soon after the previous caption for the share captions may take."""
    STALE = "stale"
    BEHIND = "behind"
    """Stale, and the first of a run: the recognizer has fallen behind real time (say so)."""
    PREEMPTED = "preempted"
    """Abandoned between encoder and decoder for a pause or an endpoint."""


def _urgent(item: Any) -> bool:
    return isinstance(item.event if isinstance(item, Provisional) else item, URGENT)


class Scheduler:
    """Decides caption turns from what every stage is doing (see the module docstring).

    The pipeline calls :meth:`attach` for each stage's inbox and the observer methods from the
    worker threads; the recognizer calls :meth:`caption_turn`, :meth:`preempted` and
    :meth:`abandoned` from its own.
    """

    def __init__(
        self,
        *,
        share: float = CAPTION_SHARE,
        stale: float = STALE_CAPTION,
        pause: float = 0.0,
        silence: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.share = share
        self.stale = stale
        self.pause = pause
        """The segmenter's pause (``vad.pause``): silence that starts the final decode."""
        self.silence = silence
        """Seconds the speaker has been quiet now (the segmenter's :attr:`~translator.stages.vad.Segmenter.silence`)."""
        self.clock = clock
        self.turns: Counter[str] = Counter()
        """Caption snapshots by what became of them (:class:`CaptionTurn` values)."""
        self._lock = threading.Lock()
        self._inboxes: dict[str, queue.Queue[Any]] = {}
        self._running: dict[str, Any] = {}
        """Part -> the urgent item it is working on."""
        self._decoding: SpeechGrowing | None = None
        """The snapshot given its turn, until the recognizer is done with it."""
        self.caption_cost: float | None = None
        """Moving average of a caption decode's seconds (the recognizer's steps on snapshots it
        skipped cost nothing and are not counted)."""
        self._caption_ended = -float("inf")
        self._behind = False

    # --- the pipeline's side -------------------------------------------------------------------

    def attach(self, part: str, inbox: queue.Queue[Any]) -> None:
        """``part``'s inbox, to see the urgent work waiting in it."""
        self._inboxes[part] = inbox

    def begin(self, part: str, item: Any) -> None:
        if _urgent(item):
            with self._lock:
                self._running[part] = item

    def step(self, part: str, item: Any, start: float, end: float) -> None:
        if isinstance(item, SpeechGrowing):
            if item is self._decoding:
                self.caption_cost = _average(self.caption_cost, end - start)
            return
        if isinstance(item, Translation):
            with self._lock:
                if self._running.get(part) is item:
                    del self._running[part]  # the first sentence is out: the rest may share the core

    def end(self, part: str, item: Any) -> None:
        if item is self._decoding:
            self._decoding = None
            self._caption_ended = self.clock()
        with self._lock:
            if self._running.get(part) is item:
                del self._running[part]

    # --- the recognizer's side -----------------------------------------------------------------

    def busy(self) -> bool:
        """Urgent work is running in a stage or waiting in an inbox."""
        with self._lock:
            if self._running:
                return True
        return any(self._waiting(part) for part in self._inboxes)

    def preempted(self) -> bool:
        """A pause, an endpoint or a sentence-commit question is waiting for the recognizer: the
        caption in hand gives way."""
        return self._waiting("asr")

    def caption_turn(self, snapshot: SpeechGrowing) -> CaptionTurn:
        """Whether to decode ``snapshot`` now (:attr:`CaptionTurn.DECODE`), and why not."""
        now = self.clock()
        if now - snapshot.wall > self.stale:
            turn = CaptionTurn.STALE if self._behind else CaptionTurn.BEHIND
            self._behind = True
        elif self.busy():
            turn = CaptionTurn.BUSY
        elif self._pausing():
            turn = CaptionTurn.PAUSING
        elif now - self._caption_ended < self.caption_gap():
            turn = CaptionTurn.SPACED
        else:
            turn = CaptionTurn.DECODE
            self._behind = False
            self._decoding = snapshot
        self.turns[turn.value] += 1
        return turn

    def abandoned(self) -> None:
        """The caption decode that :meth:`caption_turn` allowed gave way to a final."""
        self.turns[CaptionTurn.DECODE.value] -= 1
        self.turns[CaptionTurn.PREEMPTED.value] += 1
        self._decoding = None  # an encoder run alone is not what a caption costs

    def _pausing(self) -> bool:
        quiet = self.silence() if self.silence is not None else 0.0
        return quiet > 0 and (self.caption_cost or 0.0) > self.pause - quiet

    def caption_gap(self) -> float:
        """Seconds to leave after a caption, from what captions cost lately."""
        return (self.caption_cost or 0.0) * (1 / self.share - 1)

    def _waiting(self, part: str) -> bool:
        inbox = self._inboxes.get(part)
        if inbox is None:
            return False
        with inbox.mutex:  # a short scan of a bounded queue, under its own lock
            return any(_urgent(item) for item in inbox.queue)


def _average(old: float | None, new: float) -> float:
    return new if old is None else old + COST_WEIGHT * (new - old)


__all__ = ["CAPTION_SHARE", "STALE_CAPTION", "CaptionTurn", "Scheduler"]
