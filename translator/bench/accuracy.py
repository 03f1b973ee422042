"""Accuracy by language, and language identification against the manifest: the bench's figures that
tell recognition apart where one rate over the whole corpus hides it.

Both come from the first run of each clip (repeats would weigh a clip twice) and sit in the JSON
summary (``per_language``, ``language_id``); the table and the lines here are drawn from that JSON,
so what is printed is what was written.

Language identification is counted per utterance on the streaming path (each utterance is detected
on its own audio) and per clip for the stock baseline (``transcribe()`` detects once, on the first
30 s, before decoding, so its beam size does not change it: beam 1's is used). Issue 11's target is
that streaming detects the right language on every clip where stock whole-clip detection does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from translator.bench import scoring
from translator.bench.runner import ClipRun
from translator.stages.langcheck import wrong_language

BEAMS = ("beam1", "beam5")
"""The stock baseline's beams shown beside streaming (the baseline keys them so)."""


def _rate(pairs: Sequence[tuple[str, str]], language: str) -> float:
    """Errors summed over ``(reference, hypothesis)`` pairs of one language, as one rate."""
    sums = scoring.Errors()
    for reference, hypothesis in pairs:
        sums += scoring.errors(reference, hypothesis, language)
    return round(sums.rate, 4)


def _first(runs: Sequence[ClipRun]) -> list[ClipRun]:
    return [run for run in runs if run.repeat == 0]


def _stock_text(stock: dict[str, Any], file: str, beam: str) -> str:
    return str(stock["clips"][file][beam]["text"])


def _stock_language(stock: dict[str, Any], file: str) -> str:
    return str(stock["clips"][file]["beam1"]["language"])


def _wrong_utterances(run: ClipRun) -> list[str]:
    """The languages detected on the utterances of ``run`` that are not the clip's (an utterance
    that failed before its transcript detected nothing and is not counted)."""
    return [r.language for r in sorted(run.records, key=lambda r: r.utterance_id) if r.language and r.language != run.clip.lang]


def pinned(*, multilingual: bool, source: str | None) -> str | None:
    """Why the streaming path detects no language (what it is pinned to), None when it detects."""
    if not multilingual:
        return "en (model is English-only)"
    return f"{source} (languages.from)" if source else None


def per_language(
    runs: Sequence[ClipRun], stock: dict[str, Any] | None, *, multilingual: bool, source: str | None
) -> dict[str, dict[str, Any]]:
    """For each language of the clips: its metric, clips and utterances, the streaming error rate
    and stock beam 1 / beam 5 beside it (None where that beam was not run), and how many streaming
    utterances and stock clips detected another language (None where nothing was detected)."""
    first = _first(runs)
    stream_detects = pinned(multilingual=multilingual, source=source) is None
    out: dict[str, dict[str, Any]] = {}
    for lang in sorted({run.clip.lang for run in first}):
        mine = [run for run in first if run.clip.lang == lang]
        entry: dict[str, Any] = {
            "metric": scoring.metric_for(lang),
            "clips": len(mine),
            "utterances": sum(len(run.records) for run in mine),
            "streaming": _rate([(run.clip.transcript, run.hypothesis) for run in mine], lang),
        }
        for beam in BEAMS:
            entry[beam] = (
                _rate([(run.clip.transcript, _stock_text(stock, run.clip.file, beam)) for run in mine], lang)
                if stock and beam in stock["summary"]
                else None
            )
        entry["language_id"] = {
            "wrong_utterances": sum(len(_wrong_utterances(run)) for run in mine) if stream_detects else None,
            "wrong_stock_clips": (
                sum(_stock_language(stock, run.clip.file) != lang for run in mine) if stock and multilingual else None
            ),
        }
        out[lang] = entry
    return out


def language_id(
    runs: Sequence[ClipRun], stock: dict[str, Any] | None, *, multilingual: bool, source: str | None
) -> dict[str, Any]:
    """Detected language against the manifest's: streaming per utterance, stock per clip, each
    with counts, the share right and the clips that were wrong; and the clips where stock is right
    and streaming is not (the target: none). A side that detects nothing is None, ``pinned`` says
    why."""
    first = _first(runs)
    why = pinned(multilingual=multilingual, source=source)
    streaming, stock_id, missed = None, None, None
    stream_wrong = {run.clip.file: langs for run in first if (langs := _wrong_utterances(run))}
    if why is None:
        detected = sum(1 for run in first for r in run.records if r.language)
        n_wrong = sum(len(langs) for langs in stream_wrong.values())
        streaming = {
            "utterances": detected,
            "wrong": n_wrong,
            "right_share": _share(detected, n_wrong),
            "wrong_clips": stream_wrong,
        }
    if stock and multilingual:
        stock_wrong = {run.clip.file: lang for run in first if (lang := _stock_language(stock, run.clip.file)) != run.clip.lang}
        stock_id = {
            "clips": len(first),
            "wrong": len(stock_wrong),
            "right_share": _share(len(first), len(stock_wrong)),
            "wrong_clips": stock_wrong,
        }
        if streaming is not None:
            missed = [file for file in stream_wrong if file not in stock_wrong]
    return {"pinned": why, "streaming": streaming, "stock": stock_id, "stock_right_streaming_wrong": missed}


def wrong_language_outputs(runs: Sequence[ClipRun]) -> dict[str, Any]:
    """Outputs that are not in the target language, over the first run of each clip: those the
    pipeline held back as not translated, and those it passed off as a translation while they
    still read as the spoken language (the checker the guard uses; the target: none)."""
    held, passed = [], []
    for run in _first(runs):
        for r in run.records:
            if not r.translated:
                held.append(run.clip.file)
            elif (
                r.language != r.target_language
                and r.text
                and wrong_language(r.text, expected=r.target_language, source=r.language, original=r.source_text)
            ):
                passed.append(run.clip.file)
    return {"not_translated": len(held), "not_translated_clips": held, "passed_off": len(passed), "passed_off_clips": passed}


def _share(n: int, wrong: int) -> float | None:
    return round((n - wrong) / n, 4) if n else None


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}"


def _count(wrong: int | None, of: int) -> str:
    return "-" if wrong is None else f"{wrong}/{of}"


def language_table(summary: dict[str, Any]) -> Table:
    """The per-language table: error rates streaming / stock beam 1 / beam 5, and the language-ID
    mistakes (wrong / counted) of each side."""
    pin = summary["language_id"]["pinned"]
    caption = "LID: wrong language / all, streaming per utterance, stock per clip"
    if pin:
        caption += f"\nlanguage ID of the streaming path: {escape(pin)}"
    t = Table(title="per language", title_justify="left", caption=caption, caption_justify="left")
    for col in ("lang", "clips", "utts", "metric", "stream %", "stock b1 %", "stock b5 %", "LID stream", "LID stock"):
        t.add_column(col, justify="left" if col == "lang" else "right")
    for lang, e in summary["per_language"].items():
        lid = e["language_id"]
        t.add_row(
            escape(lang),
            str(e["clips"]),
            str(e["utterances"]),
            e["metric"],
            _pct(e["streaming"]),
            _pct(e["beam1"]),
            _pct(e["beam5"]),
            _count(lid["wrong_utterances"], e["utterances"]),
            _count(lid["wrong_stock_clips"], e["clips"]),
        )
    return t


def language_id_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The summary table's language-ID rows (figure, value, p95, n, target)."""
    lid = summary["language_id"]
    wrong = summary["wrong_language_outputs"]
    last = ("outputs in the wrong language", str(wrong["passed_off"]), "", "", f"0 · {wrong['not_translated']} held back")
    if lid["streaming"] is None and lid["stock"] is None:
        return [("language ID", "-", "", "", lid["pinned"] or "no baseline"), last]
    rows = []
    for side, unit in (("streaming", "utterance"), ("stock", "clip")):
        s = lid[side]
        if s is None:
            rows.append((f"language ID {side} (% right)", "-", "", "", lid["pinned"] if side == "streaming" else "no baseline"))
        else:
            rows.append(
                (f"language ID {side} (% right)", _pct(s["right_share"]), "", str(s[f"{unit}s"]), f"{s['wrong']} {unit}(s) wrong")
            )
    missed = lid["stock_right_streaming_wrong"]
    if missed is not None:
        rows.append(("clips stock right, streaming wrong", str(len(missed)), "", "", "0"))
    return [*rows, last]


def language_id_lines(summary: dict[str, Any]) -> list[str]:
    """Which clips detected another language than the manifest's (rich markup, escaped)."""
    lid = summary["language_id"]
    lines = []
    if lid["streaming"] and lid["streaming"]["wrong_clips"]:
        wrong = ", ".join(f"{file} ({', '.join(langs)})" for file, langs in lid["streaming"]["wrong_clips"].items())
        lines.append(f"language ID wrong, streaming: {escape(wrong)}")
    if lid["stock"] and lid["stock"]["wrong_clips"]:
        wrong = ", ".join(f"{file} ({lang})" for file, lang in lid["stock"]["wrong_clips"].items())
        lines.append(f"language ID wrong, stock: {escape(wrong)}")
    wrong = summary["wrong_language_outputs"]
    if wrong["passed_off_clips"] or wrong["not_translated_clips"]:
        lines.append(
            f"wrong language: passed off {escape(', '.join(wrong['passed_off_clips']) or '-')}; "
            f"held back {escape(', '.join(wrong['not_translated_clips']) or '-')}"
        )
    if lid["stock_right_streaming_wrong"]:
        lines.append(f"[yellow]stock right, streaming wrong: {escape(', '.join(lid['stock_right_streaming_wrong']))}[/yellow]")
    return lines


__all__ = ["BEAMS", "language_id", "language_id_lines", "language_id_rows", "language_table", "per_language", "pinned"]
