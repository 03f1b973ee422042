"""The last guard against hearing ourselves: a final transcript that repeats what the translator
has just said is our own voice come back (residual echo), not the other person.

:class:`OwnSpeech` remembers the text of each speech chunk and when it was heard; a transcript is
judged an echo when its audio was heard while our speech was (give or take :data:`TAIL`), and most
of its words, in order, are in what was said in the ``window`` seconds before it ended. The same
words said by someone after our speech has ended are theirs (a "same" route speaks the very words
it heard). The live session wires it in twice (translator/live.py): in front
of the translator stage (:class:`EchoFilter`), so an echo is neither translated nor spoken again,
and on the pipeline's output, so it is not shown; both ask the same :meth:`OwnSpeech.is_echo`,
which decides once per transcript.
"""

from __future__ import annotations

import difflib
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from typing import Any

from translator.events import Discarded, Transcript
from translator.pipeline import Stage, StageOutput

MATCH = 0.6
"""Share of a transcript's words that must be found, in order, in our own recent speech; one of
up to three words must match whole (a short "yes" is not taken for ours on one word)."""

TAIL = 1.0
"""Seconds after our speech ends that an utterance may still be its echo: the room's reverberation,
the canceller's delay and the segmenter's post-roll and pre-roll."""

KEEP_VERDICTS = 256
"""Verdicts remembered: a transcript is asked about twice within seconds (the translator stage, then
the output), while hundreds of utterances are in between only when the pipeline is minutes behind."""

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


class OwnSpeech:
    """What the translator said lately, and whether a transcript repeats it. Thread-safe."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._said: deque[tuple[float, float, list[str]]] = deque()  # (heard from, heard until, words)
        self._verdicts: OrderedDict[tuple[int, str], bool] = OrderedDict()
        """Each transcript's verdict, for its second asker (the output, after the translator
        stage): the latest :data:`KEEP_VERDICTS`, so a session of weeks holds no more."""
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
                while len(self._verdicts) > KEEP_VERDICTS:
                    self._verdicts.popitem(last=False)
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
        # Only speech that was being heard while this was (an echo cannot outlast what made it by
        # more than the room's tail and the segmenter's margins), said in the last ``window`` s.
        if not any(start <= ended and end + TAIL >= began for start, end, _ in self._said):
            return False
        own = [w for start, end, ws in self._said if end + TAIL >= ended - self.window and start <= ended for w in ws]
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
