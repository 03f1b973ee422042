"""Accuracy of recognised text against a reference: WER, or CER for Chinese, Japanese and Korean.

One normalisation for the benchmark and the tests, so an error rate means the same thing wherever
it is printed: lower case, punctuation and symbols removed (apostrophes inside words kept: "don't"),
single spaces. In English, number words up to twenty and the tens count as their digits ("one" =
"1"), since Whisper writes either; other languages are compared as written.

Chinese, Japanese and Korean are scored by characters with every space removed, because their
references are not segmented the same way as the models' output (the AISHELL line in the corpus is
word-segmented with spaces, the Whisper output is not).

The speech corpus holds a few derived copies (``x.16k.wav`` made from ``x.flac``/``x.aiff``): the
same utterance twice. :func:`dedupe_derived` keeps one of each pair, so none is counted twice.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import jiwer

from translator.errors import InputError

CHARACTER_LANGUAGES = frozenset({"zh", "ja", "ko", "yue"})
"""Scored by character error rate, spaces removed."""

DERIVED_SUFFIX = ".16k.wav"
"""The corpus's derived copies: 16 kHz WAV files made from another file of the same stem."""

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "`": "'"})


def normalise(text: str) -> str:
    """Lower case, punctuation and symbols turned into spaces (word-internal apostrophes kept),
    single spaces: ``"Mr. Quilter's gospel!"`` -> ``"mr quilter's gospel"``."""
    chars = []
    for c in text.translate(_APOSTROPHES).lower():
        if c == "'" or not unicodedata.category(c).startswith(("P", "S")):
            chars.append(c)
        else:
            chars.append(" ")
    words = ("".join(chars)).split()
    return " ".join(w.strip("'") for w in words if w.strip("'"))


_ENGLISH_NUMBERS = {
    word: str(i)
    for i, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
} | {w: str(10 * i) for i, w in enumerate("thirty forty fifty sixty seventy eighty ninety".split(), 3)}
"""Whisper writes "1" as often as "one": English number words count as their digits."""


def _english_numbers(words: list[str]) -> list[str]:
    return [_ENGLISH_NUMBERS.get(w, w) for w in words]


def metric_for(language: str) -> str:
    """``cer`` for languages scored by character, ``wer`` otherwise."""
    return "cer" if language in CHARACTER_LANGUAGES else "wer"


def units(text: str, language: str = "") -> list[str]:
    """What errors are counted on: normalised words, or characters (no spaces) for zh/ja/ko."""
    plain = normalise(text)
    if metric_for(language) == "cer":
        return [c for c in plain if not c.isspace()]
    return _english_numbers(plain.split()) if language in ("", "en") else plain.split()


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


def errors(reference: str, hypothesis: str, language: str = "") -> Errors:
    """Substitutions, deletions and insertions of ``hypothesis`` against ``reference``, counted in
    words (characters for zh/ja/ko) after :func:`normalise`."""
    ref, hyp = units(reference, language), units(hypothesis, language)
    if not ref or not hyp:
        return Errors(0, len(ref), len(hyp), len(ref))
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return Errors(out.substitutions, out.deletions, out.insertions, len(ref))


def error_rate(reference: str, hypothesis: str, language: str = "") -> float:
    """WER, or CER for zh/ja/ko (see :func:`metric_for`)."""
    return errors(reference, hypothesis, language).rate


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after :func:`normalise`."""
    return errors(reference, hypothesis).rate


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate after :func:`normalise`, spaces removed."""
    return errors(reference, hypothesis, "zh").rate


def total(pairs: Iterable[tuple[str, str, str]]) -> dict[str, Errors]:
    """Errors summed per metric over ``(reference, hypothesis, language)`` triples:
    ``{"wer": ..., "cer": ...}`` (a metric appears only when some language uses it)."""
    sums: dict[str, Errors] = {}
    for reference, hypothesis, language in pairs:
        metric = metric_for(language)
        sums[metric] = sums.get(metric, Errors()) + errors(reference, hypothesis, language)
    return sums


# --- the corpus ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestClip:
    """One row of the corpus manifest."""

    file: str
    """Path relative to the manifest's folder, with forward slashes (``en/jfk.flac``)."""
    path: Path
    lang: str
    seconds: float
    transcript: str


def read_manifest(speech_dir: Path) -> list[ManifestClip]:
    """The rows of ``speech_dir/manifest.tsv`` (tab-separated, a header naming the columns)."""
    manifest = speech_dir / "manifest.tsv"
    try:
        with open(manifest, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except FileNotFoundError:
        raise InputError(f"{manifest}: corpus manifest not found; give the corpus folder with --corpus") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{manifest}: cannot read the corpus manifest ({e})") from None
    try:
        return [
            ManifestClip(r["file"], speech_dir / r["file"], r["lang"], float(r["seconds"]), r["transcript"])
            for r in rows
        ]
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(
            f"{manifest}: expected tab-separated columns file, lang, seconds, transcript ({type(e).__name__}: {e})"
        ) from None


def derived_from(file: str) -> str | None:
    """The stem a derived copy was made from (``en/jfk`` for ``en/jfk.16k.wav``), else None."""
    return file[: -len(DERIVED_SUFFIX)] if file.endswith(DERIVED_SUFFIX) else None


def dedupe_derived(clips: Sequence[ManifestClip]) -> list[ManifestClip]:
    """One of each derived-copy pair: the original is kept and its ``*.16k.wav`` copy dropped
    (the original also exercises decoding and resampling); a copy whose original is absent stays."""
    stems = {str(PurePosixPath(c.file).with_suffix("")) for c in clips if derived_from(c.file) is None}
    return [c for c in clips if (stem := derived_from(c.file)) is None or stem not in stems]


__all__ = [
    "CHARACTER_LANGUAGES",
    "Errors",
    "ManifestClip",
    "cer",
    "dedupe_derived",
    "derived_from",
    "error_rate",
    "errors",
    "metric_for",
    "normalise",
    "read_manifest",
    "total",
    "units",
    "wer",
]
