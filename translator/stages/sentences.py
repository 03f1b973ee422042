"""Sentences: where text is cut for translation and speech, and how translated pieces join again.

Translation runs one batch item per sentence (shorter inputs decode faster and cache better) and
speech is synthesised one sentence at a time (the first is heard while the rest is synthesised),
so both cut text here, with the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from translator.languages import joiner

_ABBREVIATIONS = frozenset(
    """mr mrs ms mx dr prof st jr sr vs mt lt col gen sgt capt gov sen rep rev hon e.g i.e cf approx
    z.b d.h u.a o.ä bzw ggf evtl hr hrn frl sra srta dra dña ud uds mme mlle p.ex sig dott dhr mevr
    a.m p.m""".split()
)
"""Words that end with a period but not a sentence (lower case, final period removed)."""

_BEFORE_NUMBER = frozenset("no nr art vol p pp fig ch sec tel jan feb mar apr jun jul aug sep sept oct nov dec ca".split())
"""Abbreviations that are not a sentence end when a number follows (``No. 5``, ``Jan. 2020``)."""

_ORDINAL_DOT = frozenset("de da no nb nn fi cs sk sl hr sr bs hu lv et tr is fo".split())
"""Languages that write ordinals as ``3.`` (``am 3. Mai``): a number then a period is not an end."""

_OPENERS = "\"'“‘„«‹([{¿¡"
_CLOSERS = "\"'”’»›)]}」』）"
_BOUNDARY = re.compile(
    rf"(?P<latin>[.!?…]+[{re.escape(_CLOSERS)}]*)(?=\s)"
    rf"|(?P<cjk>[。！？｡]+[{re.escape(_CLOSERS)}]*)"
)


def split_sentences(text: str, language: str = "") -> list[str]:
    """Split ``text`` into sentences for translation, one batch item each.

    Breaks after ``. ! ? …`` followed by white space and after CJK ``。！？`` (no space needed);
    keeps abbreviations (``Mr.``, ``Dr.``, ``e.g.``), initials (``J. K.``), decimals (``3.5``),
    ordinals in languages that write ``3.`` and anything followed by a lower-case word together.
    Text after the last terminator is a sentence too.
    """
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        if m.group("latin") is not None and not _is_sentence_end(text, m, language):
            continue
        piece = text[start : m.end()].strip()
        if piece:
            sentences.append(piece)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _is_sentence_end(text: str, m: re.Match[str], language: str) -> bool:
    nxt = text[m.end() :].lstrip().lstrip(_OPENERS)[:1]
    if nxt.islower():
        return False  # "approx. five", "... and then"
    punct = m.group("latin").rstrip(_CLOSERS)
    if set(punct) != {"."} or len(punct) != 1:
        return True  # "!", "?", "?!", "...", "…"
    before = text[: m.start()].rsplit(" ", 1)[-1].lstrip(_OPENERS)
    word = before.lower()
    if not word:
        return True
    if word in _ABBREVIATIONS:
        return False
    if re.fullmatch(r"[A-Z]", before) or re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", before):
        return False  # an initial ("J. K. Rowling") or an acronym ("U.S.")
    if nxt.isdigit() and word in _BEFORE_NUMBER:
        return False
    return not (word.isdigit() and language in _ORDINAL_DOT)  # an ordinal ("am 3. Mai") is no end


def join_sentences(sentences: Iterable[str], language: str) -> str:
    """Rejoin translated sentences: no space in scripts written without spaces, one otherwise."""
    return joiner(language).join(s for s in (x.strip() for x in sentences) if s)
