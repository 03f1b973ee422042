"""Is this text in that language? The guard that keeps the spoken language from passing as a translation.

Whisper's translate task sometimes answers in the language it heard (base, forced to Spanish, on
espeak-ng's "Mi número favorito es 3061." says "Minumero favorito, S6, S61"), and a text model can
copy its input. :func:`wrong_language` tells the stages when the text they are about to present as
a translation still reads as the source language. The checks, cheapest first:

1. **Script.** Letters mostly in a script the expected language does not write (kana in an
   English "translation" of Japanese) are wrong; letters in the expected language's script, when
   the source language writes another one (Latin text from Russian), are right. Language-free.
2. **No letters** (numbers, punctuation): never wrong, there is nothing to judge.
3. **Classifier** (py3langid, naive Bayes on byte n-grams, offline model inside), asked only "which
   of these two?" ({source, expected}), because that is the question and a free choice among 97
   languages is unreliable on a short phrase ("Ask not." comes out Frisian, restricted to en/fr
   English). Wrong when it gives the source language a probability of at least :data:`THRESHOLD`.
4. **Near copy**, when the classifier does not know one of the languages: the text is its own input
   again, normalised (:data:`NEAR_COPY`).

Measured on the corpus's parallel text (``corpus/text``, Tatoeba rows: short everyday sentences),
each classified restricted to {X, en}: the English sentences (449) give X at most 0.69 over 35
Latin-script X (Afrikaans; 0.46 Dutch, 0.41 French, 0.19 German); the Tatoeba sources in de, es, fr,
it, pt (250) give their own language at least 0.77 ("Siga-o."), 249 of them 0.8 or more; FLORES
prose separates further (English at most 0.02, sources at least 0.84). So the threshold is 0.8. A
phrase of one or two short words is where the classifier guesses: "Hotel." reads as Dutch (0.92),
"Pizza." as Italian (0.96), "Am I?" as German (0.81); those are flagged, and cost that utterance's
speech (its words are still shown, marked not translated). Text without n-gram features ("OK.",
"3061.") scores 0.5 and passes.
"""

from __future__ import annotations

import copy
import difflib
import threading
import unicodedata

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from translator.languages import NO_SPACE
from translator.stages.guards import normalise, units

THRESHOLD = 0.8
"""Probability of the source language, classified between source and expected, from which a text
counts as not translated (figures in the module docstring)."""

NEAR_COPY = 0.9
"""Similarity (difflib ratio of the normalised texts) from which a text is a copy of its input.
Real translation pairs of the corpus reach 0.83 ("Selena Gomez crebbe a Grand Prairie, in Texas."),
es->pt "Mi número favorito es 3061." -> "O meu número favorito é 3061." 0.85."""

FOREIGN_SHARE = 0.5
"""More than this share of the letters in other scripts than the expected language's: wrong. A
name written in its own script inside a translation stays well below it."""

LATIN = "LATIN"
_SCRIPTS: dict[str, frozenset[str]] = {
    code: frozenset(scripts.split())
    for codes, scripts in (
        ("ru uk be bg mk kk ky tg mn tt ba", "CYRILLIC"),
        ("sr", "CYRILLIC LATIN"),
        ("el", "GREEK"),
        ("ar fa ur ps sd", "ARABIC"),
        ("he yi", "HEBREW"),
        ("hi mr ne sa", "DEVANAGARI"),
        ("bn as", "BENGALI"),
        ("pa", "GURMUKHI"),
        ("gu", "GUJARATI"),
        ("ta", "TAMIL"),
        ("te", "TELUGU"),
        ("kn", "KANNADA"),
        ("ml", "MALAYALAM"),
        ("si", "SINHALA"),
        ("th", "THAI"),
        ("lo", "LAO"),
        ("km", "KHMER"),
        ("my", "MYANMAR"),
        ("bo", "TIBETAN"),
        ("ka", "GEORGIAN"),
        ("hy", "ARMENIAN"),
        ("am", "ETHIOPIC"),
        ("zh yue", "HAN"),
        ("ja", "HAN KANA"),
        ("ko", "HANGUL HAN"),
    )
    for code in codes.split()
}
"""The scripts a language is written in, for the languages not written in Latin letters."""

_KNOWN_SCRIPTS = frozenset({LATIN}).union(*_SCRIPTS.values())

_NAME_SCRIPT = {"CJK": "HAN", "HIRAGANA": "KANA", "KATAKANA": "KANA", "KATAKANA-HIRAGANA": "KANA"}
"""First words of Unicode character names that differ from the script's name here."""

_CLASSIFIER_CODES = {"jw": "jv"}
"""Whisper codes py3langid spells otherwise."""

_lock = threading.Lock()
_identifier: LanguageIdentifier | None = None
_restricted: dict[frozenset[str], LanguageIdentifier] = {}


def scripts_of(language: str) -> frozenset[str]:
    """The scripts ``language`` (a Whisper code) is written in."""
    return _SCRIPTS.get(language, frozenset({LATIN}))


def script(char: str) -> str | None:
    """The script of a letter (``LATIN``, ``CYRILLIC``, ``HAN``, ``KANA``...), None for other
    characters and for scripts no language here is written in."""
    if not char.isalpha():
        return None
    words = unicodedata.name(char, "").split()
    if words[:1] in (["FULLWIDTH"], ["HALFWIDTH"]):
        words = words[1:]
    name = _NAME_SCRIPT.get(words[0], words[0]) if words else None
    return name if name in _KNOWN_SCRIPTS else None


def warm_up() -> None:
    """Load the classifier now (about a second), not on the first utterance that needs it."""
    _classifier()


def _classifier() -> LanguageIdentifier:
    global _identifier
    with _lock:
        if _identifier is None:
            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _identifier


def _between(a: str, b: str) -> LanguageIdentifier | None:
    """The classifier restricted to two languages, or None when it does not know one of them.

    ``set_languages`` changes the identifier it is called on, so each pair gets its own shallow
    copy (the model arrays are shared, the restricted ones are new): stages in other threads keep
    classifying with theirs, and nothing is restricted for the next caller.
    """
    full = _classifier()
    pair = frozenset((a, b))
    with _lock:
        restricted = _restricted.get(pair)
        if restricted is None and pair <= set(full.nb_classes):
            restricted = _restricted[pair] = copy.copy(full)
            restricted.set_languages(sorted(pair))
        return restricted


def foreign_script(text: str, expected: str) -> bool | None:
    """True when most letters are in scripts ``expected`` is not written in, False when they are
    not, None for text without letters."""
    found = [s for s in map(script, text) if s is not None]
    if not found:
        return None
    wanted = scripts_of(expected)
    return sum(s not in wanted for s in found) > FOREIGN_SHARE * len(found)


def near_copy(text: str, original: str, language: str) -> bool:
    """``text`` is ``original`` again (normalised), and more than one word (``language``'s units):
    a single word that is the same in both languages ("Taxi.", "Tom.") is no sign of a failure."""
    a, b = normalise(text), normalise(original)
    if len(units(a, language)) < 2 or not b:
        return False
    if language in NO_SPACE:
        a, b = a.replace(" ", ""), b.replace(" ", "")
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= NEAR_COPY


def wrong_language(text: str, *, expected: str, source: str, original: str = "", classify: bool = True) -> bool:
    """True when ``text``, meant to be in ``expected``, reads as ``source`` instead (the module
    docstring has the checks and their figures).

    ``original`` is the source text it was made from, for the near-copy check. ``classify`` False
    skips the classifier: for machine translation, whose failure is a copy or the wrong script, and
    whose test models (random weights) write arbitrary text the classifier would judge at random.
    """
    if expected == source:
        return False
    foreign = foreign_script(text, expected)
    if foreign is None:
        return False
    if foreign:
        return True
    if not scripts_of(source) & scripts_of(expected):
        return False  # in the expected script, which the source language does not write
    if classify:
        restricted = _between(_CLASSIFIER_CODES.get(source, source), _CLASSIFIER_CODES.get(expected, expected))
        if restricted is not None:
            scores = dict(restricted.rank(text))
            return scores[_CLASSIFIER_CODES.get(source, source)] >= THRESHOLD
    return bool(original) and near_copy(text, original, source)
