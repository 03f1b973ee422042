"""``translator translate``: a recording in, translated speech, subtitles and a transcript out."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from contextlib import ExitStack

from rich.console import Console
from rich.markup import escape

from translator import cliargs
from translator.errors import TranslatorError
from translator.events import AudioBlock, Event, Notice, NoticeLevel, StageFailed
from translator.text import ms
from translator.transcript import (
    NOT_TRANSLATED,
    JsonlWriter,
    SrtWriter,
    UtteranceCollector,
    UtteranceRecord,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "translate",
        help="translate a recording (WAV, FLAC, AIFF, OGG, MP3)",
        epilog=cliargs.EPILOG,
        description="Translate a recording, printing each utterance and writing speech, subtitles and a transcript.",
    )
    t.add_argument("input", metavar="IN", help="audio file")
    t.add_argument("-o", "--output", metavar="OUT.wav", help="write the translated speech here")
    t.add_argument("--srt", metavar="FILE", help="write subtitles of the translation (SubRip)")
    t.add_argument("--jsonl", metavar="FILE", help="write one JSON line per utterance")
    t.add_argument(
        "--realtime", action="store_true", help="feed the audio at real-time pace, as a microphone would (for latency figures)"
    )
    t.add_argument("--quiet", action="store_true", help="print nothing but errors")
    cliargs.add_settings_args(t)
    t.set_defaults(func=cmd_translate)


def describe(record: UtteranceRecord) -> str:
    """The per-utterance block the translate command prints (rich markup)."""
    lines = [
        f"[bold][{record.start:7.2f}–{record.end:7.2f}][/bold] {record.language} → {record.target_language}"
        f"  [dim]({escape(record.route)})[/dim]",
        f"  {escape(record.source_text)}",
    ]
    if not record.translated:
        lines.append(f"  [yellow]→ {NOT_TRANSLATED}[/yellow]")
    elif record.route != "same":
        lines.append(f"  [green]→ {escape(record.text)}[/green]")
    if record.error:
        lines.append(f"  [red]error: {escape(record.error)}[/red]")
    lines.append(
        f"  [dim]asr {ms(record.asr_final)} · mt {ms(record.mt)} · speech {ms(record.speech_to_speech)}"
        f" (compute: asr {ms(record.asr_compute)}, mt {ms(record.mt_compute)})[/dim]"
    )
    return "\n".join(lines)


def cmd_translate(args: argparse.Namespace, console: Console) -> int:
    from translator.assemble import build_pipeline, load_engines  # noqa: PLC0415 - heavy: models load only to translate
    from translator.audio.files import FileSource  # noqa: PLC0415 - audio libraries load only to translate
    from translator.audio.sinks import WavSink  # noqa: PLC0415 - audio libraries load only to translate
    from translator.audio.sources import PacedSource, with_trailing_silence  # noqa: PLC0415 - audio libraries load only to translate

    config = cliargs.settings(args)
    source = FileSource(args.input)  # fails fast on a bad file, before loading models
    speak = bool(args.output) and config.tts.enabled
    engines = load_engines(config, speak=speak)
    errors = sum(_notice(notice, console) for notice in engines.notices)
    say: Callable[[str], None] = (lambda _m: None) if args.quiet else (lambda m: console.print(m, highlight=False))
    with ExitStack() as files:
        sink = files.enter_context(WavSink(args.output, 22050)) if speak else None
        writers = [files.enter_context(w(p)) for w, p in ((SrtWriter, args.srt), (JsonlWriter, args.jsonl)) if p]
        blocks: Iterable[AudioBlock] = with_trailing_silence(source, config.vad.endpoint + 0.5)
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


def _notice(event: Event, console: Console) -> int:
    """Show a notice or a stage failure (errors on stderr); returns 1 for an error, else 0."""
    if isinstance(event, Notice) and event.level != NoticeLevel.ERROR:
        console.print(f"[yellow]{escape(event.message)}[/yellow]", highlight=False)
    elif isinstance(event, (Notice, StageFailed)):
        where = f"{event.stage} failed on utterance {event.utterance_id}: " if isinstance(event, StageFailed) else ""
        Console(stderr=True).print(f"translator: error: {where}{escape(event.message)}", highlight=False, soft_wrap=True)
        return 1
    return 0
