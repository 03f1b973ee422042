"""Sentence commits: an utterance ends at a pause that ends a sentence, though the speaker goes on.

A guide or a lecturer rarely stops for the endpoint (0.4 s of silence); without this, nothing of a
continuous talk would be translated before the length cap (15 s), and its first clause would be
heard a quarter of a minute late. But speakers do draw breath between sentences: the short pause
(0.1 s) that starts speculation. At that pause the recognizer decodes the utterance so far at final
quality anyway (:mod:`translator.speculation`); when the text it hears ends a sentence (or a long
clause, :func:`ends_sentence`), the utterance ends right there: the segmenter emits
``UtteranceEnded`` with the pause's very audio (so the speculation stands, and its translation and
first sentence of speech, already computed, are released at once) and the speech after the pause
goes on as a new utterance. The cut lies in silence, so no word is split or heard twice at the
seam, and each segment is an utterance like any other downstream: its own transcript, translation,
speech, JSONL record and SRT cue.

The segmenter asks after every pause and the recognizer answers every ``SpeechPaused``, yes or no,
through :class:`Verdicts`. A source in real time goes on while the answer is pending (only the next
live-caption snapshot waits for it). A source read faster than real time waits for the answer at the
first voiced frame after the pause, so a file is segmented the same way on every run.

Why not cut where the live captions' committed text (LocalAgreement) ends a sentence, before any
pause? Word times would have to come from a cross-attention alignment of every caption, and a cut
between two words with no silence splits the sound of one of them; the pause costs nothing and is
where speakers end sentences.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

SENTENCE_ENDS = frozenset(".!?…。！？")
"""Marks that end a sentence, in the scripts the corpus has (Chinese and Japanese full stops too)."""
CLAUSE_ENDS = frozenset(",;:，、；：")
CLAUSE_SECONDS = 5.0
"""A pause after a clause mark ends an utterance only this long: a listener waiting for a long
sentence's end would wait too long, while a short clause translated alone loses its sentence."""
CLOSERS = "\"'”’»)]」』"
"""Quotes and brackets that may follow the final mark ("He said 'no.'")."""
FOLLOW_SECONDS = 0.4
"""Voiced audio after a pause the recognizer hears before answering: the next word, or most of it.
Measured on the corpus talk (tiny.en and base) and espeak-ng paragraphs: 0.3, 0.4 and 0.6 s gave
the same answers at every pause; 0.4 keeps a margin, and every 0.1 s here is 0.1 s of lag."""
ANSWER_LIMIT = 3.0
"""Seconds of audio a source in real time goes on past a question before it takes the answer as
no: a recognizer that far behind real time would hold the next pause (which waits for the answer)
for longer than a commit could save. The endpoint waits for an answer only while the recognizer
is working on it (the pause's own decode, then the question, when those words ended a sentence):
one not yet started would come too late to be worth the wait."""
WAIT_LIMIT = 30.0
"""Seconds a source read faster than real time waits for an answer: the recognizer answers every
pause even when it fails, so this bounds only a stalled pipeline."""
KEEP = 64
"""Answers kept for the segmenter: it takes each soon, or never (the endpoint came first)."""


def ends_sentence(text: str, seconds: float, min_seconds: float) -> bool:
    """Whether an utterance of ``seconds`` whose final-quality text is ``text`` may end at its pause:
    at least ``min_seconds`` long, its text ending a sentence, or a clause after
    :data:`CLAUSE_SECONDS`. ``min_seconds`` 0 turns commits off."""
    if min_seconds <= 0 or seconds < min_seconds:
        return False
    tail = _tail(text)
    if not tail:
        return False
    return tail[-1] in SENTENCE_ENDS or (tail[-1] in CLAUSE_ENDS and seconds >= CLAUSE_SECONDS)


def before_mark(text: str) -> str:
    """``text`` that :func:`ends_sentence` took for a sentence, without its final mark (and the
    quotes after it): the words the decoder is given to go on from."""
    return _tail(text)[:-1].rstrip()


def goes_on_with_a_mark(following: str) -> bool:
    """Whether the decoder, given those words and the audio past the pause, went on with a mark
    rather than a word: the sentence ended there. A comma where the pause's own decode wrote a
    full stop is a boundary too: hearing on, the decoder joins two sentences with a comma ("... half
    price, the guided tour ...")."""
    return following.lstrip()[:1] in SENTENCE_ENDS | CLAUSE_ENDS


def _tail(text: str) -> str:
    return text.rstrip().rstrip(CLOSERS)


class Verdicts:
    """The recognizer's answers to the segmenter's pauses, keyed by (utterance id, pause end).

    Written from the recognizer's thread, read from the segmenter's; ``wait`` is the segmenter's
    side for a source read faster than real time.
    """

    def __init__(self, *, wait: bool) -> None:
        self.wait = wait
        """Whether the segmenter blocks on a pending answer (see the module docstring)."""
        self._answers: OrderedDict[Hashable, bool] = OrderedDict()
        self._considered: OrderedDict[Hashable, bool] = OrderedDict()
        self._ready = threading.Condition()

    def consider(self, key: Hashable) -> None:
        """The recognizer has the question and is working on the answer."""
        with self._ready:
            self._considered[key] = True
            while len(self._considered) > KEEP:
                self._considered.popitem(last=False)

    def considering(self, key: Hashable) -> bool:
        """Whether the answer is being worked on (the segmenter holds the endpoint for it then)."""
        with self._ready:
            return key in self._considered

    def answer(self, key: Hashable, commit: bool) -> None:
        with self._ready:
            self._considered.pop(key, None)
            self._answers[key] = commit
            while len(self._answers) > KEEP:
                self._answers.popitem(last=False)
            self._ready.notify_all()

    def take(self, key: Hashable, *, block: bool) -> bool | None:
        """The answer for ``key`` (removed), None while there is none; with ``block`` (and
        :attr:`wait`) waits for it, up to :data:`WAIT_LIMIT`, then takes it as no."""
        with self._ready:
            if block and self.wait and not self._ready.wait_for(lambda: key in self._answers, WAIT_LIMIT):
                return False
            return self._answers.pop(key, None)


__all__ = ["CLAUSE_SECONDS", "Verdicts", "before_mark", "ends_sentence", "goes_on_with_a_mark"]
