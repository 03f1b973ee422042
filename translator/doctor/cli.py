"""``translator doctor``: measure this box, print what it sustains and the settings it needs.

``--json`` prints the same as one JSON object; ``--write [FILE]`` sets the recommended keys in
the config file (``--config``'s, else the service's /etc/translator/config.toml), keeping its
comments and other keys (translator/config_file.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from translator import cliargs, config_file
from translator.doctor.advice import Current, Measurements, Recommendation
from translator.doctor.measure import advise
from translator.serve.install import CONFIG_FILE


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser(
        "doctor",
        help="measure this box with the installed models and recommend settings for it",
        epilog=cliargs.EPILOG,
        description="Time the installed speech models, the voice and the translation route on a spoken test sentence "
        "(under 30 s), then print what this box sustains and the settings it needs: speech model, voice, caption "
        "interval, threads. The rules are in docs/service.md.",
    )
    d.add_argument("--json", action="store_true", help="print the measurements and the recommendation as JSON")
    d.add_argument(
        "--write",
        nargs="?",
        const="",
        metavar="FILE",
        help=f"set the recommended keys in FILE (default: the --config file, else {CONFIG_FILE}), keeping its comments",
    )
    cliargs.add_settings_args(d)
    d.set_defaults(func=cmd_doctor)


def write_target(args: argparse.Namespace) -> Path:
    return Path(args.write or args.config or CONFIG_FILE)


def report(measured: Measurements, current: Current, rec: Recommendation) -> dict[str, Any]:
    """Everything as plain data (``--json``): the timings with their RTFs, the recommendation, the keys to write."""
    return {
        "cores": measured.cores,
        "threads": measured.threads,
        "clip_seconds": measured.clip_seconds,
        "seconds": measured.seconds,
        "asr": [dataclasses.asdict(t) | {"rtf": t.rtf} for t in measured.asr],
        "voices": [dataclasses.asdict(v) | {"rtf": v.rtf, "quality": v.quality} for v in measured.voices],
        "mt_seconds": measured.mt_seconds,
        "skipped": list(measured.skipped),
        "recommendation": dataclasses.asdict(rec) | {"notes": list(rec.notes)},
        "settings": rec.settings(current),
    }


def _print(console: Console, measured: Measurements, current: Current, rec: Recommendation) -> None:
    out = lambda text: console.print(text, highlight=False, soft_wrap=True)  # noqa: E731 - one call, many lines
    out(
        f"[bold]This box[/bold]: {measured.cores:g} usable cores ({measured.threads} thread{'s' if measured.threads != 1 else ''}); measured in {measured.seconds:.1f} s"
    )
    out(f"test sentence: {measured.clip_seconds:.1f} s of speech")
    for t in measured.asr:
        lang = "English only" if t.english_only else "multilingual"
        out(
            f"  speech model {escape(t.model)} ({lang}): RTF {t.rtf:.2f} (final {t.final_seconds:.2f} s, "
            f"caption {t.caption_seconds:.2f} s, load {t.load_seconds:.1f} s)"
        )
    for v in measured.voices:
        out(f"  voice {escape(v.name)} ({v.quality or 'espeak-ng'}): RTF {v.rtf:.2f}")
    if measured.mt_seconds is not None:
        out(f"  translation: {measured.mt_seconds:.2f} s for the sentence")
    for line in measured.skipped:
        out(f"  [dim]{escape(line)}[/dim]")
    verdict = "keeps real time" if rec.keeps_real_time else "[red]falls behind real time[/red]"
    out(
        f"[bold]Sustains[/bold]: load {rec.load:.2f} of the box ({verdict}); "
        f"speech-to-speech about {rec.speech_to_speech:.2f} s (captions aside)"
    )
    out("[bold]Recommended[/bold]:")
    out(f"  asr.model = {escape(rec.asr_model)}" + ("" if rec.asr_model != current.asr_model else "  (as configured)"))
    if rec.voice:
        same = "  (as configured)" if rec.voice == current.voice else ""
        out(f"  voice = {escape(rec.voice)} ({rec.voice_quality or 'espeak-ng'}){same}")
    out(f"  vad.partial_interval = {rec.partial_interval:g} s (caption interval)")
    reset = "; reset the explicit thread counts to 0" if rec.reset_threads else ""
    out(f"  threads = 0 (automatic: {rec.threads} on this box){reset}")
    for note in rec.notes:
        out(f"  [yellow]note[/yellow]: {escape(note)}")


def cmd_doctor(args: argparse.Namespace, console: Console) -> int:
    config = cliargs.settings(args)
    err = Console(stderr=True)
    progress = None if args.json else (lambda line: err.print(f"[dim]… {escape(line)}[/dim]", highlight=False))
    measured, current, rec = advise(config, progress)
    written = None
    if args.write is not None:
        target = write_target(args)
        changed = config_file.update_file(target, rec.settings(current))
        written = str(target)
    if args.json:
        console.out(json.dumps(report(measured, current, rec) | {"written": written}, indent=2), highlight=False)
        return 0
    _print(console, measured, current, rec)
    if written is not None:
        console.print(f"{'wrote the recommended keys to' if changed else 'already set in'} {escape(written)}", highlight=False)
    return 0
