"""The long talk the bench builds from corpus clips (real recordings, joined with pauses), and the
figures that say whether the pipeline kept up over it (pure functions of a clip run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from translator.audio.files import FileSource
from translator.bench.corpus import read_manifest, select_clips
from translator.bench.runner import ClipRun
from translator.bench.spans import Span, SpanLog
from translator.bench.talk import PAUSE, figures, make_talk
from translator.errors import InputError
from translator.events import SAMPLE_RATE, SpeechPaused, UtteranceEnded
from translator.transcript import UtteranceRecord

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "speech"


def _clips(*globs: str):
    return select_clips(read_manifest(SPEECH), list(globs), english_only=False)


def test_a_talk_repeats_the_clips_with_pauses_to_the_length_asked(tmp_path: Path) -> None:
    clips = _clips("en/LDC93S1.wav", "en/LJ050-0131.wav")
    talk = make_talk(clips, 25.0, tmp_path)
    audio = np.concatenate([b.samples for b in FileSource(talk.path)])
    assert talk.seconds >= 25.0 and abs(len(audio) / SAMPLE_RATE - talk.seconds) < 0.01
    # LDC (2.9 s), LJ (7.7 s), LDC, LJ, ... each followed by a pause: four clips reach 25 s
    assert talk.transcript.count("greasy wash water") == 2 and talk.transcript.count("formal review") == 2
    first = np.concatenate([b.samples for b in FileSource(clips[0].path)])
    assert np.abs(audio[: len(first)] - first).max() < 1e-3  # the recording itself, as 16-bit PCM
    pause = audio[len(first) : len(first) + round(PAUSE * SAMPLE_RATE)]
    assert np.abs(pause).max() == 0.0
    assert talk.lang == "en" and "4 clips" in talk.file


def test_a_talk_is_in_one_language(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--talk: the clips are in 2 languages"):
        make_talk(_clips("en/LDC93S1.wav", "de/*"), 10.0, tmp_path)


def _record(uid: int, asr_final: float | None, s2s: float | None) -> UtteranceRecord:
    return UtteranceRecord(uid, 0.0, 1.0, "en", "x", "es", "x", "fake", "", asr_final, asr_final, s2s, (), 0.1, 0.0, 0.0, False)


def test_the_figures_compare_the_first_and_the_last_quarter() -> None:
    audio = np.zeros(0, np.float32)
    ends = {1: 10.0, 2: 50.0, 3: 85.0, 4: 95.0}
    events = [UtteranceEnded(uid, audio, t - 1, t, 0.0, 0.0) for uid, t in ends.items()]
    events.append(SpeechPaused(4, audio, 94.0, 95.0, 0.0, 200.0))
    spans = SpanLog()
    spans.spans.append(Span("asr", "SpeechPaused", 4, 200.3, 200.5))
    records = [_record(1, 0.4, 0.6), _record(2, 0.5, 0.7), _record(3, None, None), _record(4, 0.9, 1.4)]
    clip = select_clips(read_manifest(SPEECH), ["en/LDC93S1.wav"], english_only=True)[0]
    run = ClipRun(clip.__class__(clip.file, clip.path, "en", 100.0, ""), 0, records, spans, 0.0, 100.0, events, 0, 0, 0.0, {})
    f = figures(run)
    assert (f["utterances_ended"], f["utterances_finalised"]) == (4, 3)
    assert f["first_quarter"] == {"asr_final_median": 0.4, "speech_to_speech_median": 0.6}
    assert f["last_quarter"] == {"asr_final_median": 0.9, "speech_to_speech_median": 1.4}
    assert f["final_wait_max"] == pytest.approx(0.3)
