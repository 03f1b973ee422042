"""A live session: microphone -> the pipeline -> speaker, with the self-listening guards.

The terminal app (``translator run``) and the service (``translator serve``) are both thin layers
over :class:`LiveSession`: they differ only in how they show events and status.

Self-listening guards: with a loudspeaker, the translator would hear and translate its own voice.
The duplex mode (``audio.duplex``, translator/audio/duplex.py) decides how that is kept out:

* half: the microphone is muted while speech is playing and for ``guard_tail`` seconds after;
  muted audio still flows as silence, so the utterance in flight ends cleanly and the audio clock
  stays true; speech waits for a gap in the user's (:class:`GuardedSink`).
* aec: the microphone stays open; the speaker's output is the reference of an echo canceller that
  runs on the captured audio (translator/audio/echo.py).
* full: nothing is done to the audio (a headset).

In aec, a final transcript that repeats what was just said is dropped and counted
(translator/stages/echo_guard.py): wired in front of the translator stage, so it is neither
translated nor spoken, and on the pipeline's output here, so it is not shown. In aec and full,
the other person may barge in: a speech start while a translation is spoken or heard stops or ducks the
rest of it (translator/stages/barge_in.py; ``audio.barge_in``).
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from translator.assemble import Engines, build_pipeline
from translator.audio.duplex import Duplex, resolve
from translator.audio.echo import EchoCanceller, EchoReference
from translator.audio.microphone import MicrophoneSource
from translator.audio.speaker import SpeakerSink
from translator.audio.stream import StatusCallback
from translator.config import AudioSettings
from translator.errors import DeviceError
from translator.events import (
    Caption,
    Discarded,
    Event,
    Notice,
    NoticeLevel,
    SpeechChunk,
    SpeechDone,
    SpeechHeard,
    SpeechStarted,
    StageFailed,
    Transcript,
    Translation,
)
from translator.pipeline import Stage
from translator.stages.barge_in import BargeIn, SpeechFilter
from translator.stages.echo_guard import EchoFilter, OwnSpeech
from translator.transcript import UtteranceCollector, UtteranceRecord


class State(enum.StrEnum):
    """What a live session is doing, for the UI and the service's status line."""

    LISTENING = "listening"
    HEARING = "hearing speech"
    TRANSLATING = "translating"
    SPEAKING = "speaking"
    SPEAKING_MUTED = "speaking (microphone muted)"


class GuardedSink:
    """The speaker as the pipeline's sink, muting the microphone for as long as what it was given
    will be heard (with ``guard``; a headset needs no guard).

    It also takes turns: while ``talking()`` says the user is speaking or paused only briefly,
    playback waits, up to ``max_hold`` seconds. Otherwise the mute would swallow what they say
    after a pause between phrases. This runs in the pipeline's sink thread, so synthesis and
    recognition go on meanwhile.

    An output failure is not raised to the pipeline: the speaker reported it through its status
    callback when it happened (and reports when it is back), so it is shown once.
    """

    def __init__(
        self,
        speaker: SpeakerSink,
        microphone: MicrophoneSource,
        tail: float,
        *,
        guard: bool = True,
        talking: Callable[[], bool] = lambda: False,
        max_hold: float = 15.0,
        barge_in: BargeIn | None = None,
    ) -> None:
        self.speaker = speaker
        self.microphone = microphone
        self.tail = tail
        self.guard = guard
        self.talking = talking
        self.max_hold = max_hold
        self.barge_in = barge_in

    def write(self, samples: np.ndarray, sample_rate: int) -> None:
        uid: int | None = None
        if self.barge_in is not None:
            uid, gain = self.barge_in.take(samples, sample_rate)
            if gain == 0.0:
                return  # talked over, and stopped
            samples = samples if gain == 1.0 else samples * np.float32(gain)
        if self.guard and self.speaker.error is None:  # a failed output makes no sound: nothing to guard
            deadline = time.monotonic() + self.max_hold
            while self.talking() and time.monotonic() < deadline:
                time.sleep(0.02)
            # Mute before queueing, so not a single block of our own voice is heard unmuted.
            self.microphone.mute_until(time.monotonic() + len(samples) / sample_rate + 1.0)
        try:
            self.speaker.write(samples, sample_rate)
        except DeviceError:
            pass  # already shown through the speaker's status callback
        finally:
            if self.guard:
                self.microphone.mute_until(self.speaker.busy_until + self.tail)
            if self.barge_in is not None and uid is not None:
                self.barge_in.audible(uid, self.speaker.busy_until)

    def backlog(self) -> float:
        """Seconds of speech queued and not yet heard (a translation waiting for its turn is not yet given)."""
        return max(0.0, self.speaker.busy_until - time.monotonic())

    def close(self) -> None:
        self.speaker.close()


class LiveSession:
    """Owns the devices and one pipeline run; iterate :meth:`events`, call :meth:`stop` to end.

    Stopping finishes the utterance in flight (the segmenter flushes it through recognition,
    translation and speech), lets queued speech play out, then ends the iteration.
    """

    def __init__(
        self, engines: Engines, audio: AudioSettings, *, speak: bool = True, on_status: StatusCallback | None = None
    ) -> None:
        self.engines = engines
        self.audio = audio
        """The ``[audio]`` settings: devices, lead-in, the duplex mode and its guards."""
        self.on_status = on_status
        self.duplex = Duplex.FULL
        """The mode in force (``audio.duplex`` resolved; full when nothing is spoken)."""
        self._notices: list[Notice] = []
        self.speaker: SpeakerSink | None = None
        reference: EchoReference | None = None
        if speak:
            # The output is opened first: ``auto`` depends on what it is.
            self.speaker = SpeakerSink(audio.output, lead_in=audio.lead_in, on_status=self._status)
            resolved = resolve(audio.duplex, self.speaker.info.name)
            self.duplex = resolved.mode
            if resolved.notice is not None:
                self._notices.append(Notice(resolved.notice, time.monotonic(), NoticeLevel.WARNING))
            if self.duplex is Duplex.AEC:
                reference = self.speaker.reference = EchoReference()
                # Each new output stream sits at its own offset from the capture (80-130 ms apart
                # here), which the canceller has to find again while our words leak through: the
                # stream stays open instead of closing when idle.
                self.speaker.idle_close = math.inf
        try:
            self.canceller = EchoCanceller(reference) if reference is not None else None
            self.microphone = MicrophoneSource(audio.input, on_status=self._status, canceller=self.canceller)
        except BaseException:
            if self.speaker is not None:
                self.speaker.close()  # its thread runs: do not leave it to the garbage collector
            raise
        # The guard asks the pipeline's own segmenter whether the user is talking, so it is built
        # first and reads ``self.pipeline`` only when speech is written.
        half = self.duplex is Duplex.HALF
        self.barge_in: BargeIn | None = None
        """Who was talked over (aec and full, unless ``audio.barge_in`` is off)."""
        if self.speaker is not None and not half and audio.barge_in != "off":
            self.barge_in = BargeIn(0.0 if audio.barge_in == "stop" else 10 ** (audio.duck_db / 20))
        sink = (
            GuardedSink(
                self.speaker, self.microphone, audio.guard_tail, guard=half, talking=self._user_talking, barge_in=self.barge_in
            )
            if self.speaker is not None
            else None
        )
        self.own_speech: OwnSpeech | None = None
        """The last guard's memory of what was said (aec, when speaking: a headset has no echo)."""
        if self.speaker is not None and self.duplex is Duplex.AEC and audio.echo_window > 0:
            self.own_speech = OwnSpeech(audio.echo_window)
        self.pipeline = build_pipeline(engines, sink=sink, captions=True, around=self._around())
        self.status = "listening"
        self._pending: set[int] = set()
        self._barged: set[int] = set()  # utterances that have already barged in
        self._playing: list[int] = []  # synthesised (SpeechDone), not yet heard to the end (barge-in on)

    def _around(self) -> dict[str, Callable[[Stage], Stage]]:
        """What the live session puts around the pipeline's stages: the last guard before the
        translator (an echo of our own speech is never translated), barge-in around the speaker."""
        around: dict[str, Callable[[Stage], Stage]] = {}
        own, barge_in = self.own_speech, self.barge_in
        if own is not None:
            around["mt"] = lambda stage: EchoFilter(stage, own)
        if barge_in is not None:
            around["tts"] = lambda stage: SpeechFilter(stage, barge_in)
        return around

    @property
    def speaking(self) -> bool:
        """Whether translations are spoken (an output device is open)."""
        return self.speaker is not None

    @property
    def reports_heard(self) -> bool:
        """Whether a :class:`~translator.events.SpeechHeard` follows each SpeechDone (barge-in
        on): an utterance's record closes there, to say whether it was talked over."""
        return self.barge_in is not None

    def _user_talking(self) -> bool:
        segmenter = self.pipeline.segmenter
        return segmenter.in_speech or time.monotonic() - segmenter.last_voiced_wall < self.audio.turn_gap

    def _status(self, message: str) -> None:
        self.status = message
        if self.on_status is not None:
            self.on_status(message)

    @property
    def level(self) -> float:
        """Input level of the last frame, dBFS (for a meter)."""
        return self.pipeline.segmenter.level

    @property
    def echoes_dropped(self) -> int:
        """Final transcripts the last guard took for our own voice."""
        return self.own_speech.dropped if self.own_speech is not None else 0

    @property
    def muted(self) -> bool:
        """The self-listening guard is holding the microphone (speech playing, or just played)."""
        if self.duplex is not Duplex.HALF or self.speaker is None:
            return False
        return self.speaker.busy_until + self.audio.guard_tail > time.monotonic()

    @property
    def state(self) -> State:
        if self.muted:
            return State.SPEAKING_MUTED
        if self.speaker is not None and self.speaker.speaking:
            return State.SPEAKING
        if self.pipeline.segmenter.in_speech:
            return State.HEARING
        if self._pending:
            return State.TRANSLATING
        return State.LISTENING

    def events(self) -> Iterator[Event]:
        yield from self._notices
        try:
            for event in self.pipeline.run(self.microphone, poll=self._heard if self.reports_heard else None):
                self._track(event)
                yield from self._barge_in(event)
                shown = self._guard(event)
                if shown is not None:
                    yield shown
            if self.speaker is not None:
                self.speaker.drain(timeout=30.0)
            yield from self._heard(everything=True)
        finally:
            self.microphone.close()
            if self.speaker is not None:
                self.speaker.drain(timeout=30.0)  # at once, unless the loop above was left early
                self.speaker.close()

    def _heard(self, *, everything: bool = False) -> Iterator[SpeechHeard]:
        """The utterances whose speech has been heard to its end, or stopped, since last asked
        (``everything``: the rest as well, once the output has drained at the end)."""
        barge_in = self.barge_in
        if barge_in is None:
            return
        for uid in list(self._playing):
            talked_over = barge_in.finished(uid)
            if talked_over is None and everything:
                talked_over = barge_in.interrupted(uid)
            if talked_over is not None:
                self._playing.remove(uid)
                yield SpeechHeard(uid, time.monotonic(), talked_over)

    def _barge_in(self, event: Event) -> Iterator[Event]:
        """The other person starts speaking over a translation: stop or duck it, and say so."""
        barge_in, speaker = self.barge_in, self.speaker
        if barge_in is None or speaker is None:
            return
        if isinstance(event, SpeechDone):
            barge_in.done(event.utterance_id)
            self._playing.append(event.utterance_id)
        elif self._talks_over(event):
            hit = barge_in.interrupt()
            if hit:
                speaker.interrupt(barge_in.talked_over_gain)
            how = "stopped" if barge_in.talked_over_gain == 0 else "ducked"
            for uid in hit:
                yield Notice(f"#{uid}: translation {how}: #{getattr(event, 'utterance_id', 0)} is talking over it", event.wall)

    def _talks_over(self, event: Event) -> bool:
        """Whether ``event`` is where an utterance shows itself to be somebody speaking.

        With the last guard on, what the canceller leaves of our speech may start an utterance,
        and must not stop that speech: it is the speech start when the canceller, which had taken
        our voice down to the room's floor, now lets much more through (``EchoCanceller.near_end``:
        0.4-1 s after they began in the simulated room), else the first caption of two words or
        more that is not our own voice come back (1.2-1.4 s). Without the guard, the speech start."""
        own = self.own_speech
        if own is None:
            return isinstance(event, SpeechStarted)
        if isinstance(event, SpeechStarted) and self.canceller is not None and self.canceller.near_end():
            self._barged.add(event.utterance_id)
            return True
        if not isinstance(event, Caption) or event.utterance_id in self._barged:
            return False
        text = f"{event.committed} {event.tentative}"
        if len(text.split()) < 2 or own.repeats(text, event.audio_end_wall - own.window, event.audio_end_wall):
            return False
        self._barged.add(event.utterance_id)
        return True

    def _guard(self, event: Event) -> Event | None:
        """The last guard on the output: our own speech is remembered as it is queued, and a
        transcript of it is replaced by a notice (its translation never comes: EchoFilter)."""
        own = self.own_speech
        if own is None or self.speaker is None:
            return event
        if isinstance(event, SpeechChunk):
            start = max(time.monotonic(), self.speaker.busy_until)
            own.said(event.text, start, start + len(event.samples) / event.sample_rate)
        elif isinstance(event, Transcript) and own.is_echo(event):
            return Notice(
                f"#{event.utterance_id}: our own speech heard back, dropped ({own.dropped} so far)", event.wall, NoticeLevel.INFO
            )
        return event

    def _track(self, event: Event) -> None:
        """Utterances between speech start and their last output, for :attr:`state`."""
        if isinstance(event, SpeechStarted):
            self._pending.add(event.utterance_id)
        elif isinstance(event, (SpeechDone, StageFailed, Discarded)) or (isinstance(event, Translation) and self.speaker is None):
            self._pending.discard(event.utterance_id)

    def stop(self) -> None:
        """End the run: what was heard so far is finished (recognised, translated, spoken), then
        the iteration ends. Safe from a signal handler or another thread."""
        self.pipeline.stop()
        self.microphone.close()  # yields what it has already captured, then ends


class EventThread:
    """Iterates a session's events on a thread of its own, so the caller's loop (a screen, the
    service's watchdog) never waits on the pipeline. Every event goes to ``on_event``; each
    finished utterance, collected into a record, to ``on_record``; ``wake`` is called after each,
    and when the session ends (then :attr:`done` is set, and :attr:`error` holds what ended it if
    it was not a stop)."""

    def __init__(
        self,
        session: LiveSession,
        *,
        on_event: Callable[[Event], None],
        on_record: Callable[[UtteranceRecord], None],
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.session = session
        self.on_event = on_event
        self.on_record = on_record
        self.wake = wake
        self.collector = UtteranceCollector(speaking=session.speaking, heard=session.reports_heard)
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="events", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def unheard(self) -> list[UtteranceRecord]:
        """The records of what was translated and is still being spoken, closed now with whether
        each was talked over so far: for a run that quits at once (only a session with barge-in
        holds records until their speech is heard)."""
        barge_in = self.session.barge_in
        return [] if barge_in is None else self.collector.unheard(barge_in.interrupted)

    def _run(self) -> None:
        try:
            for event in self.session.events():
                self.on_event(event)
                record = self.collector.feed(event)
                if record is not None:
                    self.on_record(record)
                self.wake()
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller's thread
            self.error = e
        finally:
            self.done.set()
            self.wake()
