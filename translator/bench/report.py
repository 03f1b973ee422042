"""The benchmark's figures: summaries over the clip runs, the targets, the JSON parts, the table.

The keys here are the ``translator bench --json`` format the README quotes; keep them stable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import statistics
from collections import Counter
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from translator import cores
from translator.assemble import Engines
from translator.bench import accuracy, scoring
from translator.bench.corpus import ManifestClip
from translator.bench.runner import ClipRun, final_waits, from_voice_end, utterance_timeline
from translator.config import Config
from translator.events import Caption, SpeechGrowing
from translator.stages.sentences import split_sentences
from translator.text import ms

TARGETS_S2S = {"tiny.en": (0.6, 1.0), "base": (0.8, None)}
"""speech_to_speech (median, p95) targets per model: the project's latency goals."""
TARGET_CAPTION = 0.5
TARGET_RSS_MB = 600.0
TARGET_LOAD = 3.0
TARGET_IDLE = 3.0
TARGET_WER_POINTS = 0.5
"""Streaming WER at most this many points above stock beam 5 (issue: as accurate as stock decoding)."""
TARGET_EAR_VOICE_LAG = (2.0, 3.5)
"""Ear-voice lag (median, p95) on continuous speech: from a sentence's end to the first audio of
its translation, an interpreter's 2-3 s (issue 15)."""

STAGES = ("vad", "asr", "mt", "tts")
"""The parts whose compute time is reported per clip."""


def stats(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Count, median, p95, mean, min and max of the measured values (None = not measured)."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"n": 0, "median": None, "p95": None, "mean": None, "min": None, "max": None}
    return {
        "n": len(xs),
        "median": round(statistics.median(xs), 4),
        "p95": round(float(np.percentile(xs, 95)), 4),
        "mean": round(statistics.fmean(xs), 4),
        "min": round(min(xs), 4),
        "max": round(max(xs), 4),
    }


def targets_for(model: str) -> dict[str, float | None]:
    """The targets each figure is held to; speech_to_speech ones only for models that have them."""
    median, p95 = TARGETS_S2S.get(Path(model).name, (None, None))
    return {
        "speech_to_speech_median": median,
        "speech_to_speech_p95": p95,
        "caption_lag_median": TARGET_CAPTION,
        "peak_rss_mb": TARGET_RSS_MB,
        "load_seconds": TARGET_LOAD,
        "idle_cpu_percent": TARGET_IDLE,
        "wer_points_above_baseline": TARGET_WER_POINTS,
    }


def _sentences(clip: ManifestClip) -> int:
    return max(1, len(split_sentences(clip.transcript, clip.lang)))


def summarise(
    runs: Sequence[ClipRun], model: str, stock: dict[str, Any] | None, *, multilingual: bool, source: str | None
) -> dict[str, Any]:
    """Latencies over every utterance of every run, real-time factors, accuracy of the first run
    of each clip (repeats would weigh a clip twice) overall and per language, language
    identification against the manifest and the ``stock`` baseline (``multilingual``: the model
    detects languages; ``source``: the spoken language it is pinned to, None = detected),
    speculation and caption counts, failures."""
    records = [r for run in runs for r in run.records]
    latency = {
        "caption_lag": stats([x for r in records for x in r.caption_lags]),
        "asr_final": stats([r.asr_final for r in records]),
        "final_wait": stats([w for run in runs for w in final_waits(run)]),
        "mt": stats([r.mt for r in records]),
        "speech_to_speech": stats([r.speech_to_speech for r in records]),
        "speech_to_speech_from_voice_end": stats([from_voice_end(run, r) for run in runs for r in run.records]),
    }
    audio = max(sum(run.clip.seconds for run in runs), 1e-9)
    fed = max(sum(run.audio_seconds for run in runs), 1e-9)
    spoken = sum(run.tts_seconds for run in runs)

    def compute(part: str, what: tuple[str, ...] | None = None) -> float:
        return sum(run.log.seconds(part, what) for run in runs)

    rtf = {
        "vad": round(compute("vad") / fed, 5),
        "asr": round(compute("asr") / audio, 4),
        "asr_final_only": round(compute("asr", ("SpeechPaused", "UtteranceEnded")) / audio, 4),
        "asr_captions_only": round(compute("asr", ("SpeechGrowing",)) / audio, 4),
        "mt": round(compute("mt") / audio, 4),
        "tts": round(compute("tts") / spoken, 4) if spoken else None,
        "basis": "compute seconds / input audio seconds (vad: all audio fed; tts: synthesised speech seconds)",
    }
    first = [run for run in runs if run.repeat == 0]
    sums = scoring.total((run.clip.transcript, run.hypothesis, run.clip.lang) for run in first)
    return {
        "utterances": len(records),
        "latency": latency,
        "rtf": rtf,
        "accuracy": {m: round(e.rate, 4) for m, e in sums.items()},
        "per_language": accuracy.per_language(runs, stock, multilingual=multilingual, source=source),
        "language_id": accuracy.language_id(runs, stock, multilingual=multilingual, source=source),
        "wrong_language_outputs": accuracy.wrong_language_outputs(runs),
        "reference_sentences": sum(_sentences(run.clip) for run in first),
        "utterances_per_run": sum(len(run.records) for run in first),
        "speculative_hits": sum(run.speculative_hits for run in runs),
        "speculative_misses": sum(run.speculative_misses for run in runs),
        "caption_snapshots": sum(sum(isinstance(e, SpeechGrowing) for e in run.events) for run in runs),
        "captions_skipped": sum(n for run in runs for k, n in run.caption_turns.items() if k != "decoded"),
        "caption_turns": dict(sum((Counter(run.caption_turns) for run in runs), Counter())),
        "captions": sum(sum(isinstance(e, Caption) for e in run.events) for run in runs),
        "failures": [f for run in runs for f in run.failures],
        "targets": targets_for(model),
    }


def clip_report(run: ClipRun) -> dict[str, Any]:
    """One run of one clip: its text against the reference, compute per stage, every utterance."""
    clip = run.clip
    return {
        "file": clip.file,
        "lang": clip.lang,
        "seconds": clip.seconds,
        "repeat": run.repeat,
        "reference": clip.transcript,
        "hypothesis": run.hypothesis,
        "metric": scoring.metric_for(clip.lang),
        "error_rate": round(scoring.error_rate(clip.transcript, run.hypothesis, clip.lang), 4),
        "reference_sentences": _sentences(clip),
        "speculative_hits": run.speculative_hits,
        "speculative_misses": run.speculative_misses,
        "compute_seconds": {part: round(run.log.seconds(part), 4) for part in STAGES},
        "speech_out_seconds": round(run.tts_seconds, 3),
        "failures": run.failures,
        "utterances": [
            {
                **dataclasses.asdict(r),
                "speech_to_speech_from_voice_end": from_voice_end(run, r),
                "timeline": utterance_timeline(run, r.utterance_id),
            }
            for r in sorted(run.records, key=lambda r: r.utterance_id)
        ],
    }


def machine(config: Config, engines: Engines) -> dict[str, Any]:
    """What the figures were measured on: processor, versions, threads, the load at the start."""
    cpu_model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu_model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu_model)
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for package in ("faster-whisper", "ctranslate2", "onnxruntime", "piper-tts", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count() or 1,
        # Under a cgroup CPU quota (an edge-box budget) the machine's count says nothing of the
        # run: this is what the stages' thread counts were sized by.
        "usable_cores": round(cores.usable(), 2),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "asr_model": config.asr.model,
        "asr_model_dir": str(engines.recognizer.model_dir),
        "compute_type": config.asr.compute_type,
        "threads": {
            "asr": cores.threads(config.asr.threads),
            "mt": cores.threads(config.mt.threads),
            "tts": "onnxruntime default",
            "vad": 1,
        },
        "versions": versions,
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}"


def _target(target: float, what: str, met: bool | None) -> str:
    """``≤ 2000 med met``: the target and whether the figure met it (nothing said when the target
    does not apply)."""
    return f"≤ {ms(target, '')} {what}" + ("" if met is None else " met" if met else " missed")


def print_report(console: Console, report: dict[str, Any], *, quiet: bool) -> None:
    """The per-clip and per-language tables (unless ``quiet``), the summary table with the targets
    and the clips whose language was detected wrong."""
    summary = report["summary"]
    base = report.get("baseline") or {}
    if not quiet:
        t = Table(title="per clip", title_justify="left")
        for col in ("clip", "s", "utts", "metric", "stream %", "stock b1 %", "stock b5 %", "s2s med ms"):
            t.add_column(col, overflow="fold", justify="left" if col == "clip" else "right")
        for c in report["clips"]:
            if c["repeat"] != 0:
                continue
            s2s = stats([u["speech_to_speech"] for u in c["utterances"]])["median"]
            b = base.get("clips", {}).get(c["file"], {})
            t.add_row(
                escape(c["file"]),
                f"{c['seconds']:.1f}",
                str(len(c["utterances"])),
                c["metric"],
                _pct(c["error_rate"]),
                _pct(b.get("beam1", {}).get("error_rate")),
                _pct(b.get("beam5", {}).get("error_rate")),
                ms(s2s, ""),
            )
        console.print(t)
        console.print(accuracy.language_table(summary))
    targets = summary["targets"]
    machine = report["machine"]
    usable = machine["usable_cores"]  # under a CPU quota, fewer than the machine has
    share = "" if usable == machine["cores"] else f" ({usable:g} usable)"
    t = Table(
        title=f"{machine['asr_model']} · {machine['date']} · {machine['cores']} cores{share}",
        title_justify="left",
    )
    for col in ("figure", "median", "p95", "n", "target"):
        t.add_column(col, justify="left" if col == "figure" else "right")
    lat = summary["latency"]
    for name in ("caption_lag", "final_wait", "asr_final", "mt", "speech_to_speech", "speech_to_speech_from_voice_end"):
        s = lat[name]
        target = ""
        if name == "speech_to_speech" and targets["speech_to_speech_median"] is not None:
            target = f"≤ {ms(targets['speech_to_speech_median'], '')} med"
            if targets["speech_to_speech_p95"] is not None:
                target += f", ≤ {ms(targets['speech_to_speech_p95'], '')} p95"
        if name == "caption_lag":
            target = f"≤ {ms(targets['caption_lag_median'], '')} med"
        t.add_row(f"{name} (ms)", ms(s["median"], ""), ms(s["p95"], ""), str(s["n"]), target)
    for metric, rate in summary["accuracy"].items():
        stock = " / ".join(f"stock b{k[-1]} {_pct(v.get(metric))}" for k, v in sorted(base.get("summary", {}).items()))
        t.add_row(f"{metric.upper()} streaming (%)", _pct(rate), "", "", stock or "-")
    for row in accuracy.language_id_rows(summary):
        t.add_row(*map(escape, row))
    rtf = summary["rtf"]
    t.add_row(
        "RTF vad / asr / mt / tts",
        f"{rtf['vad']:.4f} / {rtf['asr']:.3f} / {rtf['mt']:.3f} / {rtf['tts'] if rtf['tts'] is None else round(rtf['tts'], 3)}",
        "",
        "",
        f"asr final only {rtf['asr_final_only']:.3f}",
    )
    t.add_row("peak RSS (MB)", f"{report['peak_rss_mb']:.0f}", "", "", f"≤ {targets['peak_rss_mb']:.0f}")
    t.add_row("load + warm-up (s)", f"{report['load_seconds']:.2f}", "", "", f"≤ {targets['load_seconds']:g}")
    idle = report.get("idle") or {}
    t.add_row(
        "idle CPU (% of a core)",
        "-" if not idle else f"{idle['percent_of_one_core']:.2f}",
        "",
        "",
        f"≤ {targets['idle_cpu_percent']:g}",
    )
    t.add_row("speculation hits / misses", f"{summary['speculative_hits']} / {summary['speculative_misses']}", "", "", "")
    turns = summary["caption_turns"]
    t.add_row(
        "caption snapshots decoded / skipped",
        f"{turns.get('decoded', 0)} / {summary['captions_skipped']}",
        "",
        "",
        ", ".join(f"{k} {n}" for k, n in sorted(turns.items()) if k != "decoded" and n),
    )
    talk = report.get("talk")
    if talk:
        first, last = talk["first_quarter"], talk["last_quarter"]
        t.add_row(
            f"talk {talk['seconds']:.0f} s: finalised / ended",
            f"{talk['utterances_finalised']} / {talk['utterances_ended']}",
            "",
            "",
            f"asr_final 1st / last quarter {ms(first['asr_final_median'], '')} / {ms(last['asr_final_median'], '')} ms",
        )
        lag = talk["ear_voice_lag"]
        speech = "continuous speech" if talk["speech"] == "continuous" else "pauses"
        t.add_row(
            f"ear-voice lag (ms), {speech} ({talk['gap']:g} s gaps)",
            ms(lag["median"], ""),
            ms(lag["p95"], ""),
            str(lag["n"]),
            f"{_target(lag['target_median'], 'med', lag['median_met'])}, {_target(lag['target_p95'], 'p95', lag['p95_met'])}; "
            f"max {ms(lag['max'], '')}, {lag['missing']} of {lag['sentences']} missing",
        )
    t.add_row("utterances / ref. sentences", f"{summary['utterances_per_run']} / {summary['reference_sentences']}", "", "", "")
    console.print(t)
    for line in accuracy.language_id_lines(summary):
        console.print(line, highlight=False)
    for failure in summary["failures"]:
        console.print(f"[red]failure: {escape(failure)}[/red]", highlight=False)


__all__ = ["TARGET_EAR_VOICE_LAG", "clip_report", "machine", "print_report", "stats", "summarise", "targets_for"]
