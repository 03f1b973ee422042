"""Pieces of the live app without audio devices: the self-listening guard's sink with fake
devices (mute span, no talking over the user), barge-in, push-to-talk, the choice of renderer, and library
messages on stderr kept off the TUI. What the renderers draw: tests/test_render.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from translator.errors import DeviceError
from translator.events import SpeechChunk, SpeechDone
from translator.live import GuardedSink
from translator.run.terminal import Mode, PushToTalk, choose_mode, stderr_to_file
from translator.stages.barge_in import BargeIn, SpeechFilter


class FakeSpeaker:
    def __init__(self) -> None:
        self.writes: list[float] = []
        self.busy_until = 0.0
        self.error = None

    def write(self, samples, sample_rate):
        self.writes.append(time.monotonic())
        self.busy_until = time.monotonic() + len(samples) / sample_rate


class FakeMicrophone:
    def __init__(self) -> None:
        self.until = 0.0

    def mute_until(self, wall):
        self.until = max(self.until, wall)


def test_mutes_for_the_speech_plus_the_tail():
    speaker, mic = FakeSpeaker(), FakeMicrophone()
    GuardedSink(speaker, mic, 0.3).write(np.zeros(16000, np.float32), 16000)
    assert mic.until >= speaker.busy_until + 0.3 - 1e-6
    assert speaker.busy_until - speaker.writes[0] > 0.99


def test_waits_while_the_user_is_talking_then_plays():
    speaker, mic = FakeSpeaker(), FakeMicrophone()
    answers = iter([True, True, True])
    asked: list[tuple[bool, int]] = []  # (the answer, writes so far) at each look

    def talking() -> bool:
        answer = next(answers, False)
        asked.append((answer, len(speaker.writes)))
        return answer

    GuardedSink(speaker, mic, 0.3, talking=talking).write(np.zeros(1600, np.float32), 16000)
    assert asked == [(True, 0), (True, 0), (True, 0), (False, 0)] and len(speaker.writes) == 1


def test_holds_at_most_max_hold():
    speaker, mic = FakeSpeaker(), FakeMicrophone()
    sink = GuardedSink(speaker, mic, 0.3, talking=lambda: True, max_hold=0.1)
    started = time.monotonic()
    sink.write(np.zeros(1600, np.float32), 16000)
    assert len(speaker.writes) == 1 and speaker.writes[0] - started >= 0.1


def test_without_the_guard_it_neither_waits_nor_mutes():
    speaker, mic = FakeSpeaker(), FakeMicrophone()
    GuardedSink(speaker, mic, 0.3, guard=False, talking=lambda: True).write(np.zeros(1600, np.float32), 16000)
    assert len(speaker.writes) == 1 and mic.until == 0.0


def test_output_failure_is_not_reported_twice():
    """The speaker has already said so through its status callback; the pipeline must not repeat it."""

    class FailingSpeaker(FakeSpeaker):
        def write(self, samples, sample_rate):
            super().write(samples, sample_rate)
            raise DeviceError("audio output 'default' failed (the audio stream stopped)")

    speaker, mic = FailingSpeaker(), FakeMicrophone()
    sink = GuardedSink(speaker, mic, 0.3)
    sink.write(np.zeros(1600, np.float32), 16000)
    assert len(speaker.writes) == 1 and mic.until >= speaker.busy_until + 0.3 - 1e-6


def test_a_failed_output_does_not_mute_the_microphone():
    class FailedSpeaker(FakeSpeaker):
        def __init__(self) -> None:
            super().__init__()
            self.error = "audio output 'default' failed (the audio stream stopped)"

        def write(self, samples, sample_rate):
            self.writes.append(time.monotonic())  # dropped: busy_until stays in the past

    speaker, mic = FailedSpeaker(), FakeMicrophone()
    asked: list[float] = []
    GuardedSink(speaker, mic, 0.3, talking=lambda: asked.append(time.monotonic()) or True).write(
        np.zeros(16000, np.float32), 16000
    )
    assert len(speaker.writes) == 1 and asked == []  # no wait for the user either
    assert mic.until < time.monotonic()


def test_segmenter_remembers_when_it_last_heard_a_voice():
    """The turn-taking wait reads this: silence leaves it alone, speech moves it to its block's wall."""
    import soundfile as sf
    from conftest import SPEECH

    from translator.events import AudioBlock
    from translator.stages.vad import Segmenter

    speech, _ = sf.read(SPEECH / "en" / "LDC93S1.wav", dtype="float32")
    seg = Segmenter()
    for i in range(10):
        list(seg.feed(AudioBlock(np.zeros(1600, np.float32), i * 0.1, wall=100.0 + i)))
    assert seg.last_voiced_wall == 0.0
    list(seg.feed(AudioBlock(speech, 1.0, wall=500.0)))
    list(seg.feed(AudioBlock(np.zeros(16000, np.float32), 1.0 + len(speech) / 16000, wall=600.0)))
    assert seg.last_voiced_wall == 500.0


def test_push_to_talk_counts_auto_repeat_as_held() -> None:
    ptt = PushToTalk(hold=0.6, first_hold=0.8)
    assert not ptt.held(100.0)
    ptt.press(100.0)  # the press; the keyboard waits up to 660 ms before repeating
    assert ptt.held(100.7) and not ptt.held(100.85)
    for k in range(1, 20):  # auto-repeat every 33 ms
        ptt.press(100.66 + k * 0.033)
    last = 100.66 + 19 * 0.033
    assert ptt.held(last + 0.55) and not ptt.held(last + 0.65)  # released: off within 0.6 s
    ptt.press(last + 2.0)  # a new press gets the long first window again
    assert ptt.held(last + 2.75)


def test_mode_is_plain_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    with open(tmp_path / "out", "w") as f:
        assert choose_mode(False, False, f) is Mode.PLAIN
        assert choose_mode(False, True, f) is Mode.JSONL
    r = subprocess.run([sys.executable, "-m", "translator.cli", "run", "--plain", "--jsonl"], capture_output=True, text=True)
    assert r.returncode == 2 and "not allowed with" in r.stderr


def test_library_stderr_goes_to_a_log_while_the_tui_runs(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "state" / "run-stderr.log"
    with stderr_to_file(log) as used:
        os.write(2, b"ALSA lib pcm.c:8570:(snd_pcm_recover) underrun occurred\n")  # as libasound writes it
    os.write(2, b"after\n")
    assert used == log and "underrun occurred" in log.read_text()
    assert capfd.readouterr().err == "after\n"


# --- barge-in -----------------------------------------------------------------------------------


def _chunk(uid: int, index: int = 0) -> SpeechChunk:
    return SpeechChunk(uid, np.zeros(1600, np.float32), 16000, index, "text", 0.0, 0.0, "voice")


def test_barge_in_stops_what_is_synthesised_and_what_is_on_its_way() -> None:
    barge_in = BargeIn(0.0)
    speaker, mic = FakeSpeaker(), FakeMicrophone()
    sink = GuardedSink(speaker, mic, 0.3, guard=False, barge_in=barge_in)
    first, on_its_way = _chunk(1), _chunk(1, 1)
    assert barge_in.queued(first) == 1.0 and barge_in.queued(on_its_way) == 1.0
    sink.write(first.samples, 16000)
    assert barge_in.interrupt() == [1] and barge_in.interrupted(1)
    sink.write(on_its_way.samples, 16000)  # synthesised before the barge-in: not played
    assert len(speaker.writes) == 1
    assert barge_in.queued(_chunk(2)) == 1.0 and not barge_in.interrupted(2)  # the next one is not
    assert barge_in.interrupt() == [2] and barge_in.interruptions == 2


def test_speech_still_heard_after_its_synthesis_ended_can_be_talked_over() -> None:
    barge_in = BargeIn(0.1)
    chunk = _chunk(3)
    barge_in.queued(chunk)
    assert barge_in.take(chunk.samples, 16000) == (3, 1.0)
    barge_in.audible(3, time.monotonic() + 5)
    barge_in.done(3)
    assert barge_in.interrupt() == [3]
    later = _chunk(3, 1)
    assert barge_in.queued(later) == 0.1 and barge_in.take(later.samples, 16000) == (3, 0.1)  # ducked
    finished = BargeIn(0.0)
    finished.queued(_chunk(4))
    finished.audible(4, time.monotonic() - 0.1)
    finished.done(4)
    assert finished.interrupt() == []  # heard out already: nothing to stop


def test_speech_heard_to_its_end_is_forgotten_without_a_barge_in() -> None:
    """A session nobody talks over keeps only the utterances still playing."""
    barge_in = BargeIn(0.0)
    now = time.monotonic()
    for uid in range(100):
        barge_in.audible(uid, now - 1.0)  # heard out
    barge_in.audible(100, now + 5.0)
    assert set(barge_in._audible) == {100}
    assert barge_in.interrupt() == [100]


def test_an_utterance_is_finished_once_all_its_speech_is_heard_or_stopped() -> None:
    """What closes its record (SpeechHeard): nothing of it queued, synthesising or playing."""
    barge_in = BargeIn(0.1)  # ducked: the rest plays on, quieter
    chunk = _chunk(7)
    barge_in.queued(chunk)
    barge_in.done(7)
    assert barge_in.finished(7) is None  # on its way to the sink
    barge_in.take(chunk.samples, 16000)
    assert barge_in.finished(7) is None  # playing: 0.1 s, at least, from being taken
    assert barge_in.interrupt() == [7]
    time.sleep(0.12)
    assert barge_in.finished(7) is True and barge_in._interrupted == set() and 7 not in barge_in._audible
    assert barge_in.finished(7) is False  # forgotten
    stopped = BargeIn(0.0)
    first, rest = _chunk(8), _chunk(8, 1)
    stopped.queued(first)
    stopped.take(first.samples, 16000)
    stopped.audible(8, time.monotonic() + 60)  # a minute of it in the speaker's queue
    stopped.queued(rest)
    assert stopped.interrupt() == [8]
    assert stopped.finished(8) is None  # still synthesising
    stopped.done(8)
    assert stopped.finished(8) is None  # a chunk is still to reach the sink (to be dropped there)
    assert stopped.take(rest.samples, 16000) == (8, 0.0)
    assert stopped.finished(8) is True  # stopped: heard no longer, though it was to play a minute


def test_a_retracted_synthesis_is_not_waited_for() -> None:
    """A speculation's speech, dropped on its way to the sink when the speaker went on, does not
    keep the utterance from being heard: the final's synthesis starts again at chunk 0."""
    barge_in = BargeIn(0.0)
    barge_in.queued(_chunk(9))
    barge_in.queued(_chunk(9, 1))  # the speculation: retracted, never taken
    final = _chunk(9)
    barge_in.queued(final)
    barge_in.done(9)
    assert barge_in.finished(9) is None
    barge_in.take(final.samples, 100_000)  # 16 ms
    time.sleep(0.03)
    assert barge_in.finished(9) is False


def test_ducked_speech_is_played_quieter() -> None:
    barge_in = BargeIn(0.1)
    speaker = FakeSpeaker()
    played: list[np.ndarray] = []
    speaker.write = lambda samples, rate: played.append(samples)  # type: ignore[method-assign]
    chunk = SpeechChunk(5, np.full(160, 0.5, np.float32), 16000, 0, "text", 0.0, 0.0, "voice")
    barge_in.queued(chunk)
    barge_in.interrupt()
    GuardedSink(speaker, FakeMicrophone(), 0.3, guard=False, barge_in=barge_in).write(chunk.samples, 16000)
    assert np.allclose(played[0], 0.05)


def test_speech_filter_ends_a_stopped_utterance_at_once() -> None:
    barge_in = BargeIn(0.0)
    synthesised: list[int] = []

    class Speaker:
        def feed(self, event):
            for i in range(3):
                synthesised.append(i)
                yield _chunk(6, i)
            yield SpeechDone(6, 0.0, 0.0, "voice")

    stage = SpeechFilter(Speaker(), barge_in)
    out = stage.feed(object())
    assert isinstance(next(out), SpeechChunk)
    barge_in.interrupt()
    rest = list(out)
    assert [type(e) for e in rest] == [SpeechDone] and synthesised == [0, 1]  # the third never made
