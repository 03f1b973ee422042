"""The echo canceller without devices: the played-audio timeline, AEC3 on a corpus recording
carried through a simulated room, the duplex mode's choice, and the last guard's text match.
The canceller and the room are real (pywebrtc-audio, numpy); only the devices are left out.
The same room through PulseAudio and the live app: tests/test_live.py and tests/echo_bench.py."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from conftest import SPEECH
from pulse import Room

from translator import config_load
from translator.audio import duplex, echo
from translator.audio.duplex import Duplex, resolve
from translator.audio.echo import (
    _UNREAD,
    AEC3_DELAY,
    FRAME,
    LEAD,
    NEAR_END_BEFORE,
    NEAR_END_WINDOW,
    QUIET,
    EchoCanceller,
    EchoReference,
)
from translator.audio.files import FileSource
from translator.audio.samples import speech_span
from translator.config import Config
from translator.errors import ConfigError
from translator.events import Discarded, Transcript
from translator.stages.echo_guard import KEEP_VERDICTS, EchoFilter, OwnSpeech

RATE = 16000


def _lag(out: np.ndarray, x: np.ndarray) -> int:
    n = len(x)
    xc = np.fft.irfft(np.fft.rfft(out[:n], 2 * n) * np.conj(np.fft.rfft(x, 2 * n)))
    return int(np.argmax(np.abs(xc)))


def test_aec3_delays_its_output_by_8_ms_and_no_more() -> None:
    """With something played (the bypass is off), the output is the input 128 samples later."""
    person = _clip("en/LDC93S1.wav")
    hum = (1e-3 * np.sin(np.arange(len(person)) / 7)).astype(np.float32)
    out = _cancel(person, hum)
    assert _lag(out, person) == AEC3_DELAY


def test_a_silent_reference_bypasses_aec3_with_the_same_delay() -> None:
    person = _clip("en/LDC93S1.wav")
    ref = EchoReference()
    ref.played(0, RATE, 0.0, np.zeros(len(person), np.float32))
    aec = EchoCanceller(ref)
    out = np.concatenate([aec.process(person[i : i + 512], 0.0 if i == 0 else None) for i in range(0, len(person), 512)])
    assert aec.bypassed > 0.9 * len(person) / FRAME - QUIET * 100 and aec.frames <= QUIET * 100 + 1
    assert _lag(out, person) == AEC3_DELAY
    assert np.allclose(
        out[AEC3_DELAY + round(QUIET * RATE) + FRAME :], person[round(QUIET * RATE) + FRAME : len(out) - AEC3_DELAY]
    )


def _clip(name: str) -> np.ndarray:
    return np.concatenate([b.samples for b in FileSource(SPEECH / name)])


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20))


# --- the played-audio timeline ------------------------------------------------------------------


def test_reference_returns_what_was_heard_at_that_time_and_silence_around_it() -> None:
    ref = EchoReference()
    played = np.arange(1, 16001, dtype=np.float32) / 16000  # one second, heard from t = 100 s
    for i in range(0, len(played), 512):  # as callbacks deliver it
        ref.played(0, RATE, 100.0 + i / RATE, played[i : i + 512])
    assert np.array_equal(ref.take(100.25, 160), played[4000:4160])
    before = ref.take(99.995, 160)  # 80 samples before the stream began, 80 of it
    assert not before[:80].any() and np.array_equal(before[80:], played[:80])
    assert not ref.take(101.5, 160).any()  # after it: nothing played


def test_played_audio_nobody_takes_is_bounded_and_what_is_kept_stays_in_place() -> None:
    """The microphone lost (being reopened) while the output plays on: the reference holds the last
    seconds only, and they answer at their own times."""
    ref = EchoReference()
    played = np.arange(1, 16001, dtype=np.float32) / 16000
    for second in range(60):  # a minute of 32 ms buffers, nobody taking
        for i in range(0, len(played), 512):
            ref.played(0, RATE, 100.0 + second + i / RATE, played[i : i + 512])
    assert sum(len(piece[3]) for piece in ref._incoming) <= (_UNREAD + 0.1) * RATE
    assert np.array_equal(ref.take(159.25, 160), played[4000:4160])  # the last second, where it was
    assert not ref.take(120.0, 160).any()  # long dropped


def test_a_new_run_is_anchored_afresh_and_the_one_before_it_still_answers() -> None:
    """An underflow (or a new stream) starts a run: its audio is where its anchor says, and the
    echo of what played just before it is still there to cancel."""
    ref = EchoReference()
    ref.played(0, RATE, 100.0, np.ones(16000, np.float32))
    ref.played(1, RATE, 101.05, np.full(16000, 0.5, np.float32))  # after 50 ms without sound
    got = ref.take(100.99, 2400)  # 10 ms of the first run, 50 ms of nothing, then the second
    assert np.all(got[:160] == 1.0) and not got[160:960].any() and np.all(got[960:] == 0.5)
    assert np.all(ref.take(101.5, 160) == 0.5)


def test_a_run_after_an_underflow_starts_no_earlier_than_the_run_before_ends() -> None:
    """After an underflow the device's buffer may be empty: the speaker says "heard from now on at
    the earliest", and the reference is put where it cannot come after its echo."""
    ref = EchoReference()
    ref.played(0, RATE, 100.0, np.ones(16000, np.float32))  # heard until 101.0
    ref.played(1, RATE, 100.95, np.full(1600, 0.5, np.float32), resumed=True)  # said early: overlaps
    assert np.all(ref.take(101.0, 160) == 0.5) and np.all(ref.take(100.98, 160) == 1.0)
    ref.played(2, RATE, 101.3, np.full(1600, 0.25, np.float32), resumed=True)  # after a real gap
    assert np.all(ref.take(101.3, 160) == 0.25) and not ref.take(101.15, 160).any()


def test_reference_at_the_device_rate_is_resampled_to_16k() -> None:
    ref = EchoReference()
    t = np.arange(48000) / 48000
    ref.played(0, 48000, 10.0, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    got = ref.take(10.2, 1600)
    assert ref.played_seconds == pytest.approx(1.0)
    assert _db(got) == pytest.approx(_db(np.float32(0.5) * np.sin(2 * np.pi * 440 * t[:1600])), abs=0.5)


# --- AEC3 in a room -----------------------------------------------------------------------------


def _room(far: np.ndarray, room: Room) -> np.ndarray:
    """What the microphone hears of ``far`` in ``room``: delayed, filtered, with the room's noise."""
    wet = np.convolve(far, room.impulse_response())[: len(far)]
    delayed = np.concatenate([np.zeros(round(room.delay * RATE), np.float32), wet])[: len(far)]
    noise = np.random.default_rng(1).standard_normal(len(far)) * 10 ** (room.noise_db / 20)
    return (delayed + noise).astype(np.float32)


def _cancel(near: np.ndarray, far: np.ndarray, chunk: int = 512) -> np.ndarray:
    """``near`` through the canceller in capture-sized pieces, ``far`` heard on the same clock."""
    ref = EchoReference()
    ref.played(0, RATE, 0.0, far)
    aec = EchoCanceller(ref)
    out = [aec.process(near[:chunk], 0.0)]
    out += [aec.process(near[i : i + chunk]) for i in range(chunk, len(near), chunk)]
    out.append(aec.flush())
    return np.concatenate(out)


@pytest.mark.parametrize("room", [Room(delay=0.04, gain_db=-6), Room(delay=0.15, gain_db=-12)], ids=["40ms-6dB", "150ms-12dB"])
def test_aec3_takes_the_echo_down_to_the_rooms_noise(room: Room) -> None:
    far = 0.5 * np.concatenate([_clip("en/jfk.16k.wav"), _clip("en/LJ050-0131.wav")])
    near = _room(far, room)
    out = _cancel(near, far)
    assert len(out) == len(near)  # nothing lost or added: the audio clock stays true
    after = slice(3 * RATE, len(near))  # converged
    ceiling = _db(near[after]) - room.noise_db  # removing all the echo would leave the noise
    erle = _db(near[after]) - _db(out[after])
    assert erle >= min(25.0, ceiling - 3), (erle, ceiling)


def test_aec3_keeps_the_other_persons_words() -> None:
    """Double talk: someone speaks over the playback after the canceller has converged."""
    far = 0.5 * _clip("en/jfk.16k.wav")
    person = _clip("en/LDC93S1.wav")  # -41 dBFS, under an echo of -32 dBFS
    at = 5 * RATE
    near = _room(far, Room(delay=0.08, gain_db=-10))
    near[at : at + len(person)] += person
    out = _cancel(near, far)
    kept = out[at + AEC3_DELAY : at + AEC3_DELAY + len(person)]
    # what is left over the person's span is their voice (within a few dB), not silence or echo
    assert _db(kept) > _db(person) - 6, (_db(kept), _db(person))
    assert np.corrcoef(kept, person)[0, 1] > 0.6


def _near_end_over_time(
    near: np.ndarray, ref: EchoReference, more: Callable[[float], None] = lambda t: None
) -> list[tuple[float, bool]]:
    """(seconds of capture processed, ``near_end()`` then), as the microphone's thread feeds it;
    ``more(t)`` is called before each piece (to hand over played audio as it is played)."""
    aec = EchoCanceller(ref)
    seen = []
    for i in range(0, len(near), 512):
        more(i / RATE)
        aec.process(near[i : i + 512], 0.0 if i == 0 else None)
        seen.append(((i + 512) / RATE, aec.near_end()))
    return seen


def test_somebody_speaking_over_our_playback_is_told_from_it_within_the_speech_start() -> None:
    far = 0.5 * _clip("en/jfk.16k.wav")
    person = _clip("en/LDC93S1.wav")  # -41 dBFS, under an echo of -32 dBFS, over -60 dBFS of noise
    at = 5 * RATE
    near = _room(far, Room(delay=0.08, gain_db=-10))
    near[at : at + len(person)] += person
    onset = (at + speech_span(person)[0]) / RATE
    ref = EchoReference()
    ref.played(0, RATE, 0.0, far)
    seen = _near_end_over_time(near, ref)
    assert not any(said for t, said in seen if t < onset)  # our own voice alone, 5 s of it
    first = next(t for t, said in seen if said and t >= onset)
    assert first - onset <= NEAR_END_WINDOW, first - onset


@pytest.mark.parametrize("room", [Room(delay=0.04, gain_db=-6), Room(delay=0.3, gain_db=0)], ids=["40ms-6dB", "300ms-0dB"])
def test_our_voice_alone_is_never_taken_for_somebody_speaking_over_it(room: Room) -> None:
    far = 0.5 * np.concatenate([_clip("en/jfk.16k.wav"), _clip("en/LJ050-0131.wav")])
    ref = EchoReference()
    ref.played(0, RATE, 0.0, far)
    assert not any(said for _, said in _near_end_over_time(_room(far, room), ref))


def test_near_end_cannot_be_told_before_the_canceller_has_shown_it_cancels_or_after_a_new_run() -> None:
    far = 0.5 * _clip("en/jfk.16k.wav")
    person = _clip("en/picovoice_leopard_test.wav")
    near = _room(far, Room(delay=0.08, gain_db=-10))
    near[RATE // 2 : RATE // 2 + len(person)] += person[: len(near) - RATE // 2]
    ref = EchoReference()
    ref.played(0, RATE, 0.0, far)
    seen = _near_end_over_time(near, ref)
    assert not any(said for t, said in seen if t < NEAR_END_WINDOW + NEAR_END_BEFORE)  # nothing shown yet
    # a new run (an underflow) just before they speak: AEC3 may have our voice to find again
    near = _room(far, Room(delay=0.08, gain_db=-10))
    at = 5 * RATE
    near[at : at + len(person)] += person[: len(near) - at]
    ref = EchoReference()
    ref.played(0, RATE, 0.0, far[: at - RATE // 2])
    handed = []

    def more(t: float) -> None:
        if t >= at / RATE - 0.6 and not handed:
            ref.played(1, RATE, at / RATE - 0.5, far[at - RATE // 2 :])
            handed.append(t)

    seen = _near_end_over_time(near, ref, more)
    soon = [said for t, said in seen if at / RATE <= t < at / RATE + 1.5]
    assert not any(soon)
    ref = EchoReference()  # the same, played as one run: told within that span
    ref.played(0, RATE, 0.0, far)
    assert any(said for t, said in _near_end_over_time(near, ref) if at / RATE <= t < at / RATE + 1.5)


def test_the_lead_keeps_a_slightly_early_echo_cancellable() -> None:
    """Timestamps put the echo up to LEAD before it really comes: the canceller still converges."""
    far = 0.5 * _clip("en/jfk.16k.wav")
    near = _room(far, Room(delay=0.0, gain_db=-6))
    early = round((LEAD - 0.02) * RATE)
    ref = EchoReference()
    ref.played(0, RATE, early / RATE, far)  # said to be heard later than it is
    aec = EchoCanceller(ref)
    out = np.concatenate([aec.process(near[i : i + FRAME * 3], 0.0 if i == 0 else None) for i in range(0, len(near), FRAME * 3)])
    assert _db(near[3 * RATE :]) - _db(out[3 * RATE : len(near)]) >= 20


# --- the mode -----------------------------------------------------------------------------------


def test_auto_is_aec_on_a_loudspeaker_and_full_on_a_headset() -> None:
    assert echo.unavailable() is None  # .ci/install installs it: the default has to be tested
    assert resolve("auto", "default") == duplex.Resolved(Duplex.AEC)
    assert resolve("auto", "USB Headset Analog Stereo") == duplex.Resolved(Duplex.FULL)
    assert resolve("half", "USB Headset Analog Stereo") == duplex.Resolved(Duplex.HALF)
    assert resolve("full", "default") == duplex.Resolved(Duplex.FULL)


def test_no_canceller_falls_back_to_half_with_a_notice_only_when_aec_was_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(echo, "unavailable", lambda: "the echo canceller is not installed (test)")
    asked = resolve("aec", "default")
    assert asked.mode is Duplex.HALF and asked.notice is not None and "not installed" in asked.notice
    assert resolve("auto", "default") == duplex.Resolved(Duplex.HALF)


def test_the_old_half_duplex_key_names_its_replacement() -> None:
    with pytest.raises(ConfigError) as e:
        config_load.merge(Config(), {"audio": {"half_duplex": False}}, "old.toml")
    message = str(e.value)
    assert "\n" not in message and "unknown key audio.half_duplex" in message and 'duplex = "half"' in message
    with pytest.raises(ConfigError, match=r"audio.duplex: must be one of auto, half, aec, full"):
        config_load.merge(Config(), {"audio": {"duplex": "quarter"}}, "x.toml")


# --- the last guard -----------------------------------------------------------------------------


def _transcript(text: str, uid: int = 1, ended: float | None = None, seconds: float = 2.0) -> Transcript:
    end = time.monotonic() if ended is None else ended
    return Transcript(uid, text, "en", 1.0, "transcribe", 10.0, 10.0 + seconds, end, end, 0.1)


def test_a_transcript_of_what_we_just_said_is_an_echo_and_counted() -> None:
    own = OwnSpeech(window=10.0)
    now = time.monotonic()
    own.said("She had your dark suit in greasy wash water all year.", now - 3, now - 1)
    assert own.is_echo(_transcript("she had your dark suit and greasy wash water"))
    assert not own.is_echo(_transcript("ask not what your country can do for you", uid=2))
    assert not own.is_echo(_transcript("yes", uid=3))  # not a word of ours
    assert not own.is_echo(_transcript("all right then", uid=4))  # a short one must match whole
    assert own.is_echo(_transcript("wash water all year", uid=5))
    assert own.dropped == 2
    assert own.is_echo(_transcript("wash water all year", uid=5)) and own.dropped == 2  # decided once


def test_verdicts_are_kept_for_the_latest_transcripts_only() -> None:
    """A live service runs for weeks: the verdict of each transcript is kept for its second asker
    (the output, seconds later), not for ever."""
    own = OwnSpeech(window=10.0)
    now = time.monotonic()
    own.said("one two three four", now - 2, now - 1)
    for uid in range(KEEP_VERDICTS + 50):
        own.is_echo(_transcript("one two three four", uid=uid))
    assert own.dropped == KEEP_VERDICTS + 50
    assert len(own._verdicts) == KEEP_VERDICTS
    assert own.is_echo(_transcript("one two three four", uid=KEEP_VERDICTS + 49)) and own.dropped == KEEP_VERDICTS + 50


def test_our_words_said_again_after_our_speech_ended_are_theirs() -> None:
    """A "same" route speaks the words it heard: the person may say them again, later."""
    own = OwnSpeech(window=10.0)
    now = time.monotonic()
    own.said("She had your dark suit in greasy wash water all year.", now - 8, now - 5)
    assert not own.is_echo(_transcript("she had your dark suit in greasy wash water all year", seconds=2.5))
    assert own.is_echo(_transcript("she had your dark suit in greasy wash water all year", uid=2, ended=now - 4.5))


def test_speech_older_than_the_window_is_not_matched() -> None:
    own = OwnSpeech(window=5.0)
    now = time.monotonic()
    own.said("She had your dark suit in greasy wash water all year.", now - 20, now - 18)
    assert not own.is_echo(_transcript("she had your dark suit in greasy wash water all year"))
    assert not OwnSpeech(window=0.0).is_echo(_transcript("anything at all"))


def test_echo_filter_drops_an_echo_before_translation_and_passes_the_rest() -> None:
    fed: list[object] = []

    class Translator:
        def feed(self, event):
            fed.append(event)
            yield event

    own = OwnSpeech(window=10.0)
    now = time.monotonic()
    own.said("one two three four", now - 2, now - 1)
    stage = EchoFilter(Translator(), own)
    out = list(stage.feed(_transcript("one two three four", uid=7)))
    assert len(out) == 1 and isinstance(out[0], Discarded) and out[0].utterance_id == 7 and not fed
    other = _transcript("five six seven eight", uid=8)
    assert list(stage.feed(other)) == [other] and fed == [other]
