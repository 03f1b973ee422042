"""Voice activity turned into utterance events: the segmenter.

The segmenter is the only stage that looks at raw audio (Silero VAD on 32 ms frames,
:mod:`translator.stages.silero`). Everything downstream sees utterances, so the policy lives here:
pre-roll so word onsets survive, a short pause (the moment to speculate) distinct from the endpoint
(the moment to end the utterance), an end at a pause where a sentence ended while the speaker goes
on (:mod:`translator.commits`), partial snapshots for live captions, and a length cap so Whisper
never gets more than its window.

Decisions are made per 512-sample frame and counted in samples, never in wall time, so the same
audio gives the same utterances however it is split into blocks and however fast it arrives.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from translator.commits import ANSWER_LIMIT, FOLLOW_SECONDS, Verdicts
from translator.config import VadSettings
from translator.events import (
    SAMPLE_RATE,
    AudioBlock,
    PauseFollowed,
    SegmentEvent,
    SpeechGrowing,
    SpeechPaused,
    SpeechStarted,
    UtteranceEnded,
)
from translator.stages.sample_buffer import SampleBuffer
from translator.stages.silero import FRAME, SileroVad

SILENT_DB = -100.0
"""``Segmenter.level`` floor, so digital silence shows as a finite number on a meter."""


def _samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)


@dataclass(eq=False)
class _Pause:
    """A pause inside an utterance, awaiting the sentence-commit answer."""

    key: tuple[int, float]
    """The answer's key: the utterance id and the pause's ``t_end``."""
    audio: np.ndarray
    """Its ``SpeechPaused`` audio: the utterance's, should it end there."""
    t_end_wall: float
    heard: int = 0
    """Voiced samples since the pause; at :data:`~translator.commits.FOLLOW_SECONDS` the
    recognizer is asked (``PauseFollowed``)."""
    asked: bool = False
    waited: int = 0
    """Samples since the question with no answer (:data:`~translator.commits.ANSWER_LIMIT`)."""


@dataclass(eq=False)
class _Utterance:
    """An utterance in flight; sample positions are absolute, frame data starts at ``first_frame``."""

    start: int
    first_frame: int
    confirmed: bool = False
    utterance_id: int = 0
    voiced_frames: int = 0
    last_voiced_end: int = 0
    last_voiced_wall: float = 0.0
    paused_audio: np.ndarray | None = None
    """The last ``SpeechPaused`` audio while no speech followed it, reused by the endpoint."""
    pending: _Pause | None = None
    """The last pause, while the recognizer may still end the utterance there (:mod:`translator.commits`)."""
    since_growing: int = 0
    probs: list[float] = field(default_factory=list)
    rms: list[float] = field(default_factory=list)
    voiced: list[bool] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)

    def after(self, cut: int, frame: int) -> _Utterance:
        """What follows sample ``cut`` (its frames from ``frame`` on), as an utterance of its own,
        not yet announced."""
        tail = slice(frame - self.first_frame, None)
        rest = _Utterance(
            start=cut,
            first_frame=frame,
            probs=self.probs[tail],
            rms=self.rms[tail],
            voiced=self.voiced[tail],
            walls=self.walls[tail],
            last_voiced_end=self.last_voiced_end,
            last_voiced_wall=self.last_voiced_wall,
        )
        rest.voiced_frames = sum(rest.voiced)
        return rest


class Segmenter:
    """Turns a stream of ``AudioBlock`` into speech events, by the ``[vad]`` settings.

    Event semantics (times are the audio clock: the first block's ``start`` plus samples counted,
    so blocks are taken to be contiguous; call ``reset`` when a source restarts):

    - ``SpeechStarted`` once ``min_speech`` of voiced audio has been heard; ``start`` is the onset
      minus ``pre_roll``, never before the stream start or the previous utterance's audio end.
    - ``SpeechGrowing`` every ``partial_interval`` of audio while not paused: all audio from
      ``start`` to the end of the latest frame.
    - ``SpeechPaused`` once per pause, when silence since the last voiced frame reaches ``pause``;
      audio runs from ``start`` to ``t_end + post_roll``.
    - ``UtteranceEnded`` when silence reaches ``endpoint``, always preceded by a ``SpeechPaused``
      with the same audio (the very same array object, so ``ended.audio is paused.audio`` tells the
      recognizer its speculative result stands; equal ``t_end`` says the same).
    - At ``max_utterance`` during a pause, the utterance ends as the endpoint would have
      (``cut=True``, audio of that ``SpeechPaused``). Otherwise it is cut at the quietest frame of
      its last ``min(3 s, max_utterance / 3)``: ``UtteranceEnded(cut=True)`` with audio
      ``start .. cut``, and the rest continues as a new utterance (``SpeechStarted`` with ``start``
      = the cut, same block), so no sample is lost or repeated. If the rest holds no voiced frame
      it is left as pre-roll for the next utterance.
    - With ``verdicts`` (:mod:`translator.commits`): once speech has gone on for
      ``FOLLOW_SECONDS`` of voiced audio after a pause (or up to the next pause, which is held, and
      the endpoint with it, until the answer), ``PauseFollowed`` asks whether the sentence ended at
      that pause. Yes ends the utterance there: ``UtteranceEnded`` with the very audio of
      that ``SpeechPaused`` (``committed=True``), and the speech after it goes on as a new
      utterance from the end of that audio, so no sample is lost or repeated. While the answer is
      pending no ``SpeechGrowing`` is emitted; when answers are awaited (``Verdicts.wait``), the
      next ``feed`` waits for it first (the recognizer gets ``PauseFollowed`` when ``feed`` returns);
      otherwise an answer that has not come after ``ANSWER_LIMIT`` of audio, or by the endpoint
      while the recognizer is not working on it (the pause's own decode, then the question), is
      taken as no.
    - ``flush`` ends an announced utterance as the endpoint would (audio clipped to what arrived).

    ``t_end`` is the end of the last voiced frame and ``t_end_wall`` the ``wall`` of the block that
    delivered it. Ids count up from 1 over the life of the instance (``reset`` does not restart
    them, so ids stay unique downstream). ``feed`` and ``flush`` do their work before returning.
    """

    def __init__(
        self, settings: VadSettings = VadSettings(), vad: SileroVad | None = None, verdicts: Verdicts | None = None
    ) -> None:
        self.settings = settings
        self._vad = vad if vad is not None else SileroVad()
        self._verdicts = verdicts
        self._release = settings.release
        self._pre_roll = _samples(settings.pre_roll)
        self._post_roll = _samples(settings.post_roll)
        self._pause = _samples(settings.pause)
        self._endpoint = _samples(settings.endpoint)
        self._max = _samples(settings.max_utterance)
        self._min_speech = _samples(settings.min_speech)
        self._partial = _samples(settings.partial_interval)
        self._cut_window = _samples(min(3.0, settings.max_utterance / 3))
        self._follow = _samples(FOLLOW_SECONDS)
        self._answer_limit = _samples(ANSWER_LIMIT)
        self._next_id = 1
        self.reset()

    def reset(self) -> None:
        """Start a new stream: drop any utterance in flight and the audio clock."""
        self._vad.reset()
        self._buf = SampleBuffer()
        self._origin: float | None = None
        self._frames = 0
        self._floor = 0
        self._voiced = False
        self._utt: _Utterance | None = None
        self._last_wall = 0.0
        self.level = SILENT_DB
        """RMS of the last frame in dBFS, for a level meter."""
        self.last_prob = 0.0
        """Speech probability of the last frame."""
        self.last_voiced_wall = 0.0
        """Wall time of the block that delivered the last voiced frame (turn-taking in live mode)."""

    @property
    def in_speech(self) -> bool:
        """True between ``SpeechStarted`` and its ``UtteranceEnded``."""
        return self._utt is not None and self._utt.confirmed

    @property
    def silence(self) -> float:
        """Seconds of audio since the last voiced frame of the utterance in flight (0 while it is
        voiced, or with none in flight): how close the next pause may be. Read from other threads
        (the caption scheduler): one attribute read, so it is never torn, at worst a frame old."""
        utt = self._utt
        if utt is None or not utt.confirmed:
            return 0.0
        return max(0, self._frames * FRAME - utt.last_voiced_end) / SAMPLE_RATE

    def feed(self, block: AudioBlock) -> Iterator[SegmentEvent]:
        """Take a block of any length; return the events it completes, in order."""
        samples = np.asarray(block.samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"Segmenter needs mono samples, got shape {samples.shape}")
        if not np.isfinite(samples).all():
            samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
        if self._origin is None:
            self._origin = block.start
        self._last_wall = block.wall
        events: list[SegmentEvent] = []
        if self._utt is not None and self._utt.pending is not None and self._utt.pending.asked:
            self._answered(self._utt, block.wall, events, block=True)
        pos = 0
        while pos < len(samples):
            # Append no more than completes the next frame, so a huge block never sits whole in memory.
            take = (self._frames + 1) * FRAME - self._buf.end
            self._buf.append(samples[pos : pos + take])
            pos += take
            if self._buf.end == (self._frames + 1) * FRAME:
                self._frame(block.wall, events)
        return iter(events)

    def flush(self, wall: float | None = None) -> Iterator[SegmentEvent]:
        """End of stream: finish the utterance in flight, then start afresh (as ``reset``)."""
        events: list[SegmentEvent] = []
        utt = self._utt
        if utt is not None and utt.confirmed:
            end = min(utt.last_voiced_end + self._post_roll, self._buf.end)
            audio = utt.paused_audio if utt.paused_audio is not None else self._buf.copy(utt.start, end)
            events.append(self._ended(utt, audio, self._last_wall if wall is None else wall))
        self.reset()
        return iter(events)

    def _time(self, index: int) -> float:
        assert self._origin is not None
        return self._origin + index / SAMPLE_RATE

    def _frame(self, wall: float, out: list[SegmentEvent]) -> None:
        a = self._frames * FRAME
        b = a + FRAME
        frame = self._buf.view(a, b)
        p = self._vad.prob(frame)
        rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64))))
        self.last_prob = p
        self.level = max(SILENT_DB, 20 * math.log10(rms)) if rms > 0 else SILENT_DB
        self._frames += 1
        self._voiced = p >= self.settings.threshold or (self._voiced and p >= self._release)
        if self._voiced:
            self.last_voiced_wall = wall

        utt = self._utt
        if utt is not None and utt.pending is not None and utt.pending.asked:
            utt = self._answered(utt, wall, out, block=False)
        if utt is None:
            if not self._voiced:
                self._trim()
                return
            utt = self._utt = _Utterance(start=max(a - self._pre_roll, self._floor), first_frame=self._frames - 1)
        utt.probs.append(p)
        utt.rms.append(rms)
        utt.voiced.append(self._voiced)
        utt.walls.append(wall)
        if self._voiced:
            utt.voiced_frames += 1
            utt.last_voiced_end = b
            utt.last_voiced_wall = wall
            utt.paused_audio = None
            pending = utt.pending
            if pending is not None and not pending.asked:
                pending.heard += FRAME
                if pending.heard >= self._follow:
                    self._ask(utt, pending, b, wall, out)
        silence = b - utt.last_voiced_end

        if not utt.confirmed:
            if utt.voiced_frames * FRAME < self._min_speech:
                if silence >= self._endpoint:
                    self._utt = None  # a blip: never announced, so nothing to retract
                    self._trim()
                return
            self._start(utt, a - utt.start, wall, out)

        pending = utt.pending
        if silence >= self._pause and utt.paused_audio is None and pending is not None and not pending.asked:
            # Another pause before the last one was asked about (a short word between them, "...
            # gospel. One, two"): ask now, with the word heard, and hold this pause until then.
            self._ask(utt, pending, b, wall, out)
        asking = pending is not None and pending.asked
        if asking and silence >= self._endpoint and not self._answer_coming(pending):
            # The endpoint came before the recognizer even took up the question: the utterance
            # ends here as it would without commits. One it is working on is waited for (up to
            # ANSWER_LIMIT): ending here would only have the recognizer decode it all again. A
            # source read faster than real time has the answer by the next feed.
            utt.pending = None
            asking = False
        if silence >= self._pause and utt.paused_audio is None and not asking:
            utt.paused_audio = self._buf.copy(utt.start, utt.last_voiced_end + self._post_roll)
            out.append(
                SpeechPaused(
                    utt.utterance_id,
                    utt.paused_audio,
                    self._time(utt.start),
                    self._time(utt.last_voiced_end),
                    utt.last_voiced_wall,
                    wall,
                )
            )
            if self._verdicts is not None:
                key = (utt.utterance_id, self._time(utt.last_voiced_end))
                utt.pending = _Pause(key, utt.paused_audio, utt.last_voiced_wall)
        capped = b - utt.start >= self._max
        if utt.paused_audio is not None and (silence >= self._endpoint or capped):
            # At the cap during a pause, end where the pause did: the speculative result stands.
            # paused_audio is set by the endpoint: endpoint >= pause (VadSettings checks it), so the
            # pause came first, unless it is held for an answer (then the endpoint waits for it too,
            # until the next feed when answers are awaited).
            out.append(self._ended(utt, utt.paused_audio, wall, cut=silence < self._endpoint))
            self._floor = utt.last_voiced_end + self._post_roll
            self._utt = None
            self._trim()
            return
        if silence < self._pause:
            utt.since_growing += FRAME
            if utt.since_growing >= self._partial and not asking:
                utt.since_growing = 0
                out.append(
                    SpeechGrowing(utt.utterance_id, self._buf.copy(utt.start, b), self._time(utt.start), self._time(b), wall)
                )
        if capped:
            self._cut(utt, wall, out)

    def _start(self, utt: _Utterance, since_growing: int, wall: float, out: list[SegmentEvent]) -> None:
        utt.confirmed = True
        utt.utterance_id = self._next_id
        self._next_id += 1
        utt.since_growing = since_growing
        out.append(SpeechStarted(utt.utterance_id, self._time(utt.start), wall))

    def _ended(self, utt: _Utterance, audio: np.ndarray, wall: float, cut: bool = False) -> UtteranceEnded:
        return UtteranceEnded(
            utt.utterance_id, audio, self._time(utt.start), self._time(utt.last_voiced_end), utt.last_voiced_wall, wall, cut=cut
        )

    def _answer_coming(self, pause: _Pause | None) -> bool:
        """Whether the answer about ``pause`` is worth holding the endpoint for: answers are awaited
        (it comes by the next feed), or the recognizer is working on it."""
        verdicts = self._verdicts
        return pause is not None and verdicts is not None and (verdicts.wait or verdicts.considering(pause.key))

    def _ask(self, utt: _Utterance, pause: _Pause, b: int, wall: float, out: list[SegmentEvent]) -> None:
        """Ask whether the sentence ended at ``pause``, with the utterance's audio up to ``b``."""
        pause.asked = True
        out.append(PauseFollowed(utt.utterance_id, self._buf.copy(utt.start, b), self._time(utt.start), pause.key[1], wall))

    def _answered(self, utt: _Utterance, wall: float, out: list[SegmentEvent], *, block: bool) -> _Utterance | None:
        """Take the answer to the utterance's asked pause if it has come (with ``block``, wait for
        it): yes ends the utterance at that pause and makes the rest the utterance in flight (None:
        the rest holds no voiced frame, and is left as pre-roll); no, or no answer yet, leaves
        ``utt`` going on."""
        assert utt.pending is not None and self._verdicts is not None
        pause = utt.pending
        answer = self._verdicts.take(pause.key, block=block)
        if answer is None:
            pause.waited += 0 if block else FRAME  # counted once per frame, at the frame's own call
            if pause.waited > self._answer_limit:
                utt.pending = None  # too late to be of use: the utterance goes on as without commits
            return utt
        utt.pending = None
        if not answer:
            return utt
        uid, t_end = pause.key
        out.append(UtteranceEnded(uid, pause.audio, self._time(utt.start), t_end, pause.t_end_wall, wall, committed=True))
        cut = utt.start + len(pause.audio)
        self._floor = cut
        rest = utt.after(cut, -(-cut // FRAME))  # from the first frame wholly after the cut
        # Frames between the pause's last voiced frame and the pause are silent, so the voiced
        # frames of the rest are the speech after the pause; the rest is announced as any onset is,
        # once it holds min_speech of them.
        self._utt = rest if rest.voiced_frames else None
        if self._utt is None:
            self._trim()
        return self._utt

    def _cut(self, utt: _Utterance, wall: float, out: list[SegmentEvent]) -> None:
        """Split at the quietest recent frame: non-speech frames first, then the lowest energy."""
        first = utt.first_frame
        lo = max(first + 1, -(-(self._frames * FRAME - self._cut_window) // FRAME))
        k = min(range(lo, self._frames), key=lambda j: (utt.probs[j - first] >= self._release, utt.rms[j - first]))
        cut = k * FRAME
        # The window lies more than max_utterance / 3 after the onset (or the previous cut, which
        # kept at least one voiced frame), so the part before the cut always holds a voiced frame.
        last = max(j for j in range(first, k) if utt.voiced[j - first])
        out.append(
            UtteranceEnded(
                utt.utterance_id,
                self._buf.copy(utt.start, cut),
                self._time(utt.start),
                self._time((last + 1) * FRAME),
                utt.walls[last - first],
                wall,
                cut=True,
            )
        )
        self._floor = cut

        rest = utt.after(cut, k)
        if rest.voiced_frames:
            self._utt = rest
            self._start(rest, self._frames * FRAME - cut, wall, out)
        else:
            self._utt = None
        self._trim()

    def _trim(self) -> None:
        """Keep only what a future event can still refer to."""
        if self._utt is not None:
            self._buf.drop_before(self._utt.start)
        else:
            self._buf.drop_before(max(self._floor, self._frames * FRAME - self._pre_roll))
