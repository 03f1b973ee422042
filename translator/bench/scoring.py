"""Accuracy of recognised text against a reference: WER, or CER where words are not spaced.

Text is normalised as Whisper's own evaluation does it (package ``whisper-normalizer``), so our
figures compare with published ones: English through Whisper's English normaliser (lower case,
punctuation removed, spellings Americanised, "Mr." = "mister", numbers written out or in digits
count the same: "three thousand sixty one" = "3061"), every other language through Whisper's basic
normaliser (lower case, marks, symbols and punctuation turned into spaces).

One rule is added for English, because Whisper's normaliser applies its own rule to one side only:
it reads successive spelled digits as one nominal number ("one two three" -> "123", "nine one one"
-> "911") but leaves successive digits apart ("1. 2 3." -> "one 2 3"), so a model that writes the
digits the reference spells scored 300 % on "one two three". After Whisper's normaliser, a run of
two or more single-digit tokens is joined the same way, whichever way it was written.

Chinese, Japanese, Korean and the other scripts written without spaces are scored by characters
with every space removed, because their references are not segmented like the models' output (the
AISHELL lines in the corpus are word-segmented with spaces, Whisper's output is not).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import jiwer
from whisper_normalizer.basic import BasicTextNormalizer
from whisper_normalizer.english import EnglishTextNormalizer

from translator.languages import NO_SPACE

CER_LANGUAGES = NO_SPACE | {"ko"}
"""Scored by character error rate, spaces removed. Korean is written with spaces, but between
phrases (eojeol) that models split and join freely, so words there are not a stable unit."""


_SINGLE_DIGIT = re.compile(r"\d|one")
"""A single-digit token after Whisper's English normaliser, which writes a lone 1 as "one"."""


@cache
def _english() -> EnglishTextNormalizer:
    return EnglishTextNormalizer()


@cache
def _basic() -> BasicTextNormalizer:
    return BasicTextNormalizer()


def normalise(text: str, language: str = "en") -> str:
    """``text`` as Whisper's evaluation compares it: ``"Mr. Quilter's gospel!"`` ->
    ``"mister quilter is gospel"`` in English, ``"¿Qué? ¡Sí!"`` -> ``"qué sí"`` elsewhere."""
    if language != "en":
        return " ".join(_basic()(text).split())
    return " ".join(_join_digit_runs(_english()(text).split()))


def _join_digit_runs(words: list[str]) -> list[str]:
    """Successive single digits as one number, as Whisper's normaliser reads spelled ones:
    ``["room", "one", "2"]`` -> ``["room", "12"]``, like "room one two" -> "room 12"."""
    out: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if _SINGLE_DIGIT.fullmatch(word):
            run.append(word)
            continue
        out.extend(["".join("1" if w == "one" else w for w in run)] if len(run) > 1 else run)
        run = []
        if word:
            out.append(word)
    return out


def metric_for(language: str) -> str:
    """``cer`` for languages scored by character, ``wer`` otherwise."""
    return "cer" if language in CER_LANGUAGES else "wer"


def units(text: str, language: str = "en") -> list[str]:
    """What errors are counted on: normalised words, or characters (no spaces) for zh/ja/ko."""
    plain = normalise(text, language)
    if metric_for(language) == "cer":
        return [c for c in plain if not c.isspace()]
    return plain.split()


@dataclass(frozen=True)
class Errors:
    """Edit operations between a reference and a hypothesis, so rates can be summed over clips."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_units: int = 0

    @property
    def rate(self) -> float:
        """(S + D + I) / N; 0 for an empty reference with an empty hypothesis, 1 per inserted unit
        over an empty reference otherwise (never divides by zero)."""
        edits = self.substitutions + self.deletions + self.insertions
        if self.reference_units == 0:
            return float(edits > 0)
        return edits / self.reference_units

    def __add__(self, other: Errors) -> Errors:
        return Errors(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_units + other.reference_units,
        )


def errors(reference: str, hypothesis: str, language: str = "en") -> Errors:
    """Substitutions, deletions and insertions of ``hypothesis`` against ``reference``, counted in
    :func:`units` of ``language``."""
    ref, hyp = units(reference, language), units(hypothesis, language)
    if not ref or not hyp:
        return Errors(0, len(ref), len(hyp), len(ref))
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return Errors(out.substitutions, out.deletions, out.insertions, len(ref))


def error_rate(reference: str, hypothesis: str, language: str = "en") -> float:
    """WER, or CER for the languages of :data:`CER_LANGUAGES` (see :func:`metric_for`)."""
    return errors(reference, hypothesis, language).rate


def wer(reference: str, hypothesis: str) -> float:
    """English word error rate (the tests' accuracy check)."""
    return errors(reference, hypothesis, "en").rate


def total(pairs: Iterable[tuple[str, str, str]]) -> dict[str, Errors]:
    """Errors summed per metric over ``(reference, hypothesis, language)`` triples:
    ``{"wer": ..., "cer": ...}`` (a metric appears only when some language uses it)."""
    sums: dict[str, Errors] = {}
    for reference, hypothesis, language in pairs:
        metric = metric_for(language)
        sums[metric] = sums.get(metric, Errors()) + errors(reference, hypothesis, language)
    return sums


__all__ = ["CER_LANGUAGES", "Errors", "error_rate", "errors", "metric_for", "normalise", "total", "units", "wer"]
