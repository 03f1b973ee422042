"""The ``translator`` command. User errors become one line on stderr and a non-zero exit here."""

from __future__ import annotations

import argparse
import faulthandler
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress

from rich.console import Console
from rich.markup import escape

from translator import __version__
from translator.bench import runner as bench
from translator.models import cli as cli_models
from translator import config as cfg
from translator.serve import service
from translator.errors import TranslatorError
from translator.events import Event, Notice, StageFailed
from translator.transcript import JsonlWriter, SrtWriter, UtteranceCollector, UtteranceRecord

EPILOG = "Settings come from defaults, then --config FILE (TOML), then --set section.key=value and the flags."


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("settings")
    g.add_argument("--config", metavar="FILE", help="TOML settings file (example: translator config > config.toml)")
    g.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                   help="override any setting, e.g. --set vad.endpoint=0.3 (repeatable)")
    g.add_argument("--from", dest="source", metavar="LANG", help="spoken language, or auto (default: auto)")
    g.add_argument("--to", dest="target", metavar="LANG", help="language to translate into (default: en)")
    g.add_argument("--asr", metavar="MODEL", help="speech model: tiny.en, base (bundled) or a model directory")
    g.add_argument("--mt-model", metavar="DIR", action="append", default=[], help="extra translation model directory (repeatable)")
    g.add_argument("--voice", metavar="VOICE", help="Piper voice name or .onnx path")
    g.add_argument("--models-dir", metavar="DIR", help="model store (default: $TRANSLATOR_MODELS or the user data dir)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="translator",
        description="Offline speech translator: speech in one language, text and speech out in another.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("translate", help="translate a recording (WAV, FLAC, AIFF, OGG, MP3)", epilog=EPILOG,
                       description="Translate a recording, printing each utterance and writing speech, subtitles and a transcript.")
    t.add_argument("input", metavar="IN", help="audio file")
    t.add_argument("-o", "--output", metavar="OUT.wav", help="write the translated speech here")
    t.add_argument("--srt", metavar="FILE", help="write subtitles of the translation (SubRip)")
    t.add_argument("--jsonl", metavar="FILE", help="write one JSON line per utterance")
    t.add_argument("--realtime", action="store_true",
                   help="feed the audio at real-time pace, as a microphone would (for latency figures)")
    t.add_argument("--quiet", action="store_true", help="print nothing but errors")
    _common(t)
    t.set_defaults(func=cmd_translate)

    r = sub.add_parser("run", help="translate live: microphone -> captions -> speech (the terminal app)", epilog=EPILOG,
                       description="Listen to the microphone, show live captions and the translation, and speak it. "
                                   "Ctrl-C (or SIGTERM, or q) finishes the utterance in flight and exits; a second "
                                   "Ctrl-C exits at once.")
    r.add_argument("--pair", metavar="A:B", help="conversation mode, e.g. en:es: each utterance is detected as A or B "
                                                 "and translated into the other (languages.pair)")
    r.add_argument("--input", metavar="NAME", help="microphone: a device name or part of one (see: translator devices)")
    r.add_argument("--output", metavar="NAME", help="speaker: a device name or part of one")
    r.add_argument("--no-speak", action="store_true", help="captions and translation only, no speech output")
    r.add_argument("--full-duplex", action="store_true",
                   help="keep the microphone open while speaking (headsets): turns off the self-listening guard")
    r.add_argument("--ptt", action="store_true", help="push-to-talk: the microphone is on only while space is held")
    view = r.add_mutually_exclusive_group()
    view.add_argument("--plain", action="store_true", help="one line per event, no colours (automatic when stdout is not a terminal)")
    view.add_argument("--jsonl", action="store_true", help="one JSON object per utterance on stdout")
    r.add_argument("--transcript", metavar="FILE", help="append one JSON line per utterance to FILE")
    _common(r)
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("devices", help="list audio inputs and outputs",
                       description="List the audio inputs and outputs by name; * marks the defaults.")
    d.set_defaults(func=cmd_devices)

    c = sub.add_parser("config", help="print the effective settings as TOML", epilog=EPILOG)
    _common(c)
    c.set_defaults(func=cmd_config)
    cli_models.add_parser(sub)
    bench.add_parser(sub)
    service.add_parser(sub)
    return parser


def settings(args: argparse.Namespace) -> cfg.Config:
    """Defaults < config file < --set < dedicated flags."""
    config = cfg.apply_overrides(cfg.load(args.config), args.overrides)
    flags: dict[str, dict[str, object]] = {}
    for section, key, value in (
        ("languages", "from", args.source),
        ("languages", "to", args.target),
        ("asr", "model", args.asr),
        ("tts", "voice", args.voice),
        ("models", "dir", args.models_dir),
    ):
        if value is not None:
            flags.setdefault(section, {})[key] = value
    if args.mt_model:
        flags.setdefault("mt", {})["models"] = list(config.mt.models) + args.mt_model
    return cfg.merge(config, flags, "command line")


def cmd_config(args: argparse.Namespace, console: Console) -> int:
    console.out(cfg.to_toml(settings(args)), highlight=False)
    return 0


def describe(record: UtteranceRecord) -> str:
    """The per-utterance block the translate command prints (rich markup)."""
    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x * 1000:.0f} ms"

    lines = [
        f"[bold][{record.start:7.2f}–{record.end:7.2f}][/bold] {record.language} → {record.target_language}"
        f"  [dim]({escape(record.route)})[/dim]",
        f"  {escape(record.source_text)}",
    ]
    if record.route != "same":
        lines.append(f"  [green]→ {escape(record.text)}[/green]")
    if record.error:
        lines.append(f"  [red]error: {escape(record.error)}[/red]")
    lines.append(
        f"  [dim]asr {ms(record.asr_final)} · mt {ms(record.mt)} · speech {ms(record.speech_to_speech)}"
        f" (compute: asr {ms(record.asr_compute)}, mt {ms(record.mt_compute)})[/dim]"
    )
    return "\n".join(lines)


def cmd_translate(args: argparse.Namespace, console: Console) -> int:
    from translator.assemble import build_pipeline, load_engines  # noqa: PLC0415 (heavy imports)
    from translator.audio.files import PacedSource, WavSink, open_file_source, with_trailing_silence  # noqa: PLC0415

    config = settings(args)
    source = open_file_source(args.input)  # fails fast on a bad file, before loading models
    speak = bool(args.output) and config.tts.enabled
    engines = load_engines(config, speak=speak)
    errors = sum(_notice(notice, console) for notice in engines.notices)
    say: Callable[[str], None] = (lambda _m: None) if args.quiet else (lambda m: console.print(m, highlight=False))
    with ExitStack() as files:
        sink = files.enter_context(WavSink(args.output, 22050)) if speak else None
        writers = [files.enter_context(w(p)) for w, p in ((SrtWriter, args.srt), (JsonlWriter, args.jsonl)) if p]
        blocks = with_trailing_silence(source, config.vad.endpoint + 0.5)
        if args.realtime:
            blocks = PacedSource(blocks)
        collector = UtteranceCollector(speaking=speak)
        count = 0
        for event in build_pipeline(engines, sink=sink, captions=args.realtime).run(blocks):
            errors += _notice(event, console)
            record = collector.feed(event)
            if record is None:
                continue
            count += 1
            say(describe(record))
            for w in writers:
                w.write(record)
    if source.warning:
        console.print(f"[yellow]warning: {escape(str(args.input))}: {escape(source.warning)}[/yellow]", highlight=False)
    if count == 0:
        say(f"[yellow]no speech found in {escape(str(args.input))}[/yellow]")
    # Everything else was still written; a script must still learn that something is missing.
    return TranslatorError.exit_code if errors else 0


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from translator.run import app as ui  # noqa: PLC0415

    config = settings(args)
    extra: dict[str, dict[str, object]] = {}
    if args.pair is not None:
        extra.setdefault("languages", {})["pair"] = args.pair
    for key in ("input", "output"):
        if getattr(args, key) is not None:
            extra.setdefault("audio", {})[key] = getattr(args, key)
    if args.full_duplex:
        extra.setdefault("audio", {})["half_duplex"] = False
    if extra:
        config = cfg.merge(config, extra, "command line")
    options = ui.RunOptions(
        mode=ui.choose_mode(args.plain, args.jsonl, sys.stdout),
        speak=not args.no_speak,
        ptt=args.ptt,
        transcript=args.transcript,
    )
    return ui.run_live(config, options, console)


def cmd_devices(args: argparse.Namespace, console: Console) -> int:
    from translator.run import app as ui  # noqa: PLC0415

    for line in ui.device_table():
        console.out(line, highlight=False)
    return 0


def _notice(event: Event, console: Console) -> int:
    """Show a notice or a stage failure (errors on stderr); returns 1 for an error, else 0."""
    if isinstance(event, Notice) and event.level != "error":
        console.print(f"[yellow]{escape(event.message)}[/yellow]", highlight=False)
    elif isinstance(event, (Notice, StageFailed)):
        where = f"{event.stage} failed on utterance {event.utterance_id}: " if isinstance(event, StageFailed) else ""
        Console(stderr=True).print(f"translator: error: {where}{escape(event.message)}", highlight=False, soft_wrap=True)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>`: every thread's stack on stderr (the journal), to see a hang
        with suppress(OSError, ValueError):  # stderr that is no file (a test's capture): no dump then
            faulthandler.register(signal.SIGUSR1, all_threads=True)
    err = Console(stderr=True)
    try:
        return args.func(args, Console())
    except TranslatorError as e:
        err.print(f"translator: error: {escape(str(e))}", highlight=False, soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
