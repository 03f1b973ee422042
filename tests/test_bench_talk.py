"""The long talk the bench builds from corpus clips (real recordings, joined with gaps), the
figures that say whether the pipeline kept up over it (pure functions of a clip run), the
ear-voice lag on built event lists, and one real tiny.en run of a short continuous talk."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from translator.audio.files import FileSource
from translator.audio.samples import speech_span
from translator.bench.corpus import ManifestClip, read_manifest, select_clips
from translator.bench.runner import ClipRun
from translator.bench.spans import Span, SpanLog
from translator.bench.talk import LEAD, MARGIN, PAUSE, Sentence, Talk, ear_voice_lags, figures, make_talk
from translator.cli import main
from translator.config import VadSettings
from translator.errors import InputError
from translator.events import SAMPLE_RATE, Event, SpeechChunk, SpeechPaused, Translation, UtteranceEnded
from translator.transcript import UtteranceRecord

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "speech"


def _clips(*globs: str) -> list[ManifestClip]:
    return select_clips(read_manifest(SPEECH), list(globs), english_only=False)


def _samples(path: Path) -> np.ndarray:
    return np.concatenate([b.samples for b in FileSource(path)])


def _spoken(path: Path) -> np.ndarray:
    """The clip as the talk holds it: from its first word to its last, MARGIN either side."""
    x = _samples(path)
    a, b = speech_span(x)
    margin = round(MARGIN * SAMPLE_RATE)
    return x[max(0, a - margin) : b + margin]


def test_a_talk_repeats_the_clips_with_pauses_to_the_length_asked(tmp_path: Path) -> None:
    clips = _clips("en/LDC93S1.wav", "en/LJ050-0131.wav")
    talk = make_talk(clips, 25.0, tmp_path).clip
    audio = _samples(talk.path)
    assert talk.seconds >= 25.0 and abs(len(audio) / SAMPLE_RATE - talk.seconds) < 0.01
    # LDC (2.7 s spoken), LJ (7.4 s), LDC, LJ, ... each followed by a pause: four clips reach 25 s
    assert talk.transcript.count("greasy wash water") == 2 and talk.transcript.count("formal review") == 2
    lead = round(LEAD * SAMPLE_RATE)
    first = _spoken(clips[0].path)
    assert len(first) < len(_samples(clips[0].path)) - 0.1 * SAMPLE_RATE  # the recording's silences are cut
    assert np.abs(audio[:lead]).max() == 0.0
    assert np.abs(audio[lead : lead + len(first)] - first).max() < 1e-3  # the recording itself, as 16-bit PCM
    pause = audio[lead + len(first) : lead + len(first) + round(PAUSE * SAMPLE_RATE)]
    assert np.abs(pause).max() == 0.0
    assert talk.lang == "en" and "4 clips" in talk.file


def test_a_talk_with_a_short_gap_knows_where_each_clip_ends_to_the_sample(tmp_path: Path) -> None:
    clips = _clips("en/LDC93S1.wav", "en/uberi_english.wav")
    talk = make_talk(clips, 8.0, tmp_path, gap=0.2)
    audio = _samples(talk.clip.path)
    gap = round(0.2 * SAMPLE_RATE)
    spoken = [_spoken(c.path) for c in clips]
    # 0.5 s, LDC (2.8 s spoken) + 0.2, uberi (2.6 s) + 0.2, LDC again: three clips reach 8 s
    assert talk.gap == 0.2 and len(talk.sentences) == 3 and "3 clips" in talk.clip.file
    start = round(LEAD * SAMPLE_RATE)
    for sentence, x, clip in zip(talk.sentences, [*spoken, spoken[0]], [*clips, clips[0]], strict=True):
        assert sentence.end * SAMPLE_RATE == start + len(x)  # exact: the sample where the clip's gap begins
        assert sentence.text == clip.transcript
        assert np.abs(audio[start : start + len(x)] - x).max() < 1e-3
        assert np.abs(audio[start + len(x) : start + len(x) + gap]).max() == 0.0
        start += len(x) + gap
    assert len(audio) == start


def test_a_talk_is_in_one_language(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--talk: the clips are in 2 languages"):
        make_talk(_clips("en/LDC93S1.wav", "de/*"), 10.0, tmp_path)


# --- the ear-voice lag on built events ----------------------------------------------------------

_AUDIO = np.zeros(0, np.float32)
T0 = 1000.0
"""Wall time of audio time 0 in the built runs."""


def _utterance(uid: int, start: float, t_end: float, first_audio: float | None, text: str = "") -> list[Event]:
    """An utterance's end, its translation of ``text`` (the words recognised), and unless None its
    first translated audio at wall ``T0 + first_audio``."""
    wall = T0 + t_end + 0.4
    ended: list[Event] = [
        UtteranceEnded(uid, _AUDIO, start, t_end, T0 + t_end, wall),
        Translation(uid, text, "en", "texto", "es", "fake", start, t_end, T0 + t_end, wall, 0.0),
    ]
    if first_audio is None:
        return ended
    chunks = [SpeechChunk(uid, _AUDIO, 22050, i, "texto", T0 + t_end, T0 + first_audio + i, "joe") for i in range(2)]
    return [*ended, *chunks]


def _lags(events: list[Event], *sentences: tuple[float, str]) -> list[float | None]:
    return ear_voice_lags(events, T0, [Sentence(*s) for s in sentences], "en", lead_in=VadSettings().pre_roll)


def test_a_sentence_is_carried_by_the_utterance_that_reaches_its_end() -> None:
    # clip ends at 3.0 and 6.0; the first sentence's last words are cut off into a later segment
    # (the segment 0-2.0 ends a second before it), the second ends with its recording's trailing
    # silence (t_end 5.7, within the tolerance of 6.0)
    events = [
        *_utterance(1, 0.0, 2.0, 3.5, "She had your dark suit"),
        *_utterance(2, 2.0, 4.1, 5.0, "in greasy wash water all year. Unless"),
        *_utterance(3, 4.3, 5.7, 7.1, "a system is established."),
    ]
    sentences = [(3.0, "She had your dark suit in greasy wash water all year."), (6.0, "unless a system is established")]
    assert _lags(events, *sentences) == [pytest.approx(2.0), pytest.approx(1.1)]


def test_the_next_clips_pre_roll_reaching_into_a_short_gap_does_not_carry_the_sentence() -> None:
    # clip ends at 3.0 with soft last words the segmenter never heard (its utterance ended at
    # 1.5); the next clip's utterance starts at 2.9, its pre-roll reaching back across the 0.2 s gap
    events = [*_utterance(1, 0.0, 1.5, 2.3, "one two"), *_utterance(2, 2.9, 6.0, 7.0, "three four")]
    assert _lags(events, (3.0, "one two, two three"), (6.2, "three four")) == [None, pytest.approx(0.8)]


def test_a_segment_that_ends_with_its_sentence_carries_it_not_the_next_one() -> None:
    # sentence commits in one long utterance: the first segment's words end 0.45 s before the
    # clip's recording does, and the next segment starts there, well before the clip's end
    events = [*_utterance(1, 0.0, 2.55, 3.6, "For your country."), *_utterance(2, 2.55, 5.9, 6.9, "Mr. Quilter is")]
    sentences = [(3.0, "ask what you can do for your country."), (6.0, "Mr. Quilter is")]
    assert _lags(events, *sentences) == [pytest.approx(0.6), pytest.approx(0.9)]


def test_two_sentences_in_one_utterance_wait_for_it_both() -> None:
    # continuous speech: clips end at 3.0 and 6.0, the segmenter heard one utterance 0-6.9
    events = [*_utterance(1, 0.0, 6.9, 8.0, "In this regard, and so my fellow Americans.")]
    sentences = [(3.0, "in this regard"), (6.0, "And so my fellow Americans,"), (9.0, "ask not")]
    assert _lags(events, *sentences) == [pytest.approx(5.0), pytest.approx(2.0), None]


def test_a_sentence_whose_words_never_come_out_is_missing() -> None:
    dropped = _utterance(3, 6.1, 8.9, 9.5, "Unless a system is established")  # the clip's first sentence lost
    events = [
        *_utterance(1, 0.0, 2.9, None, "one two three"),  # heard, but nothing spoken (failed, not translated)
        *_utterance(2, 3.1, 5.9, 6.8, "1. 2. 3."),  # the digits as the model writes them are the same words
        *dropped,
        *_utterance(4, 12.5, 14.8, 15.5, "one two three"),  # starts after the fourth clip's end (12.0)
        *_utterance(5, 15.2, 17.8, 18.5, ""),  # nothing recognised
    ]
    # the fourth clip was never heard: the last utterance before its end ended 3 s before it
    three, unless = "one two three", "She had your dark suit in greasy wash water all year. unless a system is"
    sentences = [(3.0, three), (6.0, three), (9.0, unless), (12.0, "all year."), (15.0, three), (18.0, three)]
    assert _lags(events, *sentences) == [None, pytest.approx(0.8), pytest.approx(0.5), None, pytest.approx(0.5), None]
    # the words of the sentence's end are what is looked for: a transcript without them is no carrier
    assert _lags(dropped, (9.0, "She had your dark suit in greasy wash water all year.")) == [None]


# --- the figures over a run ---------------------------------------------------------------------


def _record(uid: int, asr_final: float | None, s2s: float | None, text: str = "x") -> UtteranceRecord:
    return UtteranceRecord(uid, 0.0, 1.0, "en", text, "es", "x", "fake", "", asr_final, asr_final, s2s, (), 0.1, 0.0, 0.0, False)


def _run(seconds: float, transcript: str, records: list[UtteranceRecord], events: list[Event], log: SpanLog) -> ClipRun:
    clip = ManifestClip("talk", SPEECH / "talk.wav", "en", seconds, transcript)
    return ClipRun(clip, 0, records, log, T0, seconds, events, 0, 0, 0.0, {})


def test_the_figures_compare_the_first_and_the_last_quarter() -> None:
    ends = {1: 10.0, 2: 50.0, 3: 85.0, 4: 95.0}
    events: list[Event] = [UtteranceEnded(uid, _AUDIO, t - 1, t, 0.0, 0.0) for uid, t in ends.items()]
    events.append(SpeechPaused(4, _AUDIO, 94.0, 95.0, 0.0, 200.0))
    spans = SpanLog()
    spans.spans.append(Span("asr", "SpeechPaused", 4, 200.3, 200.5))
    records = [_record(1, 0.4, 0.6), _record(2, 0.5, 0.7), _record(3, None, None), _record(4, 0.9, 1.4)]
    run = _run(100.0, "", records, events, spans)
    f = figures(run, Talk(run.clip, PAUSE, ()), VadSettings())
    assert (f["utterances_ended"], f["utterances_finalised"]) == (4, 3)
    assert f["first_quarter"] == {"asr_final_median": 0.4, "speech_to_speech_median": 0.6}
    assert f["last_quarter"] == {"asr_final_median": 0.9, "speech_to_speech_median": 1.4}
    assert f["final_wait_max"] == pytest.approx(0.3)
    assert f["speech"] == "pauses" and f["gap"] == PAUSE


def test_the_figures_of_continuous_speech_hold_the_lag_against_its_targets_and_the_error_rate() -> None:
    texts = ["the cat sat", "on the mat", "very"]
    ends = [(0.0, 2.9, 4.0), (3.1, 5.9, 10.0), (6.1, 8.9, None)]
    events = [e for uid, (text, times) in enumerate(zip(texts, ends, strict=True), 1) for e in _utterance(uid, *times, text)]
    records = [_record(1, 0.5, 1.1, texts[0]), _record(2, 0.5, 4.1, texts[1]), _record(3, 0.5, None, texts[2])]
    run = _run(9.2, "The cat sat. On the mat. Very well.", records, events, SpanLog())
    sentences = (Sentence(3.0, "The cat sat."), Sentence(6.0, "On the mat."), Sentence(9.0, "Very well."))
    f = figures(run, Talk(run.clip, 0.2, sentences), VadSettings())
    assert f["speech"] == "continuous" and f["gap"] == 0.2
    assert f["metric"] == "wer" and f["error_rate"] == pytest.approx(1 / 8, abs=1e-4)  # "well" lost
    lag = f["ear_voice_lag"]
    assert (lag["sentences"], lag["n"], lag["missing"]) == (3, 2, 1)
    assert lag["median"] == pytest.approx(2.5) and lag["max"] == pytest.approx(4.0) and 3.5 < lag["p95"] <= 4.0
    assert (lag["target_median"], lag["target_p95"]) == (2.0, 3.5)
    assert (lag["median_met"], lag["p95_met"]) == (False, False)
    assert lag["per_sentence"] == [{"end": 3.0, "lag": 1.0}, {"end": 6.0, "lag": 4.0}, {"end": 9.0, "lag": None}]
    # the same talk with pauses: the lag is measured, the continuous-speech targets do not apply
    paused = figures(run, Talk(run.clip, PAUSE, sentences), VadSettings())["ear_voice_lag"]
    assert paused["median"] == lag["median"] and (paused["median_met"], paused["p95_met"]) == (None, None)


# --- a real run ---------------------------------------------------------------------------------


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_bench_measures_the_ear_voice_lag_of_a_continuous_talk(tmp_path: Path, corpus: Path) -> None:
    """Three English clips with 0.2 s gaps through tiny.en at real-time pace: a lag per clip end,
    plausible (after the words were spoken, within the talk's length plus the endpoint and the
    final's compute), and the talk's error rate against the joined references."""
    report = tmp_path / "talk.json"
    argv = ["bench", "--corpus", str(corpus), "--asr", "tiny.en", "--clips", "en/LDC93S1.wav", "en/picovoice_leopard_test.wav"]
    argv += ["--talk", "10", "--gap", "0.2", "--idle", "0", "--baseline", "none", "--quiet", "--json", str(report)]
    with redirect_stdout(io.StringIO()) as printed:
        assert main(argv) == 0
    assert "ear-voice lag" in printed.getvalue() and "continuous speech" in printed.getvalue(), printed.getvalue()
    r = json.loads(report.read_text(encoding="utf-8"))
    talk = r["talk"]
    assert talk["speech"] == "continuous" and talk["gap"] == 0.2 and r["command"]["clips"] == ["talk of 3 clips (12 s)"]
    lag = talk["ear_voice_lag"]
    assert lag["sentences"] == 3 and lag["n"] + lag["missing"] == 3 and lag["n"] >= 2, lag
    assert all(_finite(lag[k]) for k in ("median", "p95", "max"))
    assert 0.0 < lag["median"] <= lag["p95"] <= lag["max"] < talk["seconds"]
    assert isinstance(lag["median_met"], bool) and isinstance(lag["p95_met"], bool)
    assert [s["end"] for s in lag["per_sentence"]] == sorted(s["end"] for s in lag["per_sentence"])
    assert talk["metric"] == "wer" and 0.0 <= talk["error_rate"] < 0.5
    assert talk["error_rate"] == pytest.approx(r["summary"]["accuracy"]["wer"], abs=1e-4)


def test_bench_gap_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--gap", "0.2"]) == 78
    assert "--gap: only with --talk" in capsys.readouterr().err
    assert main(["bench", "--talk", "30", "--gap", "0.05"]) == 78
    err = capsys.readouterr().err
    assert "--gap: give 0.1 to 5 seconds, got 0.05" in err and len(err.strip().splitlines()) == 1
