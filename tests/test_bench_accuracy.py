"""The bench's accuracy by language and its language-ID figures, on hand-made clip runs and
baselines (no models: the figures are pure functions of the records and the baseline's texts), and
the per-language table on a captured rich Console."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from translator.bench import accuracy, scoring
from translator.bench.corpus import ManifestClip
from translator.bench.runner import ClipRun
from translator.bench.spans import SpanLog
from translator.transcript import UtteranceRecord


def _clip(file: str, lang: str, transcript: str) -> ManifestClip:
    return ManifestClip(file, Path(file), lang, 2.0, transcript)


def _record(uid: int, language: str, text: str) -> UtteranceRecord:
    return UtteranceRecord(uid, 0.0, 1.0, language, text, language, text, "same", "", 0.3, 0.4, 0.5, (), 0.1, 0.0, 0.0, False)


def _run(clip: ManifestClip, *utterances: tuple[str, str], repeat: int = 0) -> ClipRun:
    records = [_record(i, language, text) for i, (language, text) in enumerate(utterances, 1)]
    return ClipRun(clip, repeat, records, SpanLog(), 0.0, 3.0, [], 0, 0, 0.0, {})


JFK = _clip("en/jfk.flac", "en", "ask not what your country can do for you")
UBERI = _clip("en/uberi.wav", "en", "one two three")
DE = _clip("de/raum.wav", "de", "der Raum wurde genutzt")
ZH = _clip("zh/jiao.flac", "zh", "砸自己的脚")
RUNS = [
    # one word wrong of nine, in two utterances
    _run(JFK, ("en", "Ask not what your country"), ("en", "can do for me.")),
    _run(UBERI, ("en", "1."), ("en", "2, 3.")),
    # the second utterance detected as English: a language-ID mistake stock does not make
    _run(DE, ("de", "Der Raum"), ("en", "would be used.")),
    # both detect Japanese: not streaming's fault
    _run(ZH, ("ja", "砸自己的脚")),
    # a repeat weighs nothing
    _run(DE, ("en", "the room was used"), repeat=1),
]


def _stock(texts: dict[str, tuple[str, ...]], languages: dict[str, str], beams: tuple[str, ...] = ("beam1", "beam5")) -> dict:
    """A baseline as baseline.baseline() writes it: per clip and beam the text and the language."""
    return {
        "clips": {
            file: {beam: {"text": text, "language": languages[file]} for beam, text in zip(beams, pair, strict=True)}
            for file, pair in texts.items()
        },
        "summary": {beam: {} for beam in beams},
    }


STOCK = _stock(
    {
        JFK.file: ("Ask not what your country can do for you.", "Ask not what your country can do for you."),
        UBERI.file: ("One, two, three.", "1, 2, 3."),
        DE.file: ("Der Raum wurde benutzt.", "Der Raum wurde genutzt."),
        ZH.file: ("砸自己的脚", "砸自己的脚"),
    },
    {JFK.file: "en", UBERI.file: "en", DE.file: "de", ZH.file: "ja"},
)


def _summary(runs: list[ClipRun], stock: dict | None, **kwargs: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {"multilingual": True, "source": None} | kwargs
    return {
        "per_language": accuracy.per_language(runs, stock, **kw),
        "language_id": accuracy.language_id(runs, stock, **kw),
        "wrong_language_outputs": accuracy.wrong_language_outputs(runs),
    }


NO_WRONG_OUTPUT = ("outputs in the wrong language", "0", "", "", "0 · 0 held back")


def test_outputs_in_the_wrong_language_are_counted_held_back_or_passed_off() -> None:
    fr = _clip("fr/dictee.wav", "fr", "et c'est la dictée numéro un")
    held = dataclasses.replace(
        _record(1, "fr", ""), source_text="et c'est la dictée numéro un", target_language="en", translated=False
    )
    french = "Et c'est la dictée numéro un, mon ami."
    passed = dataclasses.replace(_record(2, "fr", french), target_language="en", route="whisper")
    right = dataclasses.replace(
        _record(3, "fr", "And this is dictation number one."), source_text=french, target_language="en", route="whisper"
    )
    run = ClipRun(fr, 0, [held, passed, right], SpanLog(), 0.0, 3.0, [], 0, 0, 0.0, {})
    assert accuracy.wrong_language_outputs([run, *RUNS]) == {
        "not_translated": 1,
        "not_translated_clips": ["fr/dictee.wav"],
        "passed_off": 1,
        "passed_off_clips": ["fr/dictee.wav"],
    }
    assert accuracy.wrong_language_outputs(RUNS)["passed_off"] == 0


def test_error_rates_per_language_beside_stock_beam_1_and_5() -> None:
    per = accuracy.per_language(RUNS, STOCK, multilingual=True, source=None)
    assert list(per) == ["de", "en", "zh"]
    en = per["en"]
    # errors summed over the clips (1 of 9 + 0 of 1 words), not a mean of the clips' rates
    assert (en["metric"], en["clips"], en["utterances"]) == ("wer", 2, 4)
    assert en["streaming"] == pytest.approx(1 / 10, abs=1e-4)
    assert en["beam1"] == 0.0 and en["beam5"] == 0.0
    de = per["de"]
    assert (de["clips"], de["utterances"]) == (1, 2)  # the repeat is not counted
    assert de["streaming"] == pytest.approx(scoring.error_rate(DE.transcript, "Der Raum would be used.", "de"), abs=1e-4)
    assert de["beam1"] == 0.25 and de["beam5"] == 0.0
    assert per["zh"]["metric"] == "cer" and per["zh"]["streaming"] == 0.0
    assert {lang: tuple(e["language_id"].values()) for lang, e in per.items()} == {"de": (1, 0), "en": (0, 0), "zh": (1, 1)}


def test_a_beam_that_was_not_run_is_none_and_no_baseline_leaves_streaming_alone() -> None:
    greedy = _stock(
        {c.file: (c.transcript,) for c in (JFK, UBERI, DE, ZH)}, {c.file: c.lang for c in (JFK, UBERI, DE, ZH)}, ("beam1",)
    )
    per = accuracy.per_language(RUNS, greedy, multilingual=True, source=None)
    assert per["en"]["beam1"] == 0.0 and per["en"]["beam5"] is None
    alone = accuracy.per_language(RUNS, None, multilingual=True, source=None)
    assert alone["de"]["beam1"] is None and alone["de"]["language_id"] == {"wrong_utterances": 1, "wrong_stock_clips": None}
    assert alone["en"]["streaming"] == per["en"]["streaming"]


def test_language_id_per_utterance_streaming_per_clip_stock_and_the_target() -> None:
    lid = accuracy.language_id(RUNS, STOCK, multilingual=True, source=None)
    assert lid["pinned"] is None
    assert lid["streaming"] == {
        "utterances": 7,
        "wrong": 2,
        "right_share": pytest.approx(5 / 7, abs=1e-4),
        "wrong_clips": {DE.file: ["en"], ZH.file: ["ja"]},
    }
    assert lid["stock"] == {"clips": 4, "wrong": 1, "right_share": 0.75, "wrong_clips": {ZH.file: "ja"}}
    # the target: streaming right wherever stock is right; zh is wrong on both sides, de only on ours
    assert lid["stock_right_streaming_wrong"] == [DE.file]


def test_an_utterance_that_failed_before_its_transcript_is_no_language_id_mistake() -> None:
    failed = _run(DE, ("de", "Der Raum wurde genutzt"), ("", ""))
    lid = accuracy.language_id([failed], STOCK, multilingual=True, source=None)
    assert lid["streaming"]["utterances"] == 1 and lid["streaming"]["wrong"] == 0
    assert lid["stock_right_streaming_wrong"] == []


def test_an_english_only_model_detects_nothing_and_says_so() -> None:
    s = _summary(RUNS[:2], STOCK, multilingual=False)
    assert s["language_id"] == {
        "pinned": "en (model is English-only)",
        "streaming": None,
        "stock": None,
        "stock_right_streaming_wrong": None,
    }
    assert s["per_language"]["en"]["language_id"] == {"wrong_utterances": None, "wrong_stock_clips": None}
    assert accuracy.language_id_rows(s) == [("language ID", "-", "", "", "en (model is English-only)"), NO_WRONG_OUTPUT]
    assert accuracy.language_id_lines(s) == []


def test_a_forced_spoken_language_leaves_only_the_stock_figure() -> None:
    s = _summary(RUNS, STOCK, source="de")
    lid = s["language_id"]
    assert lid["pinned"] == "de (languages.from)" and lid["streaming"] is None
    assert lid["stock"]["wrong"] == 1 and lid["stock_right_streaming_wrong"] is None
    rows = accuracy.language_id_rows(s)
    assert rows == [
        ("language ID streaming (% right)", "-", "", "", "de (languages.from)"),
        ("language ID stock (% right)", "75.0", "", "4", "1 clip(s) wrong"),
        NO_WRONG_OUTPUT,
    ]


def test_summary_rows_and_lines_name_the_wrong_clips() -> None:
    s = _summary(RUNS, STOCK)
    assert accuracy.language_id_rows(s) == [
        ("language ID streaming (% right)", "71.4", "", "7", "2 utterance(s) wrong"),
        ("language ID stock (% right)", "75.0", "", "4", "1 clip(s) wrong"),
        ("clips stock right, streaming wrong", "1", "", "", "0"),
        NO_WRONG_OUTPUT,
    ]
    assert accuracy.language_id_lines(s) == [
        "language ID wrong, streaming: de/raum.wav (en), zh/jiao.flac (ja)",
        "language ID wrong, stock: zh/jiao.flac (ja)",
        "[yellow]stock right, streaming wrong: de/raum.wav[/yellow]",
    ]


def _render(summary: dict[str, Any], width: int = 100) -> list[str]:
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None, record=True)
    console.print(accuracy.language_table(summary))
    return [line.rstrip() for line in console.export_text().splitlines()]


def _cells(lines: list[str]) -> dict[str, list[str]]:
    """The table's body rows, by their first cell."""
    rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    return {row[0]: row[1:] for row in rows}


def test_per_language_table() -> None:
    lines = _render(_summary(RUNS, STOCK))
    assert lines[0] == "per language"
    assert lines[2].split("┃")[1:-1] == [
        f" {col} "
        for col in ("lang", "clips", "utts", "metric", "stream %", "stock b1 %", "stock b5 %", "LID stream", "LID stock")
    ]
    assert _cells(lines) == {
        "de": ["1", "2", "wer", "75.0", "25.0", "0.0", "1/2", "0/1"],
        "en": ["2", "4", "wer", "10.0", "0.0", "0.0", "0/4", "0/2"],
        "zh": ["1", "1", "cer", "0.0", "0.0", "0.0", "1/1", "1/1"],
    }
    assert lines[-1] == "LID: wrong language / all, streaming per utterance, stock per clip" and not any(
        "English-only" in line for line in lines
    )


def test_per_language_table_of_an_english_only_model_without_baseline() -> None:
    lines = _render(_summary(RUNS[:2], None, multilingual=False))
    assert _cells(lines) == {"en": ["2", "4", "wer", "10.0", "-", "-", "-", "-"]}
    assert lines[-1] == "language ID of the streaming path: en (model is English-only)"
