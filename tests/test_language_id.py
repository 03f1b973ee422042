"""Which language an utterance is in: the session prior, the allowed languages, detection on the
whole utterance, and the previous utterance as context (the real base model, real corpus clips cut by the
real voice detector; the prior's arithmetic on its own)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import clip

from translator import cliargs, languages
from translator.audio.files import FileSource
from translator.config import AsrSettings, Config, LanguageSettings, VadSettings
from translator.errors import ConfigError, LanguageError
from translator.events import SAMPLE_RATE, Transcript, UtteranceEnded
from translator.stages.asr import RecognizerStage
from translator.stages.language_prior import LanguagePrior
from translator.stages.recognition import Context
from translator.stages.recognizer import WhisperRecognizer
from translator.stages.vad import Segmenter

SPANISH = "es/picovoice_leopard_test_es.wav"
"""Cut by the VAD into three pieces; base detects the third ("y tiene muy poca asistencia") as
Portuguese when it hears it alone."""


@pytest.fixture(scope="module")
def base(corpus: Path) -> WhisperRecognizer:
    return WhisperRecognizer(AsrSettings(model="base"))


def pieces(name: str) -> list[UtteranceEnded]:
    """The utterances the live segmenter cuts a corpus clip into."""
    segmenter = Segmenter(VadSettings())
    events = [e for block in FileSource(clip(name).path) for e in segmenter.feed(block)] + list(segmenter.flush())
    return [e for e in events if isinstance(e, UtteranceEnded)]


def transcripts(stage: RecognizerStage, utterances: list[UtteranceEnded]) -> list[Transcript]:
    out = [event for u in utterances for event in stage.feed(u)]
    assert all(isinstance(t, Transcript) for t in out), out
    return out  # type: ignore[return-value]


# --- the prior's arithmetic ---------------------------------------------------------------------


def test_without_history_the_detected_language_wins() -> None:
    assert LanguagePrior(10).choose([("pt", 0.69), ("es", 0.12)]) == ("pt", 0.69)


def test_one_ambiguous_phrase_does_not_flip_the_session_but_a_clear_switch_does() -> None:
    prior = LanguagePrior(10)
    prior.observe("es")
    prior.observe("es")
    assert prior.choose([("pt", 0.69), ("es", 0.12)]) == ("es", 0.12)  # 5.6x: not enough
    assert prior.choose([("en", 0.95), ("es", 0.02)]) == ("en", 0.95)  # 47x: a switch


def test_the_prior_fades_after_a_switch() -> None:
    prior = LanguagePrior(10)
    for _ in range(5):
        prior.observe("es")
    prior.observe("en")
    prior.observe("en")
    assert prior.factor("en") > prior.factor("es") > 1.0
    assert LanguagePrior(1).factor("es") == 1.0


# --- on real speech -----------------------------------------------------------------------------


def test_session_prior_keeps_a_spanish_sentence_spanish(base: WhisperRecognizer) -> None:
    utterances = pieces(SPANISH)
    assert len(utterances) == 3
    alone = base.recognize(utterances[2].audio)
    assert alone is not None and alone.language == "pt", "premise: the last piece alone sounds Portuguese"
    heard = transcripts(RecognizerStage(base, prior=LanguagePrior(10)), utterances)
    assert [t.language for t in heard] == ["es", "es", "es"]
    assert "tiene" in heard[2].text.lower(), heard[2].text


def test_allowed_languages_keep_out_a_neighbour(base: WhisperRecognizer) -> None:
    last = pieces(SPANISH)[2]
    restricted = base.recognize(last.audio, allowed=("en", "es"))
    assert restricted is not None and restricted.language == "es", restricted


def test_detection_hears_the_whole_utterance_not_its_first_words(base: WhisperRecognizer) -> None:
    english = pieces("en/jfk.flac")[0].audio  # "And so my fellow Americans"
    spanish = np.concatenate([u.audio for u in pieces(SPANISH)])
    first = base.recognize(english)
    assert first is not None and first.language == "en", "premise: the first words are English"
    mixed = np.concatenate([english[: int(1.2 * SAMPLE_RATE)], spanish])
    whole = base.recognize(mixed)
    assert whole is not None and whole.language == "es", whole


def test_previous_utterance_gives_the_next_its_context(base: WhisperRecognizer) -> None:
    utterances = pieces("en/jfk.flac")
    assert len(utterances) == 4
    alone = transcripts(RecognizerStage(base, AsrSettings(context_gap=0.0)), utterances)
    after = transcripts(RecognizerStage(base), utterances)
    assert "ask" not in alone[1].text.lower(), "premise: 'ask not' alone is misheard"
    assert after[1].text.lower().startswith("ask not"), after[1].text
    # Each transcript holds only its own words, not the context's again.
    assert "americans" not in after[1].text.lower()


def test_context_needs_a_short_gap(base: WhisperRecognizer) -> None:
    first, second = pieces("en/jfk.flac")[:2]
    late = dataclasses.replace(second, start=first.t_end + 5.0)
    stage = RecognizerStage(base)
    (_,) = stage.feed(first)
    (alone,) = stage.feed(late)
    assert isinstance(alone, Transcript) and "ask" not in alone.text.lower()


def test_context_is_a_phrase_not_a_sentence(base: WhisperRecognizer) -> None:
    """A sentence forced as the prefix costs a sentence's decode (CONTEXT_TOKENS): only a phrase is."""
    first, second = pieces("en/jfk.flac")[:2]
    phrase = Context(first.audio, "And so my fellow Americans,", "en", "transcribe")
    sentence = dataclasses.replace(
        phrase, text="Mr. Quilter is the apostle of the middle classes, and we are glad to welcome his gospel."
    )
    assert base._fits(phrase, second.audio, "en", "transcribe", AsrSettings())
    assert not base._fits(sentence, second.audio, "en", "transcribe", AsrSettings())


# --- the setting and the flag ------------------------------------------------------------------


def _flags(*argv: str) -> Config:
    parser = argparse.ArgumentParser()
    cliargs.add_settings_args(parser)
    return cliargs.settings(parser.parse_args(list(argv)))


def test_languages_flag_sets_the_allowed_languages() -> None:
    config = _flags("--languages", "en, es,de")
    assert config.languages.allowed == ("en", "es", "de")
    langs = languages.from_config(config)
    assert langs.allowed == ("en", "es", "de") and langs.sources == ["en", "es", "de"]


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        (LanguageSettings(allowed=("en", "xx")), LanguageError, "languages.allowed: unknown language code 'xx'"),
        (LanguageSettings(pair="en:es", allowed=("en",)), ConfigError, "languages.allowed: conversation mode"),
        (LanguageSettings(source="fr", allowed=("en", "es")), ConfigError, "languages.from: 'fr' is not among"),
    ],
)
def test_contradicting_language_settings_are_named(settings: LanguageSettings, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        languages.from_config(Config(languages=settings))


def test_switch_evidence_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="languages.switch_evidence: must be 1"):
        _flags("--set", "languages.switch_evidence=0.5")
