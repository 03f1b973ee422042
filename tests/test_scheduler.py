"""The caption scheduler: it yields to finals, widens the caption interval with the cost of a caption
and shrinks it back, drops stale captions and says so once (fake stages of known cost, a fake clock)."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest

from translator.events import (
    AudioBlock,
    Caption,
    Notice,
    SpeechGrowing,
    SpeechPaused,
    SpeechStarted,
    Transcript,
    Translation,
    UtteranceEnded,
)
from translator.pipeline import Pipeline, StageSpec
from translator.scheduler import CaptionTurn, Scheduler
from translator.speculation import Provisional
from translator.stages.asr import RecognizerStage
from translator.stages.recognition import Abandoned, Recognition

AUDIO = np.zeros(1600, np.float32)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def snapshot(wall: float, uid: int = 1) -> SpeechGrowing:
    return SpeechGrowing(uid, AUDIO, 0.0, 0.1, wall)


def transcript(uid: int = 1) -> Transcript:
    return Transcript(uid, "hello", "en", 1.0, "transcribe", 0.0, 1.0, 0.0, 0.0, 0.1)


def translation(uid: int = 1) -> Translation:
    return Translation(uid, "hello", "en", "hola", "es", "fake", 0.0, 1.0, 0.0, 0.0, 0.1)


def decode(scheduler: Scheduler, clock: Clock, cost: float) -> None:
    """A caption decode of ``cost`` seconds, as the pipeline reports it."""
    item = snapshot(clock.now)
    assert scheduler.caption_turn(item) is CaptionTurn.DECODE
    scheduler.begin("asr", item)
    start = clock.now
    clock.now += cost
    scheduler.step("asr", item, start, clock.now)
    scheduler.end("asr", item)


def test_the_caption_interval_widens_with_the_cost_and_shrinks_back() -> None:
    clock = Clock()
    scheduler = Scheduler(share=0.5, clock=clock)
    decode(scheduler, clock, 0.8)  # a slow box: captions may take half the time, so wait 0.8 s
    assert scheduler.caption_gap() == pytest.approx(0.8)
    clock.now += 0.5
    assert scheduler.caption_turn(snapshot(clock.now)) is CaptionTurn.SPACED
    clock.now += 0.31
    decode(scheduler, clock, 0.1)  # the load went away
    gaps = [scheduler.caption_gap()]
    for _ in range(8):
        clock.now += gaps[-1] + 0.01
        decode(scheduler, clock, 0.1)
        gaps.append(scheduler.caption_gap())
    assert gaps == sorted(gaps, reverse=True) and gaps[0] > 0.5 and gaps[-1] < 0.15
    assert scheduler.turns == {"decoded": 10, "spaced": 1}


def test_a_quarter_share_leaves_three_times_the_cost() -> None:
    clock = Clock()
    scheduler = Scheduler(share=0.25, clock=clock)
    decode(scheduler, clock, 0.2)
    assert abs(scheduler.caption_gap() - 0.6) < 1e-9


def test_skipped_snapshots_do_not_count_as_cheap_captions() -> None:
    """A snapshot the recognizer skipped still passes through the observer (a step of no time): it
    must not pull the caption cost down."""
    clock = Clock()
    scheduler = Scheduler(clock=clock)
    decode(scheduler, clock, 0.4)
    skipped = snapshot(clock.now)
    assert scheduler.caption_turn(skipped) is CaptionTurn.SPACED
    scheduler.begin("asr", skipped)
    scheduler.step("asr", skipped, clock.now, clock.now)
    scheduler.end("asr", skipped)
    assert scheduler.caption_cost == pytest.approx(0.4)


def test_captions_wait_while_the_translation_is_made() -> None:
    """The final, its translation and its first sentence's synthesis go first: queued or running."""
    clock = Clock()
    scheduler = Scheduler(clock=clock)
    asr, mt, tts = queue.Queue(), queue.Queue(), queue.Queue()
    for name, box in (("asr", asr), ("mt", mt), ("tts", tts)):
        scheduler.attach(name, box)
    paused = SpeechPaused(1, AUDIO, 0.0, 1.0, clock.now, clock.now)
    asr.put(Provisional("k", paused))
    assert scheduler.preempted() and scheduler.caption_turn(snapshot(clock.now, 2)) is CaptionTurn.BUSY
    asr.get()
    scheduler.begin("asr", paused)
    assert not scheduler.preempted() and scheduler.caption_turn(snapshot(clock.now, 2)) is CaptionTurn.BUSY
    scheduler.end("asr", paused)
    mt.put(transcript())
    assert scheduler.caption_turn(snapshot(clock.now, 2)) is CaptionTurn.BUSY
    item = mt.get()
    scheduler.begin("mt", item)
    assert scheduler.busy()
    scheduler.end("mt", item)
    said = translation()
    scheduler.begin("tts", said)
    assert scheduler.busy()
    scheduler.step("tts", said, clock.now, clock.now + 0.2)  # the first sentence is synthesised
    assert not scheduler.busy()  # the later sentences share the core with captions
    scheduler.end("tts", said)
    started = SpeechStarted(2, 0.0, clock.now)
    asr.put(started)  # the start of speech costs nothing: no reason to wait
    assert scheduler.caption_turn(snapshot(clock.now, 2)) is CaptionTurn.DECODE


def test_stale_snapshots_are_dropped_and_said_once_per_episode() -> None:
    clock = Clock()
    scheduler = Scheduler(stale=1.0, clock=clock)
    assert scheduler.caption_turn(snapshot(clock.now - 1.5)) is CaptionTurn.BEHIND
    assert scheduler.caption_turn(snapshot(clock.now - 1.2)) is CaptionTurn.STALE
    assert scheduler.caption_turn(snapshot(clock.now - 0.2)) is CaptionTurn.DECODE
    assert scheduler.caption_turn(snapshot(clock.now - 3.0)) is CaptionTurn.BEHIND


class FakeRecognizer:
    """Captions that cost an encoder run: the run ends when the test says, then ``abandon`` is asked
    as the real recognizer asks it; finals answer at once."""

    def __init__(self) -> None:
        self.captions = 0
        self.finals = 0
        self.encoding = threading.Event()
        self.encoded = threading.Event()

    def recognize(self, audio, settings=None, *, retry=True, abandon=None, **_):
        if not retry:  # a caption
            self.encoding.set()
            assert self.encoded.wait(10)
            if abandon is not None and abandon():
                raise Abandoned
            self.captions += 1
        else:
            self.finals += 1
        return Recognition("hello there", "en", 1.0, "transcribe", -0.1, 0.0, 1.0, 0.01, 2, 8.0)


def test_a_caption_in_flight_gives_way_to_the_pause() -> None:
    """The pause arrives while a caption's encoder runs: the decoder never runs for the caption, the
    final is decoded, and the turn is counted as preempted."""
    recognizer = FakeRecognizer()
    scheduler = Scheduler()
    stage = RecognizerStage(recognizer, provisional=True, scheduler=scheduler)  # type: ignore[arg-type]
    events = [
        lambda w: SpeechStarted(1, 0.0, w),
        lambda w: SpeechGrowing(1, AUDIO, 0.0, 0.5, w),
        lambda w: SpeechPaused(1, AUDIO, 0.0, 0.5, w, w),
        lambda w: UtteranceEnded(1, AUDIO, 0.0, 0.5, w, w),
    ]

    def source():
        for i in range(len(events)):
            if i == 2:
                assert recognizer.encoding.wait(10)  # the caption is being encoded ...
            yield AudioBlock(AUDIO, i * 0.1, time.monotonic())
            if i == 2:
                deadline = time.monotonic() + 10
                while not scheduler.preempted() and time.monotonic() < deadline:
                    time.sleep(0.005)  # ... when the pause reaches the recognizer's inbox
                recognizer.encoded.set()

    class Segmenter:
        def __init__(self) -> None:
            self.n = 0

        def feed(self, block):
            self.n += 1
            yield events[self.n - 1](block.wall)

        def flush(self, wall=None):
            return iter(())

        def reset(self):
            pass

    pipeline = Pipeline(
        Segmenter(),
        [StageSpec("asr", stage, (SpeechStarted, SpeechGrowing, SpeechPaused, UtteranceEnded), superseded=(SpeechGrowing,))],
        scheduler=scheduler,
    )
    out = list(pipeline.run(source()))
    assert [e.text for e in out if isinstance(e, Transcript)] == ["hello there"]
    assert not any(isinstance(e, Caption) for e in out)
    assert (recognizer.captions, recognizer.finals) == (0, 1)
    assert scheduler.turns["preempted"] == 1 and scheduler.turns["decoded"] == 0


def test_the_recognizer_says_once_that_it_is_behind() -> None:
    clock = Clock()
    recognizer = FakeRecognizer()
    recognizer.encoded.set()
    stage = RecognizerStage(recognizer, scheduler=Scheduler(clock=clock))  # type: ignore[arg-type]
    list(stage.feed(SpeechStarted(1, 0.0, clock.now)))
    first = list(stage.feed(snapshot(clock.now - 2.0)))
    second = list(stage.feed(snapshot(clock.now - 1.5)))
    assert len(first) == 1 and isinstance(first[0], Notice) and "behind real time" in first[0].message
    assert second == [] and recognizer.captions == 0
    fresh = list(stage.feed(snapshot(clock.now)))
    assert [type(e) for e in fresh] == [Caption] and recognizer.captions == 1


def test_no_caption_when_the_pause_would_come_first() -> None:
    """The speaker has gone quiet: a caption that takes longer than the rest of the pause would
    make the final wait for it; one that fits, or a speaker still talking, gets its turn."""
    clock, quiet = Clock(), [0.0]
    scheduler = Scheduler(pause=0.1, silence=lambda: quiet[0], clock=clock)
    decode(scheduler, clock, 0.2)
    clock.now += 1.0
    quiet[0] = 0.032
    assert scheduler.caption_turn(snapshot(clock.now)) is CaptionTurn.PAUSING
    quiet[0] = 0.0
    decode(scheduler, clock, 0.05)  # still talking; and now captions are cheap
    clock.now += 1.0
    quiet[0] = 0.032
    scheduler.caption_cost = 0.05
    assert scheduler.caption_turn(snapshot(clock.now)) is CaptionTurn.DECODE
