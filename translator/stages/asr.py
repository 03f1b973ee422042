"""The recognizer stage: segmenter events in, live captions and final transcripts out.

Partial captions re-decode the growing utterance and show only what two consecutive hypotheses
agree on as settled; the final recognition starts at the short pause, before the endpoint, so
recognition (and, downstream, translation and speech) overlaps the endpoint silence. The recognition
itself is :class:`~translator.stages.recognizer.WhisperRecognizer`'s.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

from translator.commits import Verdicts, before_mark, ends_sentence, goes_on_with_a_mark
from translator.config import AsrSettings
from translator.events import (
    Caption,
    Discarded,
    Notice,
    NoticeLevel,
    PauseFollowed,
    SegmentEvent,
    SpeechGrowing,
    SpeechPaused,
    SpeechStarted,
    Transcript,
    UtteranceEnded,
)
from translator.scheduler import CaptionTurn, Scheduler
from translator.speculation import Confirm, Provisional, Retract
from translator.stages.guards import join_units, normalise, units
from translator.stages.language_prior import LanguagePrior
from translator.stages.recognition import Abandoned, Context, Recognition, Recognizer, TaskChoice
from translator.stages.recognizer import DEFAULT


class RecognizerStage:
    """Segmenter events in, captions and transcripts out.

    Partial captions use LocalAgreement-2: words two consecutive hypotheses agree on are committed
    and never change. They are always transcriptions (the words being said), in the language
    detected on the utterance's first partial, so later partials skip detection. The final
    recognition starts at the short pause (speculation) and is reused when the endpoint confirms
    the same audio. With ``verdicts`` each pause's speculative recognition also answers whether the
    utterance may end there, the speaker going on (:mod:`translator.commits`). One instance serves
    one stream from one thread.

    With ``provisional=True`` the speculative transcript is also emitted at the pause, wrapped in
    :class:`~translator.speculation.Provisional`, so translation and synthesis run during the endpoint
    silence too; the endpoint then yields :class:`~translator.speculation.Confirm` instead of a second
    transcript, and resumed speech yields :class:`~translator.speculation.Retract` (the pipeline holds
    what the speculation produced, then releases or drops it).
    """

    def __init__(
        self,
        recognizer: Recognizer,
        settings: AsrSettings = DEFAULT,
        *,
        language: str | None = None,
        allowed: tuple[str, ...] | None = None,
        task: TaskChoice = "transcribe",
        provisional: bool = False,
        prior: LanguagePrior | None = None,
        scheduler: Scheduler | None = None,
        verdicts: Verdicts | None = None,
    ) -> None:
        self.recognizer = recognizer
        self.settings = settings
        """The ``[asr]`` decoding settings, passed with every final recognition."""
        self._caption_settings = dataclasses.replace(settings, beam_size=1)
        """Captions decode greedily: the next snapshot replaces them anyway."""
        self.prior = prior
        """The conversation's recent languages, weighing detection (None = each utterance alone)."""
        self.scheduler = scheduler
        """Says when a caption may be decoded (None = every snapshot that reaches the stage)."""
        self.verdicts = verdicts
        """Where each pause's sentence-commit answer goes (None = the segmenter asks none)."""
        self._context: tuple[float, Context] | None = None
        """The last final utterance (its end, audio clock) as the next one's context."""
        self.language = language
        """The forced spoken language; None = detect (among ``allowed`` when given)."""
        self.allowed = allowed
        self.task = task
        self.provisional = provisional
        self.speculative_hits = 0
        self.speculative_misses = 0
        """Speculative recognitions thrown away: speech resumed, or the endpoint brought other audio."""
        self._utterance: int | None = None
        self._previous: list[str] = []
        self._committed: list[str] = []
        self._caption_language: str | None = None
        self._speculation: tuple[tuple[int, float, int], Recognition | None] | None = None
        self._emitted = False
        """The speculation's transcript went downstream as Provisional, so it must be decided."""
        self._candidate = False
        """The speculation's words end a sentence: kept while speech goes on, until ``PauseFollowed``."""

    def feed(self, event: SegmentEvent) -> Iterator[Caption | Transcript | Discarded | Notice | Provisional | Confirm | Retract]:
        if isinstance(event, SpeechStarted):
            yield from self._discard_speculation()
            self._start(event.utterance_id)
        elif isinstance(event, SpeechGrowing):
            if self._speculation is not None and self._speculation[0][0] == event.utterance_id and not self._candidate:
                yield from self._discard_speculation()  # speech resumed after the pause
            yield from self._caption(event)
        elif isinstance(event, PauseFollowed):
            assert self.verdicts is not None
            self.verdicts.consider((event.utterance_id, event.t_end))
            commit = False
            try:
                commit = self._sentence_ended(event)
            finally:  # answered even when that fails: the segmenter may be waiting for it
                self.verdicts.answer((event.utterance_id, event.t_end), commit)
            if not commit and self._speculation is not None and self._speculation[0][0] == event.utterance_id:
                yield from self._discard_speculation()  # the sentence goes on: the pause was no end
        elif isinstance(event, SpeechPaused):
            yield from self._discard_speculation()
            key = (event.utterance_id, event.t_end, len(event.audio))
            pause = (event.utterance_id, event.t_end)
            if self.verdicts is not None:
                # The question about this pause is answered from this decode: while it runs, an
                # endpoint after a short word ("... gospel. One") waits for it instead of ending
                # the utterance with the word, which would be decoded all again.
                self.verdicts.consider(pause)
            try:
                recognition = self._final(event)
            except BaseException:
                if self.verdicts is not None:
                    self.verdicts.answer(pause, False)  # the segmenter must not wait for it
                raise
            self._speculation = (key, recognition)
            self._candidate = self.verdicts is not None and self._ends_sentence(event, recognition)
            if self.verdicts is not None and not self._candidate:
                self.verdicts.answer(pause, False)  # no sentence ended here: nothing to wait for
            if self.provisional and recognition is not None:
                self._emitted = True
                yield Provisional(key, self._transcript(event, recognition))
        elif isinstance(event, UtteranceEnded):
            key = (event.utterance_id, event.t_end, len(event.audio))
            if self._speculation is not None and self._speculation[0] == key:
                self.speculative_hits += 1
                recognition = self._speculation[1]
                self._speculation = None
                if self._emitted:
                    self._emitted = False
                    if event.utterance_id == self._utterance:
                        self._start(None)
                    self._remember(event, recognition)
                    yield Confirm(key)  # its transcript is already downstream: let it out
                    return
            else:
                yield from self._discard_speculation()
                recognition = self._final(event)
            if event.utterance_id == self._utterance:
                self._start(None)
            self._remember(event, recognition)
            if recognition is None:
                yield Discarded(event.utterance_id, event.t_end_wall, time.monotonic())
            else:
                yield self._transcript(event, recognition)

    def _ends_sentence(self, event: SpeechPaused, recognition: Recognition | None) -> bool:
        """Whether the words up to this pause end a sentence (:func:`~translator.commits.ends_sentence`),
        judged on the words as spoken (the translate task's English may punctuate otherwise)."""
        if recognition is None:
            return False
        return ends_sentence(_spoken(recognition), event.t_end - event.start, self.settings.sentence_commit)

    def _sentence_ended(self, event: PauseFollowed) -> bool:
        """Whether the sentence (or clause) ended at the pause: the pause's recognition ended
        one, and the decoder, given those words (their final mark left out) and the audio past the
        pause, goes on with a mark rather than a word (Whisper writes a full stop at the end of
        whatever audio it is given; heard on, "unless a system is established." goes on "for")."""
        if not self._candidate or self._speculation is None:
            return False
        (uid, t_end, _), recognition = self._speculation
        if uid != event.utterance_id or t_end != event.t_end or recognition is None:
            return False
        words = before_mark(_spoken(recognition))
        return goes_on_with_a_mark(self.recognizer.continuation(event.audio, words, recognition.language, self.settings))

    @staticmethod
    def _transcript(event: SpeechPaused | UtteranceEnded, recognition: Recognition) -> Transcript:
        return Transcript(
            utterance_id=event.utterance_id,
            text=recognition.text,
            language=recognition.language,
            language_probability=recognition.language_probability,
            task=recognition.task,
            start=event.start,
            t_end=event.t_end,
            t_end_wall=event.t_end_wall,
            wall=time.monotonic(),
            compute_seconds=recognition.compute_seconds,
            original=recognition.original,
            translated=recognition.translated,
        )

    def _final(self, event: SpeechPaused | UtteranceEnded) -> Recognition | None:
        context = None
        gap = self.settings.context_gap
        if self._context is not None and gap > 0 and 0 <= event.start - self._context[0] <= gap:
            context = self._context[1]
        return self.recognizer.recognize(
            event.audio,
            self.settings,
            language=self.language,
            allowed=self.allowed,
            task=self.task,
            prior=self.prior,
            context=context,
        )

    def _remember(self, event: UtteranceEnded, recognition: Recognition | None) -> None:
        """A final transcript was decided: its language joins the prior, and it is the context
        of an utterance that follows soon."""
        if recognition is None:
            return
        if self.prior is not None:
            self.prior.observe(recognition.language)
        self._context = (event.t_end, Context(event.audio, recognition.text, recognition.language, recognition.task))

    def _discard_speculation(self) -> Iterator[Retract]:
        self._candidate = False
        if self._speculation is not None:
            self.speculative_misses += 1
            if self._emitted:
                yield Retract(self._speculation[0])
            self._speculation = None
        self._emitted = False

    def _start(self, utterance_id: int | None) -> None:
        self._utterance = utterance_id
        self._previous = []
        self._committed = []
        self._caption_language = self.language

    def _caption(self, event: SpeechGrowing) -> Iterator[Caption | Notice]:
        if event.utterance_id != self._utterance:
            self._start(event.utterance_id)
        scheduler = self.scheduler
        if scheduler is not None:
            turn = scheduler.caption_turn(event)
            if turn is CaptionTurn.BEHIND:
                yield Notice(
                    "recognition is behind real time: live captions pause until it catches up (transcripts still come)",
                    time.monotonic(),
                    NoticeLevel.WARNING,
                )
            if turn is not CaptionTurn.DECODE:
                return
        try:
            recognition = self.recognizer.recognize(
                event.audio,
                self._caption_settings,
                language=self._caption_language,
                allowed=self.allowed,
                task="transcribe",
                retry=False,
                abandon=None if scheduler is None else scheduler.preempted,
            )
        except Abandoned:
            assert scheduler is not None
            scheduler.abandoned()
            return
        if recognition is None:
            self._previous = []
            return
        language = self._caption_language = recognition.language
        words = units(recognition.text, language)
        agreed = 0
        for old, new in zip(self._previous, words, strict=False):  # the common prefix
            if normalise(old) != normalise(new):
                break
            agreed += 1
        self._committed += words[len(self._committed) : agreed]
        self._previous = words
        yield Caption(
            utterance_id=event.utterance_id,
            committed=join_units(self._committed, language),
            tentative=join_units(words[len(self._committed) :], language),
            audio_end=event.end,
            audio_end_wall=event.wall,
            wall=time.monotonic(),
        )


def _spoken(recognition: Recognition) -> str:
    """The words as spoken: the translate task's ``original``, else the text."""
    return recognition.original if recognition.task == "translate" else recognition.text
