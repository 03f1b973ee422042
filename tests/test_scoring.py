"""Scoring (Whisper's normalisers, WER/CER) and the corpus manifest the benchmark reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SPEECH

from translator.bench import corpus, scoring
from translator.errors import InputError

# --- normalisation ------------------------------------------------------------------------------


def test_english_uses_whispers_english_normaliser() -> None:
    assert scoring.normalise("  And so, my fellow Americans, ask not  ") == "and so my fellow americans ask not"
    # contractions and titles expanded, spellings Americanised: as Whisper's published figures count them
    assert scoring.normalise("Don't stop, it's Mr. Smith") == "do not stop it is mister smith"
    assert scoring.wer("the colour grey", "the color gray") == 0.0
    # numbers count the same in words and in digits
    assert scoring.wer("three thousand sixty one", "3061") == 0.0
    assert scoring.wer("twenty five dollars", "$25") == 0.0
    assert scoring.wer("Mr. Quilter is the apostle", "Mister Quilter is the apostle.") == 0.0


def test_successive_digits_count_the_same_spelled_or_written() -> None:
    # Whisper's normaliser joins spelled digits ("one two three" -> "123") but not written ones:
    # without the added rule this pair scored 300 %
    assert scoring.normalise("one two three") == scoring.normalise("1. 2 3.") == "123"
    assert scoring.wer("one two three", "1, 2, 3.") == 0.0
    assert scoring.wer("call nine one one now", "Call 9 1 1 now.") == 0.0
    assert scoring.wer("room one two", "room 1 2") == 0.0
    # a wrong digit is still one wrong number, and lone numbers are left as Whisper writes them
    assert scoring.wer("one two three", "1 2 4") == 1.0
    assert scoring.normalise("I have 1 dog and 2 cats") == "i have one dog and 2 cats"
    assert scoring.normalise("1 23") == "one 23"


def test_other_languages_use_the_basic_normaliser() -> None:
    assert scoring.normalise("¿Qué? ¡Sí!", "es") == "qué sí"
    assert scoring.normalise("Пётр сказал: «Привет!»", "ru") == "пётр сказал привет"
    # no English rules outside English: French numbers stay as written
    assert scoring.error_rate("numéro un", "numéro 1", "fr") == 0.5
    assert scoring.error_rate("Der Raum, genutzt.", "der raum genutzt", "de") == 0.0


def test_wer_counts_words() -> None:
    reference = "She had your dark suit in greasy wash water all year."
    assert scoring.wer(reference, "she had your dark suit in greasy wash water all year") == 0.0
    assert scoring.wer(reference, "She had your dog suit in greasy wash water all year!") == pytest.approx(1 / 11)
    assert scoring.wer("ask not what your country", "ask what your country can") == pytest.approx(2 / 5)


# --- CER ----------------------------------------------------------------------------------------


def test_cer_for_chinese_japanese_korean() -> None:
    assert {scoring.metric_for(lang) for lang in ("zh", "ja", "ko", "yue", "th")} == {"cer"}
    assert {scoring.metric_for(lang) for lang in ("en", "de", "ru")} == {"wer"}
    aishell = "甚至  出现  交易  几乎  停滞  的  情况"
    assert scoring.error_rate(aishell, "甚至出现交易几乎停滞的情况。", "zh") == 0.0
    assert scoring.error_rate(aishell, "甚至出现交易几乎停止的情况", "zh") == pytest.approx(1 / 13)
    # the same strings scored as words would be all wrong: the segmentation differs
    assert scoring.wer(aishell, "甚至出现交易几乎停滞的情况") == 1.0
    assert scoring.error_rate(
        "客観的実在の判断的知識が成立するのである。", "客観的実在の判断的知識が成立するのです", "ja"
    ) == pytest.approx(2 / 20)
    assert scoring.units("그는 이리저리", "ko") == list("그는이리저리")
    assert scoring.error_rate("그는 이리저리", "그는이리 저리", "ko") == 0.0


def test_empty_texts_and_sums_over_clips() -> None:
    assert scoring.wer("a b", "") == 1.0 and scoring.wer("", "") == 0.0 and scoring.wer("", "x") == 1.0
    sums = scoring.total([("a b c d", "a b c d", "en"), ("a b", "a x", "en"), ("你好", "你们", "zh")])
    assert sums["wer"].rate == pytest.approx(1 / 6) and sums["cer"].rate == pytest.approx(1 / 2)
    assert set(scoring.total([("a", "a", "de")])) == {"wer"}


# --- the corpus ---------------------------------------------------------------------------------


def test_manifest_rows() -> None:
    clips = corpus.read_manifest(SPEECH)
    jfk = next(c for c in clips if c.file == "en/jfk.flac")
    assert jfk.lang == "en" and jfk.seconds == pytest.approx(11.0) and jfk.path == SPEECH / "en" / "jfk.flac"
    assert jfk.transcript.startswith("And so my fellow Americans")
    assert {c.lang for c in clips} >= {"en", "de", "zh", "ja", "ko"}


def test_a_broken_manifest_is_one_line_naming_the_columns(tmp_path: Path) -> None:
    (tmp_path / "manifest.tsv").write_text("file\tlanguage\nen/a.wav\ten\n", encoding="utf-8")
    with pytest.raises(InputError, match="file, lang, seconds, transcript") as e:
        corpus.read_manifest(tmp_path)
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="manifest not found"):
        corpus.read_manifest(tmp_path / "nowhere")


def test_corpus_from_the_flag_else_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = SPEECH.parent
    monkeypatch.delenv(corpus.CORPUS_ENV, raising=False)
    with pytest.raises(InputError, match=r"--corpus DIR or set \$TRANSLATOR_CORPUS"):
        corpus.speech_dir(None)
    assert corpus.speech_dir(str(root)) == SPEECH and corpus.speech_dir(str(SPEECH)) == SPEECH
    monkeypatch.setenv(corpus.CORPUS_ENV, str(root))
    assert corpus.speech_dir(None) == SPEECH
    assert corpus.speech_dir(str(SPEECH)) == SPEECH  # the flag wins
    monkeypatch.setenv(corpus.CORPUS_ENV, str(tmp_path))
    with pytest.raises(InputError, match=r"\$TRANSLATOR_CORPUS\): no speech/manifest.tsv"):
        corpus.speech_dir(None)
    with pytest.raises(InputError, match=r"\(--corpus\): no speech/manifest.tsv"):
        corpus.speech_dir(str(tmp_path / "empty"))


def test_derived_copies_are_counted_once() -> None:
    clips = corpus.read_manifest(SPEECH)
    files = [c.file for c in corpus.dedupe_derived(clips)]
    for original, copy in (
        ("en/jfk.flac", "en/jfk.16k.wav"),
        ("fr/uberi_french.aiff", "fr/uberi_french.16k.wav"),
        ("zh/uberi_chinese.flac", "zh/uberi_chinese.16k.wav"),
    ):
        assert original in files and copy not in files
    assert len(files) == len(clips) - 3
    # a copy whose original is not selected stays
    only_copy = [c for c in clips if c.file == "en/jfk.16k.wav"]
    assert [c.file for c in corpus.dedupe_derived(only_copy)] == ["en/jfk.16k.wav"]


def test_clip_selection() -> None:
    clips = corpus.read_manifest(SPEECH)
    english = corpus.select_clips(clips, None, english_only=True)
    assert english and {c.lang for c in english} == {"en"} and "en/jfk.16k.wav" not in [c.file for c in english]
    assert [c.file for c in corpus.select_clips(clips, ["en/jfk*"], english_only=False)] == ["en/jfk.flac"]
    with pytest.raises(InputError, match="nothing.wav"):
        corpus.select_clips(clips, ["nothing.wav"], english_only=False)
    with pytest.raises(InputError, match="English-only"):
        corpus.select_clips(clips, ["de/*"], english_only=True)
