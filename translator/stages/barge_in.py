"""Barge-in: the other person starts speaking while a translation plays (aec and full duplex).

The live session (translator/live.py) calls :meth:`BargeIn.interrupt` at the speech start: every
utterance whose speech has been queued and not finished is marked interrupted, and what is left
of it is stopped or ducked (``audio.barge_in``). Three places carry that out: the speaker's queue
(:meth:`~translator.audio.speaker.SpeakerSink.interrupt`), the chunks already synthesised on their
way to the speaker (the sink asks :meth:`BargeIn.gain` for each one, by the samples it is given),
and the sentences not yet synthesised (:class:`SpeechFilter` in front of the speaker stage stops
synthesis when stopping, and ends the utterance with its SpeechDone as usual). An utterance is
talked over while its speech is being synthesised or is still to be heard (the sink says until
when, :meth:`BargeIn.audible`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from translator.events import SpeechChunk, SpeechDone
from translator.pipeline import Stage, StageOutput


class BargeIn:
    """Which utterances were talked over, and the gain their remaining speech is played at
    (0 when it is stopped). Thread-safe: the speaker stage, the sink and the session use it."""

    def __init__(self, gain: float) -> None:
        self.talked_over_gain = gain
        self._lock = threading.Lock()
        self._interrupted: set[int] = set()
        self._speaking: set[int] = set()  # utterances with speech queued and not done
        self._chunks: dict[int, int] = {}  # id(chunk.samples) -> utterance, until the sink takes it
        self._audible: dict[int, float] = {}  # utterance -> wall time its queued speech ends
        self.interruptions = 0

    def queued(self, chunk: SpeechChunk) -> float:
        """A chunk leaves the speaker stage; returns the gain it will be played at."""
        with self._lock:
            if chunk.index == 0:
                # A synthesis of the utterance begins: what an earlier one (a speculation at the
                # pause, retracted when the speaker went on) queued was dropped on its way to the
                # sink, and is waited for no longer (:meth:`finished`).
                for key in [k for k, uid in self._chunks.items() if uid == chunk.utterance_id]:
                    del self._chunks[key]
            gain = self.talked_over_gain if chunk.utterance_id in self._interrupted else 1.0
            self._speaking.add(chunk.utterance_id)
            if gain > 0:  # a stopped one never reaches the sink
                self._chunks[id(chunk.samples)] = chunk.utterance_id
            return gain

    def take(self, samples: np.ndarray, sample_rate: int) -> tuple[int | None, float]:
        """For the sink: the utterance these samples belong to, and the gain to play them at.
        Played, they are heard at least until they have had time to play (the sink says the
        rest, :meth:`audible`, once they are queued)."""
        with self._lock:
            uid = self._chunks.pop(id(samples), None)
            gain = self.talked_over_gain if uid in self._interrupted else 1.0
            if uid is not None and gain > 0:
                until = time.monotonic() + len(samples) / sample_rate
                self._audible[uid] = max(until, self._audible.get(uid, 0.0))
            return uid, gain

    def audible(self, utterance_id: int, until: float) -> None:
        """The sink queued speech of ``utterance_id`` that is heard until wall time ``until``."""
        with self._lock:
            self._forget_heard(time.monotonic())
            self._audible[utterance_id] = max(until, self._audible.get(utterance_id, 0.0))

    def _forget_heard(self, now: float) -> None:
        """Drop the utterances heard to their end (so a session that is never talked over keeps
        only what is still playing). The lock is held."""
        for uid in [u for u, until in self._audible.items() if until <= now]:
            del self._audible[uid]

    def done(self, utterance_id: int) -> None:
        """Its synthesis ended (its playback may go on: :meth:`audible`)."""
        with self._lock:
            self._speaking.discard(utterance_id)

    def interrupt(self) -> list[int]:
        """Mark what is being spoken, or heard, as talked over; returns those utterances."""
        now = time.monotonic()
        with self._lock:
            self._forget_heard(now)
            hit = sorted((self._speaking | set(self._audible)) - self._interrupted)
            self._interrupted.update(hit)
            self.interruptions += bool(hit)
            return hit

    def interrupted(self, utterance_id: int) -> bool:
        with self._lock:
            return utterance_id in self._interrupted

    def finished(self, utterance_id: int) -> bool | None:
        """After :meth:`done`: None while some of the utterance's speech is still to be heard
        (queued for the sink, or playing); once it has all been heard, or stopped, whether it
        was talked over, and the utterance is forgotten (a session of weeks keeps nothing of it)."""
        with self._lock:
            if utterance_id in self._speaking or utterance_id in self._chunks.values():
                return None
            talked_over = utterance_id in self._interrupted
            stopped = talked_over and self.talked_over_gain == 0.0
            if not stopped and self._audible.get(utterance_id, 0.0) > time.monotonic():
                return None
            self._interrupted.discard(utterance_id)
            self._audible.pop(utterance_id, None)
            return talked_over


class SpeechFilter:
    """The speaker stage, registering each chunk with :class:`BargeIn`; an utterance stopped by a
    barge-in synthesises nothing more and ends at once (its SpeechDone still comes)."""

    def __init__(self, inner: Stage, barge_in: BargeIn) -> None:
        self.inner = inner
        self.barge_in = barge_in

    def feed(self, event: Any) -> Iterator[StageOutput]:
        outputs = iter(self.inner.feed(event))
        try:
            for out in outputs:
                if isinstance(out, SpeechChunk) and self.barge_in.queued(out) == 0.0:
                    yield SpeechDone(out.utterance_id, out.t_end_wall, time.monotonic(), out.voice)
                    return
                yield out
        finally:
            close = getattr(outputs, "close", None)
            if close is not None:
                close()  # stop synthesising sentences nobody will hear
