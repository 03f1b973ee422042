"""A live session: microphone -> the pipeline -> speaker, with the self-listening guard.

The terminal app (``translator run``) and the service (``translator serve``) are both thin layers
over :class:`LiveSession`: they differ only in how they show events and status.

Self-listening guard: with a loudspeaker, the translator would hear and translate its own voice.
Half-duplex (the default) mutes the microphone while speech is playing and for ``guard_tail``
seconds after; muted audio still flows as silence, so the utterance in flight ends cleanly and the
audio clock stays true. Turn it off for a headset, whose microphone does not hear the earpiece.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from translator.assemble import Engines, build_pipeline
from translator.audio.devices import MicrophoneSource, SpeakerSink
from translator.errors import DeviceError
from translator.events import Discarded, Event, SpeechDone, SpeechStarted, StageFailed, Translation

StatusCallback = Callable[[str], None]


@dataclass(frozen=True)
class LiveOptions:
    input: str = ""
    """Input device name or part of one; empty = default."""
    output: str = ""
    speak: bool = True
    lead_in: float = 0.15
    half_duplex: bool = True
    guard_tail: float = 0.3
    """Seconds the microphone stays muted after speech output ends (room echo, output latency)."""
    turn_gap: float = 0.8
    """Half-duplex: speech output waits until the user has been silent this long, so a speaker
    who pauses between phrases is not muted mid-thought (full duplex does not wait)."""


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
    ) -> None:
        self.speaker = speaker
        self.microphone = microphone
        self.tail = tail
        self.guard = guard
        self.talking = talking
        self.max_hold = max_hold

    def write(self, samples: np.ndarray, sample_rate: int) -> None:
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

    def close(self) -> None:
        self.speaker.close()


class LiveSession:
    """Owns the devices and one pipeline run; iterate :meth:`events`, call :meth:`stop` to end.

    Stopping finishes the utterance in flight (the segmenter flushes it through recognition,
    translation and speech), lets queued speech play out, then ends the iteration.
    """

    def __init__(self, engines: Engines, options: LiveOptions = LiveOptions(), *, on_status: StatusCallback | None = None) -> None:
        self.engines = engines
        self.options = options
        self.on_status = on_status
        self.microphone = MicrophoneSource(options.input, on_status=self._status)
        try:
            self.speaker = (SpeakerSink(options.output, lead_in=options.lead_in, on_status=self._status)
                            if options.speak else None)
        except BaseException:
            self.microphone.close()  # its stream is open: do not leave it to the garbage collector
            raise
        self.pipeline = build_pipeline(engines, captions=True)
        if self.speaker is not None:
            self.pipeline.sink = GuardedSink(self.speaker, self.microphone, options.guard_tail,
                                             guard=options.half_duplex, talking=self._user_talking)
        self.status = "listening"
        self._pending: set[int] = set()

    def _user_talking(self) -> bool:
        segmenter = self.pipeline.segmenter
        return segmenter.in_speech or time.monotonic() - segmenter.last_voiced_wall < self.options.turn_gap

    def _status(self, message: str) -> None:
        self.status = message
        if self.on_status is not None:
            self.on_status(message)

    @property
    def level(self) -> float:
        """Input level of the last frame, dBFS (for a meter)."""
        return self.pipeline.segmenter.level

    @property
    def muted(self) -> bool:
        """The self-listening guard is holding the microphone (speech playing, or just played)."""
        if not self.options.half_duplex or self.speaker is None:
            return False
        return self.speaker.busy_until + self.options.guard_tail > time.monotonic()

    @property
    def state(self) -> str:
        """listening | hearing speech | translating | speaking (muted) | speaking."""
        if self.muted:
            return "speaking (microphone muted)"
        if self.speaker is not None and self.speaker.speaking:
            return "speaking"
        if self.pipeline.segmenter.in_speech:
            return "hearing speech"
        if self._pending:
            return "translating"
        return "listening"

    def events(self) -> Iterator[Event]:
        try:
            for event in self.pipeline.run(self.microphone):
                self._track(event)
                yield event
        finally:
            self.microphone.close()
            if self.speaker is not None:
                self.speaker.drain(timeout=30.0)
                self.speaker.close()

    def _track(self, event: Event) -> None:
        """Utterances between speech start and their last output, for :attr:`state`."""
        if isinstance(event, SpeechStarted):
            self._pending.add(event.utterance_id)
        elif isinstance(event, (SpeechDone, StageFailed, Discarded)) or (
            isinstance(event, Translation) and self.speaker is None
        ):
            self._pending.discard(event.utterance_id)

    def stop(self) -> None:
        """End the run: what was heard so far is finished (recognised, translated, spoken), then
        the iteration ends. Safe from a signal handler or another thread."""
        self.pipeline.stop()
        self.microphone.close()  # yields what it has already captured, then ends
