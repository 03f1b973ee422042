"""Segmenter: the real Silero model on real recordings, fed in odd block sizes."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
import soundfile as sf
from conftest import clip

from translator.audio.files import FileSource
from translator.audio.samples import speech_span
from translator.config import VadSettings
from translator.events import SAMPLE_RATE, AudioBlock, SpeechGrowing, SpeechPaused, SpeechStarted, UtteranceEnded
from translator.stages.silero import FRAME, SileroVad
from translator.stages.vad import SILENT_DB, Segmenter
from translator.whisper_api import vad_model

SR = SAMPLE_RATE
WALL0 = 1000.0
"""Block ``wall`` = WALL0 + block index: distinct from audio time, so a mixed-up field shows."""


def load(name: str) -> np.ndarray:
    c = clip(name)
    assert c.sample_rate == SR
    samples, sr = sf.read(c.path, dtype="float32")
    assert sr == SR and samples.ndim == 1
    return samples


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SR), dtype=np.float32)


def trimmed(name: str) -> np.ndarray:
    a, b = speech_span(load(name))
    return load(name)[a:b]


def blocks(x: np.ndarray, size: int, origin: float = 0.0) -> list[AudioBlock]:
    return [AudioBlock(x[i : i + size], origin + i / SR, WALL0 + k) for k, i in enumerate(range(0, len(x), size))]


def run(x: np.ndarray, size: int = 1000, settings: VadSettings = VadSettings(), origin: float = 0.0) -> list:
    seg = Segmenter(settings)
    events = [e for block in blocks(x, size, origin) for e in seg.feed(block)]
    return events + list(seg.flush())


def of(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def sample(t: float, origin: float = 0.0) -> int:
    s = (t - origin) * SR
    assert abs(s - round(s)) < 1e-6, "event times fall on sample boundaries"
    return round(s)


def block_wall(index: int, size: int = 1000) -> float:
    """Wall of the block (as made by ``blocks``) that delivered sample ``index``."""
    return WALL0 + index // size


@pytest.fixture(scope="module")
def ldc() -> np.ndarray:
    return load("en/LDC93S1.wav")


def test_streaming_probabilities_match_whole_file_vad(ldc):
    n = len(ldc) // FRAME * FRAME
    reference = vad_model()(ldc[:n]).ravel()
    vad = SileroVad()
    probs = [vad.prob(ldc[i : i + FRAME]) for i in range(0, n, FRAME)]
    np.testing.assert_allclose(probs, reference, atol=1e-5)
    assert max(probs) > 0.9 and min(probs) < 0.1

    vad.reset()
    assert vad.prob(ldc[:FRAME]) == pytest.approx(reference[0], abs=1e-6)
    with pytest.raises(ValueError, match="512"):
        vad.prob(ldc[:1000])


def test_silence_and_low_noise_give_no_events():
    seg = Segmenter()
    zeros = silence(3)
    assert [e for b in blocks(zeros, 1000) for e in seg.feed(b)] == []
    assert list(seg.flush()) == []
    assert seg.level == SILENT_DB

    noise = (np.random.default_rng(0).standard_normal(3 * SR) * 10 ** (-50 / 20)).astype(np.float32)
    seg = Segmenter()
    assert [e for b in blocks(noise, 1000) for e in seg.feed(b)] == []
    assert seg.level == pytest.approx(-50, abs=1.5)
    assert seg.last_prob < 0.5 and not seg.in_speech
    assert list(seg.flush()) == []


def test_one_sentence_is_one_utterance(ldc):
    x = np.concatenate([silence(1), ldc, silence(1)])
    onset, offset = speech_span(x)
    events = run(x)

    kinds = [type(e) for e in events]
    growing = of(events, SpeechGrowing)
    assert kinds == [SpeechStarted] + [SpeechGrowing] * len(growing) + [SpeechPaused, UtteranceEnded]
    assert len(growing) >= 3
    started, paused, ended = events[0], events[-2], events[-1]
    assert {e.utterance_id for e in events} == {1}

    cfg = VadSettings()
    start = sample(started.start)
    assert onset - round((cfg.pre_roll + 0.1) * SR) <= start <= onset
    assert ended.start == started.start and not ended.cut
    assert abs(ended.t_end - offset / SR) < 0.15
    t_end = sample(ended.t_end)
    np.testing.assert_array_equal(ended.audio, x[start : t_end + round(cfg.post_roll * SR)])
    assert ended.audio is paused.audio and ended.t_end == paused.t_end

    # Latency bookkeeping: walls are those of the blocks that delivered the frames concerned.
    assert ended.t_end_wall == block_wall(t_end - 1)
    endpoint_frame_end = t_end + math.ceil(cfg.endpoint * SR / FRAME) * FRAME
    assert ended.wall == block_wall(endpoint_frame_end - 1)

    # Partials: each a longer prefix of the final audio, about partial_interval apart.
    for g in growing:
        assert g.start == started.start
        np.testing.assert_array_equal(g.audio, x[start : sample(g.end)])
    gaps = np.diff([g.end for g in growing])
    assert np.all((gaps >= cfg.partial_interval) & (gaps < cfg.partial_interval + FRAME / SR + 1e-9))


def test_two_sentences_two_utterances(ldc):
    other = load("en/picovoice_leopard_test.wav")
    x = np.concatenate([silence(1), ldc, silence(1.5), other, silence(1)])
    events = run(x, origin=10.0)
    ended = of(events, UtteranceEnded)
    assert [e.utterance_id for e in of(events, SpeechStarted)] == [1, 2]
    assert [e.utterance_id for e in ended] == [1, 2]
    first_end = sample(ended[0].start, 10.0) + len(ended[0].audio)
    assert first_end <= sample(ended[1].start, 10.0)
    second_onset = len(silence(1)) + len(ldc) + len(silence(1.5)) + speech_span(other)[0]
    assert sample(ended[1].start, 10.0) <= second_onset
    assert abs(ended[0].t_end - (10.0 + 1 + speech_span(ldc)[1] / SR)) < 0.15

    # A pre-roll longer than the gap stops where the previous utterance's audio ended.
    x = np.concatenate([silence(1), ldc, silence(0.8), trimmed("en/picovoice_leopard_test.wav"), silence(1)])
    first, second = of(run(x, settings=VadSettings(pre_roll=1.0)), UtteranceEnded)
    assert sample(second.start) == sample(first.start) + len(first.audio)


def test_short_gap_is_not_a_pause_longer_gap_is_not_an_endpoint(ldc):
    cut = round(1.5 * SR)  # inside the sentence
    # The app's settings: a pause is 0.1 s of silence, an endpoint 0.4 s.
    short = np.concatenate([silence(1), ldc[:cut], silence(0.05), ldc[cut:], silence(1)])
    events = run(short)
    assert len(of(events, UtteranceEnded)) == 1
    assert len(of(events, SpeechPaused)) == 1  # only the one before the endpoint

    longer = np.concatenate([silence(1), ldc[:cut], silence(0.25), ldc[cut:], silence(1)])
    events = run(longer)
    paused, ended = of(events, SpeechPaused), of(events, UtteranceEnded)
    assert len(ended) == 1 and len(paused) == 2
    assert {e.utterance_id for e in events} == {1}
    gap_at = 1 + cut / SR
    assert gap_at - 0.2 < paused[0].t_end <= gap_at + FRAME / SR
    assert len(paused[0].audio) < len(ended[0].audio)
    # Speech resumed after the first pause: partials carry on, then the endpoint reuses the last pause.
    assert any(g.end > paused[0].t_end + 0.3 for g in of(events, SpeechGrowing))
    assert ended[0].audio is paused[1].audio and ended[0].t_end == paused[1].t_end
    assert ended[0].t_end_wall == paused[1].t_end_wall


def test_length_cap_cuts_without_losing_or_repeating_samples():
    names = [
        "en/LDC93S1.wav",
        "en/picovoice_leopard_test.wav",
        "it/picovoice_leopard_test_it.wav",
        "de/picovoice_leopard_test_de.wav",
        "en/LDC93S1.wav",
        "en/picovoice_leopard_test.wav",
    ]
    speech = np.concatenate([trimmed(n) for n in names])
    assert len(speech) > 22 * SR
    lead = len(silence(0.5))
    x = np.concatenate([silence(0.5), speech, silence(1)])
    settings = VadSettings(max_utterance=10)
    events = run(x, settings=settings)

    ended = of(events, UtteranceEnded)
    assert [e.utterance_id for e in ended] == list(range(1, len(ended) + 1))
    assert [e.utterance_id for e in of(events, SpeechStarted)] == [e.utterance_id for e in ended]
    assert sum(e.cut for e in ended) >= 2 and not ended[-1].cut
    spans = []
    for e in ended:
        a = sample(e.start)
        assert len(e.audio) <= 10 * SR
        np.testing.assert_array_equal(e.audio, x[a : a + len(e.audio)])
        assert e.start < e.t_end <= e.start + len(e.audio) / SR
        spans.append((a, a + len(e.audio)))
    for ((_, b0), (a1, _)), e in zip(pairwise(spans), ended[:-1], strict=True):
        if e.cut:
            assert a1 == b0  # the next utterance takes up exactly where the cut one stopped
        else:
            assert a1 >= b0
    assert spans[0][0] <= lead and spans[-1][1] >= lead + len(speech)
    # Within the speech, every sample belongs to exactly one utterance (no endpoint silence inside).
    covered = np.zeros(len(x), dtype=int)
    for a, b in spans:
        covered[a:b] += 1
    assert covered.max() == 1
    assert covered[lead : lead + len(speech)].mean() > 0.97


def test_cap_in_a_pause_ends_where_the_pause_did():
    names = ["en/picovoice_leopard_test.wav", "it/picovoice_leopard_test_it.wav", "en/LDC93S1.wav"]
    speech = np.concatenate([trimmed(n) for n in names])[: round(9.6 * SR)]
    after = trimmed("de/picovoice_leopard_test_de.wav")
    # The cap (start + 10 s, start ~0.3 s) falls inside the 0.6 s gap, after SpeechPaused; a 0.2 s
    # pause keeps the German sentence's own short gaps from pausing it.
    x = np.concatenate([silence(0.5), speech, silence(0.6), after, silence(1.5)])
    events = run(x, settings=VadSettings(max_utterance=10, pause=0.2, endpoint=1.0))

    assert [(type(e), e.utterance_id) for e in events if not isinstance(e, SpeechGrowing)] == [
        (SpeechStarted, 1),
        (SpeechPaused, 1),
        (UtteranceEnded, 1),
        (SpeechStarted, 2),
        (SpeechPaused, 2),
        (UtteranceEnded, 2),
    ]
    paused, first, second = of(events, SpeechPaused)[0], *of(events, UtteranceEnded)
    assert first.cut and first.audio is paused.audio and first.t_end == paused.t_end
    gap_start = len(silence(0.5)) + len(speech)
    assert abs(first.t_end - gap_start / SR) < 0.15
    assert sample(first.start) + len(first.audio) <= sample(second.start)
    assert sample(second.start) <= gap_start + len(silence(0.6)) + speech_span(after)[0]


def test_cap_in_a_short_gap_leaves_the_silence_for_the_next_utterance():
    names = ["en/picovoice_leopard_test.wav", "it/picovoice_leopard_test_it.wav", "en/LDC93S1.wav"]
    full = np.concatenate([trimmed(n) for n in names])
    after = trimmed("de/picovoice_leopard_test_de.wav")
    announced_late = 0
    # Speech lengths that put the cap inside a 0.15 s gap (no SpeechPaused yet: the pause is 0.2 s).
    for seconds in (9.66, 9.70, 9.76, 9.80):
        speech = full[: round(seconds * SR)]
        x = np.concatenate([silence(0.5), speech, silence(0.15), after, silence(1.5)])
        events = run(x, settings=VadSettings(max_utterance=10, pause=0.2, endpoint=1.0))
        first, second = of(events, UtteranceEnded)
        started = of(events, SpeechStarted)
        assert [e.utterance_id for e in started] == [1, 2]
        assert first.cut and not second.cut and len(first.audio) <= 10 * SR
        cut = sample(first.start) + len(first.audio)
        assert sample(second.start) >= cut
        np.testing.assert_array_equal(second.audio, x[sample(second.start) : sample(second.start) + len(second.audio)])
        assert second.t_end > (len(x) - len(silence(1.5))) / SR - 0.15
        announced_late += started[1].wall > first.wall  # the rest was silence: wait for speech
    assert announced_late >= 2


def test_same_boundaries_whatever_the_block_size():
    x = np.concatenate([silence(0.7), load("en/jfk.16k.wav"), silence(1)])

    def boundaries(size: int) -> list[tuple]:
        return [
            (
                type(e).__name__,
                e.utterance_id,
                e.start,
                getattr(e, "t_end", None),
                getattr(e, "end", None),
                len(getattr(e, "audio", ())),
                getattr(e, "cut", None),
            )
            for e in run(x, size=size, settings=VadSettings(max_utterance=4))
        ]

    small, odd = boundaries(512), boundaries(1337)
    assert small == odd
    assert sum(1 for b in small if b[0] == "UtteranceEnded") >= 3
    assert sum(1 for b in small if b[0] == "SpeechGrowing") >= 5


def test_flush_finishes_speech_but_drops_blips(ldc):
    seg = Segmenter()
    x = np.concatenate([silence(1), ldc[: round(2.5 * SR)]])  # ends mid-sentence
    during = [e for b in blocks(x, 1000) for e in seg.feed(b)]
    assert seg.in_speech and not of(during, UtteranceEnded)
    (ended,) = list(seg.flush(wall=5000.0))
    assert isinstance(ended, UtteranceEnded) and ended.wall == 5000.0 and ended.utterance_id == 1
    assert ended.t_end > 3.2 and not seg.in_speech

    # 0.6 s of speech: an utterance with no minimum, a blip below a 1 s minimum.
    a, _ = speech_span(ldc)
    snippet = np.concatenate([silence(1), ldc[a : a + round(0.6 * SR)], silence(1)])
    assert len(of(run(snippet, settings=VadSettings(min_speech=0)), UtteranceEnded)) == 1
    assert run(snippet, settings=VadSettings(min_speech=1.0)) == []
    assert run(snippet[: -len(silence(1))], settings=VadSettings(min_speech=1.0)) == []


def test_ids_keep_counting_and_memory_stays_bounded(ldc):
    seg = Segmenter()
    x = np.concatenate([silence(1), ldc, silence(1)])
    first = [e for b in blocks(x, 1000) for e in seg.feed(b)]
    seg.reset()
    again = [e for b in blocks(x, 1000) for e in seg.feed(b)]
    assert [e.utterance_id for e in of(again, UtteranceEnded)] == [2]
    assert [(type(e), e.start) for e in again] == [(type(e), e.start) for e in first]  # same clock, same cuts

    for b in blocks(silence(30), 4000, origin=len(x) / SR):
        assert list(seg.feed(b)) == []
    held = seg._buf.end - seg._buf._first  # white-box: silence keeps only the pre-roll (and a partial frame)
    assert held <= round(VadSettings().pre_roll * SR) + FRAME


class ScriptedVad(SileroVad):
    """Plays back given frame probabilities, to pin the policy down frame by frame."""

    def __init__(self, probs: list[float]) -> None:
        self.probs = list(probs)
        self.reset()

    def reset(self) -> None:
        self.i = 0

    def prob(self, chunk512: np.ndarray) -> float:
        assert chunk512.shape == (FRAME,)
        self.i += 1
        return self.probs[self.i - 1] if self.i <= len(self.probs) else 0.0


def scripted(probs: list[float], settings: VadSettings = VadSettings()) -> list:
    seg = Segmenter(settings, vad=ScriptedVad(probs))
    x = silence((len(probs) + 40) * FRAME / SR)
    return [e for b in blocks(x, 700) for e in seg.feed(b)] + list(seg.flush())


def test_hysteresis_keeps_weak_tails_but_never_starts_speech():
    (ended,) = of(scripted([0.0] * 10 + [0.9] * 10 + [0.4] * 10), UtteranceEnded)
    assert ended.t_end == 30 * FRAME / SR
    assert scripted([0.0] * 10 + [0.4] * 30) == []
    (ended,) = of(scripted([0.9] * 10 + [0.4] * 10, VadSettings(neg_threshold=0.5)), UtteranceEnded)
    assert ended.t_end == 10 * FRAME / SR


def test_blips_add_up_until_an_endpoint_separates_them():
    # min_speech 0.25 s = 8 frames; pause 0.1 s < 10 frames < endpoint 0.4 s (12.5 frames) < 20 frames.
    blip = [0.0] * 10 + [0.9] * 3
    (started,) = of(scripted(blip + [0.1] * 10 + [0.9] * 6), SpeechStarted)
    assert started.start == pytest.approx((10 * FRAME - 0.2 * SR) / SR)
    assert scripted(blip + [0.1] * 20 + [0.9] * 6) == []


def test_a_bare_segmenter_is_the_apps_segmenter():
    """``Segmenter()`` runs on the ``[vad]`` defaults: pause 0.1 s, endpoint 0.4 s, pre-roll 0.2 s,
    post-roll 0.1 s, frame by frame (one block per frame, its wall the frame's index)."""
    seg = Segmenter(vad=ScriptedVad([0.0] * 10 + [0.9] * 20))
    assert seg.settings == VadSettings()
    x = silence(60 * FRAME / SR)
    events = [e for k, i in enumerate(range(0, len(x), FRAME)) for e in seg.feed(AudioBlock(x[i : i + FRAME], i / SR, k))]
    started, paused, ended = (e for e in events if not isinstance(e, SpeechGrowing))
    assert isinstance(started, SpeechStarted) and started.start == (10 * FRAME - 0.2 * SR) / SR
    # The last voiced frame is frame 29; 0.1 s of silence takes 4 frames, 0.4 s takes 13.
    assert isinstance(paused, SpeechPaused) and paused.wall == 29 + 4 and paused.t_end == 30 * FRAME / SR
    assert len(paused.audio) == 30 * FRAME + round(0.1 * SR) - round(10 * FRAME - 0.2 * SR)
    assert isinstance(ended, UtteranceEnded) and ended.wall == 29 + 13 and ended.audio is paused.audio


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pause": 0.5, "endpoint": 0.3}, "endpoint"),
        ({"threshold": 1.2}, "threshold"),
        ({"threshold": 0.5, "neg_threshold": 0.6}, "neg_threshold"),
        ({"post_roll": 0.3}, "post_roll"),
        ({"max_utterance": 1.0}, "max_utterance"),
        ({"partial_interval": 0}, "partial_interval"),
        ({"min_speech": -0.1}, "min_speech"),
        ({"pre_roll": float("nan")}, "pre_roll"),
    ],
)
def test_settings_validation(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}: "):
        VadSettings(**kwargs)


def test_release_threshold_follows_the_threshold_unless_set():
    assert VadSettings().release == pytest.approx(0.35)
    assert VadSettings(threshold=0.3).release == pytest.approx(0.15)
    assert VadSettings(neg_threshold=0.2).release == 0.2


def _probs(vad: SileroVad, x: np.ndarray) -> np.ndarray:
    return np.array([vad.prob(x[i : i + FRAME]) for i in range(0, len(x) - FRAME + 1, FRAME)])


def test_speech_after_long_digital_silence_scores_as_on_a_fresh_stream() -> None:
    """30 s of exact zeros (a muted source) used to wear the model's state down: the first words
    of jfk.flac then scored 0.43 on average instead of 0.71. Zeros now leave it as new."""
    jfk = np.concatenate([b.samples for b in FileSource(clip("en/jfk.flac").path)])
    words = jfk[: 2 * SR // FRAME * FRAME]
    fresh = _probs(SileroVad(), words)
    vad = SileroVad()
    assert not _probs(vad, silence(30.0)[: 30 * SR // FRAME * FRAME]).any()
    np.testing.assert_allclose(_probs(vad, words), fresh, atol=1e-5)
    assert (fresh >= 0.5).sum() > len(fresh) // 2  # the check above compares real speech


def test_speech_after_a_guard_mute_is_detected_from_its_first_word() -> None:
    """The half-duplex guard feeds zeros while our speech plays: the next utterance starts where
    it would on a stream that began with it."""
    x = trimmed("en/LDC93S1.wav")
    lead = silence(0.5)
    alone = of(run(np.concatenate([lead, x, silence(1.0)])), SpeechStarted)
    muted = np.concatenate([lead, x, silence(30.0), lead, x, silence(1.0)])
    after = of(run(muted), SpeechStarted)
    offset = (len(lead) + len(x) + round(30.0 * SR)) / SR
    assert len(alone) == 1 and len(after) == 2, (alone, after)
    assert abs((after[1].start - offset) - alone[0].start) <= FRAME / SR, (after[1].start - offset, alone[0].start)


def test_silence_says_how_long_the_speaker_has_been_quiet() -> None:
    """Frame by frame on real speech: 0 outside an utterance and on voiced frames, growing in the
    gaps, at least the pause when the pause is announced (what the caption scheduler reads)."""
    seg = Segmenter(VadSettings())
    seen = []
    for block in blocks(np.concatenate([silence(0.5), load("en/LDC93S1.wav"), silence(1.0)]), FRAME):
        events = list(seg.feed(block))
        seen.append(seg.silence)
        if of(events, SpeechPaused):
            assert seg.silence >= VadSettings().pause
        if not seg.in_speech:
            assert seg.silence == 0.0
    assert seen[0] == 0.0 and seen[-1] == 0.0
    quiet = [s for s in seen if s > 0]
    assert quiet and min(quiet) == pytest.approx(FRAME / SR) and any(s == 0.0 for s in seen[20:60])
