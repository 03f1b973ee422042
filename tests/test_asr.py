"""Speech recognition on real models and real recordings (and the guards, on their own).

Each model is loaded once per module and serves every decoding setting and language choice; the
recognitions are few and short so the file runs in well under a minute on two shared cores.
"""

from __future__ import annotations

import os
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import SPANISH_NUMBER, clip, espeak

from translator import whisper_api
from translator.audio.samples import speech_span
from translator.bench.scoring import normalise as words
from translator.bench.scoring import wer
from translator.config import AsrSettings
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
from translator.stages.asr import RecognizerStage
from translator.stages.guards import first_pass, join_units, plausible, repeats, units
from translator.stages.langcheck import wrong_language
from translator.stages.recognition import Recognition
from translator.stages.recognizer import WhisperRecognizer
from translator.whisper_api import Decoded

STOCK = AsrSettings(model="tiny.en", window_margin=-1.0)
"""The stock 30 s window, decoded on the same loaded model as the short window."""


def audio(name: str) -> np.ndarray:
    samples, rate = sf.read(clip(name).path, dtype="float32")
    assert rate == SAMPLE_RATE and samples.ndim == 1, f"{name}: the ASR tests use 16 kHz mono clips"
    return samples


@pytest.fixture(scope="module")
def tiny(corpus: Path) -> WhisperRecognizer:
    recognizer = WhisperRecognizer(AsrSettings(model="tiny.en"))
    recognizer.warm_up()
    return recognizer


@pytest.fixture(scope="module")
def base(corpus: Path) -> WhisperRecognizer:
    return WhisperRecognizer(AsrSettings(model="base"))


def test_the_loaded_model_serves_settings_that_share_its_model_fields(base: WhisperRecognizer) -> None:
    """A service reload that changes only decoding settings or languages keeps the speech model."""
    assert base.serves(AsrSettings(model="base", beam_size=5, window_margin=-1.0))
    assert not base.serves(AsrSettings(model="base", compute_type="float32"))
    assert not base.serves(AsrSettings(model="tiny.en"))


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


def test_translation_and_words_decoded_together_match_one_by_one(base: WhisperRecognizer) -> None:
    """The translate task's two decodes run as one batch; each must be what it is alone."""
    samples = audio("de/picovoice_leopard_test_de.wav")
    settings = AsrSettings(model="base")
    encoded = base._encode(samples, settings)
    cap = base._token_cap(len(samples))
    english, words = whisper_api.decode_both(base.model, encoded, language="de", prompt=None, token_cap=cap, beam_size=5)
    for task, together in (("translate", english), ("transcribe", words)):
        alone = base._decode(encoded, len(samples), "de", task, None, settings)
        assert (together.text, together.tokens) == (alone.text, alone.tokens), task
        assert together.avg_logprob == pytest.approx(alone.avg_logprob, abs=0.01)
        assert together.no_speech_prob == pytest.approx(alone.no_speech_prob, abs=0.01)
        assert together.compression_ratio == pytest.approx(alone.compression_ratio, abs=0.01)
    assert "raum" in words.text.lower() and "room" in english.text.lower()


def test_base_detects_spanish(base: WhisperRecognizer) -> None:
    result = base.recognize(audio("es/picovoice_leopard_test_es.wav"))
    assert result is not None and result.language == "es", result


def test_allowed_languages_restrict_detection(base: WhisperRecognizer) -> None:
    spanish = audio("es/picovoice_leopard_test_es.wav")
    result = base.recognize(spanish, allowed=("en", "es"))
    assert result is not None and result.language == "es"
    assert 0.5 < result.language_probability <= 1.0
    elsewhere = base.recognize(spanish, allowed=("de", "fr"))
    assert elsewhere is None or elsewhere.language in ("de", "fr")
    # The stage passes its session's languages with every recognition.
    _, ended = _ended(spanish)
    (transcript,) = RecognizerStage(base, allowed=("en", "es")).feed(ended)
    assert isinstance(transcript, Transcript) and transcript.language == "es"


def test_short_window_matches_stock_window(tiny: WhisperRecognizer) -> None:
    tiny.warm_up(STOCK)
    for name in ("en/LDC93S1.wav", "en/picovoice_leopard_test.wav", "en/jfk.16k.wav"):
        samples, reference = audio(name), clip(name).transcript
        short, stock = tiny.recognize(samples), tiny.recognize(samples, STOCK)
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
    for earlier, later in pairwise(captions):
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


def test_a_translation_in_the_spoken_language_is_never_passed_off_as_english(base: WhisperRecognizer, tmp_path: Path) -> None:
    """Whisper's translate task can answer in the language it heard: the recognizer decodes again
    and, when that is still not English, says the text is no translation."""
    samples, rate = sf.read(espeak(tmp_path / "es.wav", "es", SPANISH_NUMBER), dtype="float32")
    samples = soxr.resample(samples, rate, SAMPLE_RATE).astype(np.float32)
    settings = AsrSettings(model="base", beam_size=1)  # greedy answers in Spanish; the default beam 5 in English
    first = base._decode(base._encode(samples, settings), len(samples), "es", "translate", None, settings)  # unguarded
    assert wrong_language(first.text, expected="en", source="es"), f"the clip no longer fails: {first.text!r}"
    stage = RecognizerStage(base, settings, language="es", task="translate")
    _, ended = _ended(samples)
    (transcript,) = stage.feed(ended)
    assert isinstance(transcript, Transcript) and transcript.task == "translate" and transcript.original
    assert not transcript.translated or not wrong_language(transcript.text, expected="en", source="es"), transcript


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
        WhisperRecognizer(AsrSettings(model=str(copy)))
    assert str(copy) in str(info.value) and "reinstall" in str(info.value)


def test_missing_tokenizer_is_a_model_error(tmp_path: Path) -> None:
    copy = _model_copy(tmp_path, skip="tokenizer.json")
    with pytest.raises(ModelError, match="tokenizer.json"):
        WhisperRecognizer(AsrSettings(model=str(copy)))


def test_english_only_model_cannot_translate(tiny: WhisperRecognizer) -> None:
    with pytest.raises(LanguageError, match="English-only and cannot translate"):
        tiny.check(task="translate")
    with pytest.raises(LanguageError, match="English-only and cannot recognise 'de'"):
        tiny.check("de")
    with pytest.raises(LanguageError, match="English-only"):
        tiny.recognize(audio("en/LDC93S1.wav"), task="translate")
    with pytest.raises(LanguageError, match="cannot recognise 'es'"):
        tiny.recognize(audio("en/LDC93S1.wav"), allowed=("en", "es"))
    tiny.check("en", allowed=("en",))


def test_per_call_choices_are_checked(tiny: WhisperRecognizer) -> None:
    with pytest.raises(ValueError, match="task: 'summarise'"):
        tiny.check(task="summarise")
    with pytest.raises(LanguageError, match="'xx'"):
        tiny.check(allowed=("en", "xx"))


# --- the guards, without a model ----------------------------------------------------------------


def decoded(text: str, *, no_speech: float = 0.01, logprob: float = -0.2, ratio: float = 1.2, tokens: int = 5) -> Decoded:
    return Decoded(text, logprob, no_speech, ratio, tokens, 8.0)


def test_repeats_catches_the_loops_seen_on_short_windows() -> None:
    assert repeats("1. 2 2", "en")
    assert repeats("And so my fellow Americans, and so my fellow Americans", "en")
    assert repeats("She had your dark suit in greasy wash water. She had your dark", "en")
    assert not repeats("The opposite of love is not hate, the opposite is indifference", "en")
    assert not repeats("谢谢你", "zh")  # a doubled character is a word, not a loop
    assert repeats("我们走吧我们走吧", "zh")


def test_first_pass_keeps_whole_sentences_a_decode_started_over_after() -> None:
    gospel = "Mr. Quilter is the apostle of the middle classes, and we are glad to welcome his gospel."
    assert first_pass(f"{gospel} Mr. Quilter is the apostle of the middle classes, and we are", "en") == gospel
    suit = "She had your dark suit in greasy wash water all year."
    assert first_pass(f"{suit} {suit} She had your", "en") == suit  # round more than once
    assert first_pass("我们今天去公园。我们今天去", "zh") == "我们今天去公园。"
    # a sentence said twice whole may have been said twice; a phrase doubled is another loop;
    # a phrase that comes back is speech
    assert first_pass(f"{suit} {suit}", "en") is None
    assert first_pass("1. 2. 2.", "en") is None
    assert first_pass("The opposite of love. The opposite is hate.", "en") is None
    assert first_pass("Hello there. How are you? Hello there.", "en") is None
    assert first_pass("I think we should. I think we should go", "en") is None  # started again


def test_a_decode_that_starts_over_after_the_sentence_is_kept_on_its_short_window(base: WhisperRecognizer) -> None:
    """picovoice's sentence cut to its speech: base on its 8 s window reads it, then starts over;
    the first reading is kept instead of decoding it all again on 16 s."""
    name = "en/picovoice_leopard_test.wav"
    x = audio(name)
    a, b = speech_span(x)
    encoded = whisper_api.encode(base.model, x[a:b], 8 * SAMPLE_RATE)
    settings = AsrSettings(model="base")
    once = base._decode(encoded, b - a, "en", "transcribe", None, settings)
    assert repeats(once.text, "en"), once.text  # the loop this is about (else the test shows nothing)
    r = base.recognize(x[a:b], settings, language="en")
    assert r is not None and r.window_seconds == 8.0 and wer(clip(name).transcript, r.text) == 0.0, r


def test_plausible_drops_silence_credits_only_when_unsure() -> None:
    settings = AsrSettings()
    assert plausible(decoded("Thank you."), settings)  # said with confidence
    assert not plausible(decoded("Thank you.", no_speech=0.3), settings)
    assert not plausible(decoded("Untertitel im Auftrag des ZDF"), settings)  # never said
    assert not plausible(decoded("..."), settings)
    assert not plausible(decoded("Hello there", ratio=3.0), settings)
    assert not plausible(decoded("Hello there", no_speech=0.7, logprob=-1.5), settings)
    assert plausible(decoded("Hello there", no_speech=0.7, logprob=-1.5), AsrSettings(no_speech_threshold=0.8))


def test_units_are_characters_where_words_have_no_spaces() -> None:
    assert units("你好 世界", "zh") == ["你", "好", "世", "界"] and join_units(["你", "好"], "zh") == "你好"
    assert units("hello  world", "en") == ["hello", "world"] and join_units(["hello", "world"], "en") == "hello world"
