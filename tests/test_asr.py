"""Speech recognition on real models and real recordings.

Each model is loaded once per module; the recognitions are few and short so the file runs in well
under a minute on two shared cores.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import clip
from translator.stages.asr import Recognition, RecognizerConfig, RecognizerStage, WhisperRecognizer
from translator.errors import LanguageError, ModelError
from translator.events import (
    SAMPLE_RATE,
    Caption,
    Discarded,
    SpeechGrowing,
    SpeechPaused,
    SpeechStarted,
    Transcript,
    UtteranceEnded,
)
from translator.models.locate import resolve_asr
from translator.bench.scoring import normalise as words
from translator.bench.scoring import wer


def audio(name: str) -> np.ndarray:
    samples, rate = sf.read(clip(name).path, dtype="float32")
    assert rate == SAMPLE_RATE and samples.ndim == 1, f"{name}: the ASR tests use 16 kHz mono clips"
    return samples


@pytest.fixture(scope="module")
def tiny(corpus: Path) -> WhisperRecognizer:
    recognizer = WhisperRecognizer(RecognizerConfig(model="tiny.en"))
    recognizer.warm_up()
    return recognizer


@pytest.fixture(scope="module")
def tiny_stock(corpus: Path) -> WhisperRecognizer:
    return WhisperRecognizer(RecognizerConfig(model="tiny.en", window_margin=None))


@pytest.fixture(scope="module")
def base(corpus: Path) -> WhisperRecognizer:
    return WhisperRecognizer(RecognizerConfig(model="base"))


def test_reconfigured_shares_the_loaded_model_under_new_languages(base: WhisperRecognizer, tiny: WhisperRecognizer) -> None:
    """A service reload that changes only languages keeps the speech model loaded."""
    pair = base.reconfigured(RecognizerConfig(model="base", allowed_languages=("en", "es")))
    assert pair.model is base.model and base.config.allowed_languages is None
    result = pair.recognize(audio("es/picovoice_leopard_test_es.wav"))
    assert result is not None and result.language == "es"
    with pytest.raises(LanguageError, match="English-only"):
        tiny.reconfigured(RecognizerConfig(model="tiny.en", language="de"))


# --- recognition quality ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["en/LDC93S1.wav", "en/jfk.16k.wav"])
def test_tiny_en_transcribes_english(tiny: WhisperRecognizer, name: str) -> None:
    result = tiny.recognize(audio(name))
    assert isinstance(result, Recognition)
    assert result.language == "en" and result.task == "transcribe"
    assert wer(clip(name).transcript, result.text) <= 0.25, result.text
    assert result.tokens > 0 and result.compute_seconds > 0


def test_base_detects_german_and_translates_it(base: WhisperRecognizer) -> None:
    samples = audio("de/picovoice_leopard_test_de.wav")
    heard = base.recognize(samples)
    assert heard is not None and heard.language == "de", heard
    translated = base.recognize(samples, task="translate")
    assert translated is not None and translated.task == "translate"
    assert "room" in translated.text.lower() or "hall" in translated.text.lower(), translated.text


def test_base_detects_spanish(base: WhisperRecognizer) -> None:
    result = base.recognize(audio("es/picovoice_leopard_test_es.wav"))
    assert result is not None and result.language == "es", result


def test_allowed_languages_restrict_detection(corpus: Path) -> None:
    pair = WhisperRecognizer(RecognizerConfig(model="base", allowed_languages=("en", "es")))
    result = pair.recognize(audio("es/picovoice_leopard_test_es.wav"))
    assert result is not None and result.language == "es"
    assert 0.5 < result.language_probability <= 1.0


def test_short_window_matches_stock_window(tiny: WhisperRecognizer, tiny_stock: WhisperRecognizer) -> None:
    tiny_stock.warm_up()
    for name in ("en/LDC93S1.wav", "en/picovoice_leopard_test.wav", "en/jfk.16k.wav"):
        samples, reference = audio(name), clip(name).transcript
        short, stock = tiny.recognize(samples), tiny_stock.recognize(samples)
        assert short is not None and stock is not None
        print(
            f"\n{name}: short {short.window_seconds:.1f} s window {short.compute_seconds * 1000:.0f} ms "
            f"{short.text!r} | stock {stock.compute_seconds * 1000:.0f} ms {stock.text!r}"
        )
        assert stock.window_seconds == 30.0 and short.window_seconds < 30.0
        assert wer(reference, short.text) <= 0.3 and wer(reference, stock.text) <= 0.3


def test_audio_longer_than_a_window_is_cut_and_joined(tiny: WhisperRecognizer) -> None:
    first = np.concatenate([audio("en/jfk.16k.wav"), audio("en/picovoice_leopard_test.wav"), audio("en/jfk.16k.wav")])
    gap = np.zeros(30 * SAMPLE_RATE - len(first), dtype=np.float32)
    result = tiny.recognize(np.concatenate([first, gap, audio("en/LDC93S1.wav")]))
    assert result is not None
    text = words(result.text)
    assert text.count("fellow americans") == 2 and "quilter" in text and text.endswith("all year"), result.text


# --- guards -------------------------------------------------------------------------------------


def test_silence_gives_nothing(tiny: WhisperRecognizer) -> None:
    assert tiny.recognize(np.zeros(2 * SAMPLE_RATE, dtype=np.float32)) is None


def test_quiet_noise_gives_nothing(tiny: WhisperRecognizer) -> None:
    noise = np.random.default_rng(7).standard_normal(2 * SAMPLE_RATE) * 10 ** (-40 / 20)
    assert tiny.recognize(noise.astype(np.float32)) is None


# --- the streaming stage ------------------------------------------------------------------------


def _ended(samples: np.ndarray, utterance: int = 1) -> tuple[SpeechPaused, UtteranceEnded]:
    t_end, now = len(samples) / SAMPLE_RATE, time.monotonic()
    return (
        SpeechPaused(utterance, samples, 0.0, t_end, now, now),
        UtteranceEnded(utterance, samples, 0.0, t_end, now, now + 0.3),
    )


def test_captions_commit_only_growing_prefixes(tiny: WhisperRecognizer) -> None:
    samples = audio("en/LDC93S1.wav")
    stage = RecognizerStage(tiny)
    now = time.monotonic()
    assert list(stage.feed(SpeechStarted(1, 0.0, now))) == []
    captions: list[Caption] = []
    for end in np.arange(0.5, len(samples) / SAMPLE_RATE, 0.5):
        out = list(stage.feed(SpeechGrowing(1, samples[: int(end * SAMPLE_RATE)], 0.0, float(end), now)))
        assert all(isinstance(c, Caption) and c.utterance_id == 1 and c.audio_end == end for c in out)
        captions += out
    assert len(captions) >= 4
    for earlier, later in zip(captions, captions[1:]):
        assert later.committed.startswith(earlier.committed), (earlier, later)
    assert captions[-1].committed, "two consecutive hypotheses agreed on nothing"
    paused, ended = _ended(samples)
    assert list(stage.feed(paused)) == []
    (transcript,) = stage.feed(ended)
    assert isinstance(transcript, Transcript)
    last = captions[-1]
    assert set(words(f"{last.committed} {last.tentative}").split()) & set(words(transcript.text).split())


def test_pause_then_same_end_reuses_speculation(tiny: WhisperRecognizer) -> None:
    samples = audio("en/LDC93S1.wav")
    stage = RecognizerStage(tiny)
    paused, ended = _ended(samples)
    assert list(stage.feed(paused)) == []
    (transcript,) = stage.feed(ended)
    assert (stage.speculative_hits, stage.speculative_misses) == (1, 0)
    assert isinstance(transcript, Transcript) and transcript.task == "transcribe" and transcript.language == "en"
    assert (transcript.t_end, transcript.t_end_wall) == (ended.t_end, ended.t_end_wall)
    assert transcript.wall >= ended.t_end_wall and transcript.compute_seconds > 0
    assert wer(clip("en/LDC93S1.wav").transcript, transcript.text) <= 0.25


def test_end_with_other_audio_is_a_miss(tiny: WhisperRecognizer) -> None:
    samples = audio("en/LDC93S1.wav")
    stage = RecognizerStage(tiny)
    paused, _ = _ended(samples[: 2 * SAMPLE_RATE])
    _, ended = _ended(samples)
    list(stage.feed(paused))
    (transcript,) = stage.feed(ended)
    assert (stage.speculative_hits, stage.speculative_misses) == (0, 1)
    assert wer(clip("en/LDC93S1.wav").transcript, transcript.text) <= 0.25


def test_stage_task_can_follow_the_detected_language(base: WhisperRecognizer) -> None:
    stage = RecognizerStage(base, task=lambda language: "translate" if language == "de" else "transcribe")
    _, ended = _ended(audio("de/picovoice_leopard_test_de.wav"))
    (transcript,) = stage.feed(ended)
    assert (transcript.language, transcript.task) == ("de", "translate")
    assert "room" in transcript.text.lower() or "hall" in transcript.text.lower()


def test_stage_discards_silence_without_a_transcript(tiny: WhisperRecognizer) -> None:
    stage = RecognizerStage(tiny)
    _, ended = _ended(np.zeros(SAMPLE_RATE, dtype=np.float32))
    (event,) = stage.feed(ended)
    assert isinstance(event, Discarded) and event.utterance_id == ended.utterance_id


# --- errors -------------------------------------------------------------------------------------


def _model_copy(tmp_path: Path, *, skip: str) -> Path:
    """The bundled tiny.en, linked file by file, without ``skip``."""
    source, copy = resolve_asr("tiny.en"), tmp_path / "tiny.en"
    copy.mkdir()
    for item in source.iterdir():
        if item.name != skip:
            os.symlink(item, copy / item.name)
    return copy


def test_truncated_model_is_a_model_error(tmp_path: Path) -> None:
    copy = _model_copy(tmp_path, skip="model.bin")
    with open(resolve_asr("tiny.en") / "model.bin", "rb") as f:
        (copy / "model.bin").write_bytes(f.read(1000))
    with pytest.raises(ModelError, match="model.bin") as info:
        WhisperRecognizer(RecognizerConfig(model=str(copy)))
    assert str(copy) in str(info.value) and "reinstall" in str(info.value)


def test_missing_tokenizer_is_a_model_error(tmp_path: Path) -> None:
    copy = _model_copy(tmp_path, skip="tokenizer.json")
    with pytest.raises(ModelError, match="tokenizer.json"):
        WhisperRecognizer(RecognizerConfig(model=str(copy)))


def test_english_only_model_cannot_translate(tiny: WhisperRecognizer) -> None:
    with pytest.raises(LanguageError, match="English-only"):
        WhisperRecognizer(RecognizerConfig(model="tiny.en", task="translate"))
    with pytest.raises(LanguageError, match="English-only"):
        WhisperRecognizer(RecognizerConfig(model="tiny.en", language="de"))
    with pytest.raises(LanguageError, match="English-only"):
        tiny.recognize(audio("en/LDC93S1.wav"), task="translate")


@pytest.mark.parametrize(
    "bad",
    [
        {"task": "summarise"},
        {"beam_size": 0},
        {"window_margin": -1.0},
        {"cpu_threads": -2},
        {"compute_type": "int3"},
        {"allowed_languages": ()},
    ],
)
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        RecognizerConfig(**bad)


def test_config_rejects_unknown_language() -> None:
    with pytest.raises(LanguageError, match="xx"):
        RecognizerConfig(allowed_languages=("en", "xx"))
