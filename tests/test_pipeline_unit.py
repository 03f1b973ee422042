"""Pipeline wiring with fake stages: ordering, forwarding, failures, stop and back-pressure."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from translator.errors import DeviceError, ModelError
from translator.events import (
    AudioBlock,
    Notice,
    SpeechChunk,
    SpeechDone,
    SpeechHeard,
    StageFailed,
    Transcript,
    Translation,
    UtteranceEnded,
)
from translator.pipeline import Pipeline, StageSpec, run_collect
from translator.transcript import UtteranceCollector


def blocks(n: int, size: int = 1600):
    for i in range(n):
        yield AudioBlock(np.zeros(size, np.float32), i * size / 16000, time.monotonic())


class CountingSegmenter:
    """Ends an utterance every ``every`` blocks and one more at flush."""

    def __init__(self, every: int = 5) -> None:
        self.every, self.n, self.uid = every, 0, 0
        self.flushed = False
        self.resets = 0

    def _ended(self, end: float) -> UtteranceEnded:
        self.uid += 1
        return UtteranceEnded(self.uid, np.zeros(10, np.float32), 0.0, end, time.monotonic(), time.monotonic())

    def feed(self, block):
        self.n += 1
        if self.n % self.every == 0:
            yield self._ended(block.end)

    def flush(self, wall=None):
        self.flushed = True
        yield self._ended(0.0)

    def reset(self):
        self.resets += 1


class FakeAsr:
    def __init__(self, fail_on: int = -1) -> None:
        self.fail_on = fail_on

    def feed(self, e):
        if e.utterance_id == self.fail_on:
            raise ModelError("boom")
        yield Transcript(
            e.utterance_id, f"t{e.utterance_id}", "de", 1.0, "transcribe", e.start, e.t_end, e.t_end_wall, time.monotonic(), 0.01
        )


class FakeMt:
    def feed(self, t):
        yield Translation(
            t.utterance_id,
            t.text,
            t.language,
            t.text.upper(),
            "en",
            "fake",
            t.start,
            t.t_end,
            t.t_end_wall,
            time.monotonic(),
            0.0,
        )


class FakeTts:
    def feed(self, t):
        yield SpeechChunk(t.utterance_id, np.ones(160, np.float32), 16000, 0, t.text, t.t_end_wall, time.monotonic(), "fake")
        yield SpeechDone(t.utterance_id, t.t_end_wall, time.monotonic(), "fake")


class ListSink:
    def __init__(self) -> None:
        self.chunks = []

    def write(self, samples, sample_rate):
        self.chunks.append(len(samples))


def chain(asr=None):
    return [
        StageSpec("asr", asr or FakeAsr(), (UtteranceEnded,)),
        StageSpec("mt", FakeMt(), (Transcript,)),
        StageSpec("tts", FakeTts(), (Translation,)),
    ]


def test_events_flow_through_every_stage_and_sink():
    sink = ListSink()
    seg = CountingSegmenter()
    events = run_collect(Pipeline(seg, chain(), sink=sink), blocks(20))
    translations = [e.text for e in events if isinstance(e, Translation)]
    assert translations == ["T1", "T2", "T3", "T4", "T5"]  # 4 by count + 1 at flush
    assert seg.flushed
    assert len(sink.chunks) == 5
    collector = UtteranceCollector()
    records = [r for e in events if (r := collector.feed(e))]
    assert [r.text for r in records] == translations
    assert all(r.speech_to_speech is not None and r.speech_to_speech >= 0 for r in records)


def test_with_heard_a_record_closes_when_its_speech_is_heard_and_says_whether_it_was_talked_over():
    events = run_collect(Pipeline(CountingSegmenter(), chain(), sink=ListSink()), blocks(10))
    collector = UtteranceCollector(heard=True)
    assert [r for e in events if (r := collector.feed(e))] == []  # synthesised, not yet heard
    records = [collector.feed(SpeechHeard(uid, time.monotonic(), uid == 2)) for uid in (1, 2, 3)]
    assert [(r.utterance_id, r.voice, r.interrupted) for r in records if r] == [
        (1, "fake", False),
        (2, "fake", True),
        (3, "fake", False),
    ]
    assert collector.feed(SpeechHeard(1, time.monotonic(), False)) is None  # closed once
    # a run quit at once: what was synthesised and is still being heard is written all the same
    quitting = UtteranceCollector(heard=True)
    for e in events:
        quitting.feed(e)
    kept = quitting.unheard(lambda uid: uid == 3)
    assert [(r.utterance_id, r.interrupted) for r in kept] == [(1, False), (2, False), (3, True)]
    assert quitting.unheard(lambda uid: False) == []


def test_poll_events_join_the_output_while_the_stages_are_quiet():
    """A live session's SpeechHeard comes from outside the stages: the pipeline asks for it."""

    def slow(n: int):
        for block in blocks(n):
            time.sleep(0.05)
            yield block

    asked: list[float] = []

    def poll():
        asked.append(time.monotonic())
        return [Notice(f"poll {len(asked)}", asked[-1])] if len(asked) == 3 else []

    events = list(Pipeline(CountingSegmenter(every=100), chain(), sink=ListSink()).run(slow(10), poll=poll))
    assert [e.message for e in events if isinstance(e, Notice)] == ["poll 3"]
    assert len(asked) >= 4  # 0.5 s with one event (the flush's): asked every POLL_SECONDS meanwhile


def test_each_sink_failure_is_one_notice_and_speech_goes_on_to_a_sink_that_recovers():
    class FlakySink(ListSink):
        """Fails on its 2nd and 4th chunks, as a device that is lost, comes back, is lost again."""

        def write(self, samples, sample_rate):
            super().write(samples, sample_rate)
            if len(self.chunks) in (2, 4):
                raise DeviceError(f"output lost #{len(self.chunks)}")

    sink = FlakySink()
    events = run_collect(Pipeline(CountingSegmenter(), chain(), sink=sink), blocks(20))
    notices = [(n.message, n.level) for n in events if isinstance(n, Notice)]
    assert notices == [("output lost #2", "error"), ("output lost #4", "error")]
    assert len(sink.chunks) == 5  # tried every chunk
    assert [e.text for e in events if isinstance(e, Translation)] == ["T1", "T2", "T3", "T4", "T5"]


def test_a_stage_error_skips_one_utterance_only():
    events = run_collect(Pipeline(CountingSegmenter(), chain(FakeAsr(fail_on=2))), blocks(20))
    failed = [e for e in events if isinstance(e, StageFailed)]
    assert [(f.stage, f.utterance_id, f.message) for f in failed] == [("asr", 2, "boom")]
    assert [e.text for e in events if isinstance(e, Translation)] == ["T1", "T3", "T4", "T5"]


def test_source_error_reaches_the_consumer_after_delivering_earlier_events():
    def bad_source():
        yield from blocks(5)
        raise ModelError("source broke")

    seen = []
    with pytest.raises(ModelError, match="source broke"):
        for e in Pipeline(CountingSegmenter(), chain()).run(bad_source()):
            seen.append(e)
    assert any(isinstance(e, Translation) and e.text == "T1" for e in seen)


def test_stop_finishes_the_utterance_in_flight():
    stop_after = threading.Event()

    def endless():
        i = 0
        while True:
            yield AudioBlock(np.zeros(1600, np.float32), i * 0.1, time.monotonic())
            time.sleep(0.001)
            i += 1
            if i == 3:
                stop_after.set()

    seg = CountingSegmenter(every=10_000)
    pipe = Pipeline(seg, chain())
    threading.Thread(target=lambda: stop_after.wait() and pipe.stop(), daemon=True).start()
    events = run_collect(pipe, endless())
    assert seg.flushed and seg.n < 10_000
    assert [e.text for e in events if isinstance(e, Translation)] == ["T1"]


def test_a_slow_stage_applies_back_pressure():
    seg = CountingSegmenter(every=1)
    leads = []

    class SlowAsr(FakeAsr):
        def feed(self, e):
            leads.append(seg.n - e.utterance_id)
            time.sleep(0.005)
            yield from super().feed(e)

    run_collect(Pipeline(seg, chain(SlowAsr()), queue_size=2), blocks(40))
    assert seg.n == 40 and len(leads) == 41
    assert max(leads) <= 4, leads  # the source waits instead of queueing everything


def test_a_gap_in_the_audio_ends_the_utterance_and_restarts_the_segmenter():
    def with_gap():
        yield AudioBlock(np.zeros(1600, np.float32), 0.0, time.monotonic())
        yield AudioBlock(np.zeros(1600, np.float32), 0.1, time.monotonic())
        yield AudioBlock(np.zeros(1600, np.float32), 2.0, time.monotonic())  # device was away

    seg = CountingSegmenter(every=1000)
    events = run_collect(Pipeline(seg, chain()), with_gap())
    assert seg.resets == 1
    assert [e.text for e in events if isinstance(e, Translation)] == ["T1", "T2"]  # gap flush + end flush


class Recorder:
    """An observer that keeps every call, in order, per part."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def begin(self, part, item):
        with self.lock:
            self.calls.append(("begin", part, type(item).__name__))

    def step(self, part, item, start, end):
        assert end >= start
        with self.lock:
            self.calls.append(("step", part, type(item).__name__))

    def end(self, part, item):
        with self.lock:
            self.calls.append(("end", part, type(item).__name__))


def test_observer_sees_every_part_begin_step_end_in_order() -> None:
    rec = Recorder()
    sink = ListSink()
    p = Pipeline(
        CountingSegmenter(every=5),
        [
            StageSpec("asr", FakeAsr(), (UtteranceEnded,)),
            StageSpec("mt", FakeMt(), (Transcript,)),
            StageSpec("tts", FakeTts(), (Translation,)),
        ],
        sink=sink,
        observers=[rec],
    )
    run_collect(p, blocks(10))
    parts = {part for _, part, _ in rec.calls}
    assert parts == {"vad", "asr", "mt", "tts", "sink"}
    assert sum(1 for c in rec.calls if c == ("begin", "vad", "AudioBlock")) == 10
    # Three utterances (two by count, one at flush): each stage begins and ends each one once.
    for part, item in (("asr", "UtteranceEnded"), ("mt", "Transcript"), ("tts", "Translation"), ("sink", "SpeechChunk")):
        mine = [kind for kind, p_, i in rec.calls if p_ == part and i == item]
        assert mine.count("begin") == 3 and mine.count("end") == 3, (part, mine)
        # begin ... step(s) ... end, never interleaved within one part's thread
        assert mine[0] == "begin" and mine[-1] == "end"
    tts = [kind for kind, p_, _ in rec.calls if p_ == "tts"]
    assert tts[:4] == ["begin", "step", "step", "step"]  # two outputs, then the last stretch
