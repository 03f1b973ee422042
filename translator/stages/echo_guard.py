"""The last guard against hearing ourselves: a final transcript that repeats what the translator
has just said is our own voice come back (residual echo), not the other person.

:class:`OwnSpeech` remembers the text of each speech chunk and when it was heard; a transcript is
judged an echo when most of its words, in order, are in what was said from ``window`` seconds
before it began until it ended. The live session wires it in twice (translator/live.py): in front
of the translator stage (:class:`EchoFilter`), so an echo is neither translated nor spoken again,
and on the pipeline's output, so it is not shown; both ask the same :meth:`OwnSpeech.is_echo`,
which decides once per transcript.
"""

from __future__ import annotations

import difflib
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from translator.events import Discarded, Transcript
from translator.pipeline import Stage, StageOutput

MATCH = 0.6
"""Share of a transcript's words that must be found, in order, in our own recent speech; one of
up to three words must match whole (a short "yes" is not taken for ours on one word)."""

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


class OwnSpeech:
    """What the translator said lately, and whether a transcript repeats it. Thread-safe."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._said: deque[tuple[float, float, list[str]]] = deque()  # (heard from, heard until, words)
        self._verdicts: dict[tuple[int, str], bool] = {}
        self._lock = threading.Lock()
        self.dropped = 0
        """Transcripts judged to be our own voice."""

    def said(self, text: str, start: float, end: float) -> None:
        """``text`` was (or will be) heard from wall time ``start`` to ``end``."""
        with self._lock:
            self._said.append((start, end, words(text)))
            while self._said and self._said[0][1] < time.monotonic() - 2 * self.window - 60:
                self._said.popleft()

    def is_echo(self, transcript: Transcript) -> bool:
        key = (transcript.utterance_id, transcript.text)
        with self._lock:
            verdict = self._verdicts.get(key)
            if verdict is None:
                verdict = self._judge(transcript)
                self._verdicts[key] = verdict
                self.dropped += verdict
            return verdict

    def _judge(self, transcript: Transcript) -> bool:
        began = transcript.t_end_wall - (transcript.t_end - transcript.start)
        return self._repeats(words(transcript.original or transcript.text), began, transcript.t_end_wall)

    def repeats(self, text: str, began: float, ended: float) -> bool:
        """Whether ``text``, heard between the two wall times, is what we said (a caption's,
        say); not counted, nor remembered."""
        with self._lock:
            return self._repeats(words(text), began, ended)

    def _repeats(self, heard: list[str], began: float, ended: float) -> bool:
        if not heard or self.window <= 0:
            return False
        own = [w for start, end, ws in self._said if end + self.window >= began and start <= ended for w in ws]
        if not own:
            return False
        blocks = difflib.SequenceMatcher(None, heard, own, autojunk=False).get_matching_blocks()
        return sum(b.size for b in blocks) >= max(MATCH * len(heard), min(len(heard), 3))


class EchoFilter:
    """The translator stage, less the transcripts that are our own voice (each becomes a
    :class:`~translator.events.Discarded`, so nothing is translated or spoken for it)."""

    def __init__(self, inner: Stage, own: OwnSpeech) -> None:
        self.inner = inner
        self.own = own

    def feed(self, event: Any) -> Iterator[StageOutput]:
        if isinstance(event, Transcript) and self.own.is_echo(event):
            yield Discarded(event.utterance_id, event.t_end_wall, time.monotonic())
            return
        yield from self.inner.feed(event)
