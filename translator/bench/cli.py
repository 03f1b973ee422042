"""``translator bench``: latency and accuracy of the live pipeline on real recordings.

The command line and the run: load the engines once, feed every selected clip at real-time pace
(:mod:`~translator.bench.runner`), measure idle CPU and the stock faster-whisper baseline
(:mod:`~translator.bench.baseline`), then write the JSON, draw the timeline
(:mod:`~translator.bench.plot`) and print the tables (:mod:`~translator.bench.report`). The
heavy modules are imported when the command runs, so registering it costs every other command
nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from translator import cliargs
from translator.audio.blocks import LIVE_BLOCK_SECONDS
from translator.bench.corpus import CORPUS_ENV
from translator.errors import ConfigError, InputError, OutputError
from translator.text import ms, one_line

IDLE_SECONDS = 10.0
"""Default length of the near-silence the idle CPU figure is measured over."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``translator bench`` on the CLI's sub-parsers."""
    b = subparsers.add_parser(
        "bench",
        help="latency and accuracy on real recordings, paced in real time",
        description=(
            "Feed the speech corpus through the live pipeline in real time and report latencies "
            "(median, p95), WER/CER against the references and a stock faster-whisper baseline (overall "
            "and per language), language identification against the manifest, the real-time factor of "
            "each stage, peak memory, load time and idle CPU."
        ),
        epilog=cliargs.EPILOG,
    )
    b.add_argument(
        "--corpus",
        metavar="DIR",
        help=f"corpus folder holding speech/manifest.tsv (default: ${CORPUS_ENV}; one of the two is needed)",
    )
    b.add_argument(
        "--clips",
        metavar="GLOB",
        nargs="+",
        help="only these clips: globs on the manifest paths, e.g. 'en/*' de/picovoice_leopard_test_de.wav",
    )
    b.add_argument("--repeat", metavar="N", type=int, default=1, help="runs of every clip (default: 1)")
    b.add_argument("--json", metavar="FILE", help="write every figure, per clip and per utterance, as JSON")
    b.add_argument("--plot", metavar="FILE.png", help="draw a timeline of one utterance (needs matplotlib)")
    b.add_argument(
        "--plot-clip",
        metavar="GLOB",
        help="draw the utterance of this clip with the most sentences (default: the median speech_to_speech)",
    )
    b.add_argument(
        "--idle",
        metavar="SECONDS",
        type=float,
        default=IDLE_SECONDS,
        help=f"seconds of near-silence for the idle CPU figure, 0 to skip (default: {IDLE_SECONDS:g})",
    )
    b.add_argument(
        "--baseline",
        choices=("both", "greedy", "none"),
        default="both",
        help="stock transcribe() baseline: beam 1 and beam 5 (both), beam 1 only, or none (default: both)",
    )
    b.add_argument(
        "--block-ms",
        metavar="MS",
        type=float,
        default=None,
        help=f"audio block size in ms (default: {ms(LIVE_BLOCK_SECONDS, '')}, as the live microphone delivers it)",
    )
    b.add_argument(
        "--talk",
        metavar="SECONDS",
        type=float,
        default=0.0,
        help="join the selected clips (one language), with pauses, into one talk at least this long and "
        "run it as one clip: does the pipeline keep up over minutes, and the ear-voice lag (default: each clip alone)",
    )
    b.add_argument(
        "--gap",
        metavar="SECONDS",
        type=float,
        default=None,
        help="with --talk: seconds of silence after each clip, 0.1 to 5; shorter than vad.endpoint, e.g. 0.2, "
        "makes continuous speech (default: 1.5, a breath between sentences)",
    )
    b.add_argument(
        "--wyoming",
        action="store_true",
        help="instead: translator wyoming against wyoming-faster-whisper + wyoming-piper on loopback, driven as "
        "Home Assistant drives them (transcript and first speech after the end of speech, WER; English clips)",
    )
    b.add_argument("--quiet", action="store_true", help="print only the summary")
    cliargs.add_settings_args(b)
    b.set_defaults(func=cmd_bench)
    return b


def cmd_bench(args: argparse.Namespace, console: Console) -> int:
    """Run the benchmark as ``args`` say; 0 when it ran (figures over target are not failures)."""
    if args.wyoming:
        from translator.bench import wyoming  # noqa: PLC0415 - heavy: the wyoming client and the servers it starts

        if args.json:
            _check_writable(Path(args.json))
        return wyoming.run(args, console)
    with contextlib.ExitStack() as stack:
        return _bench(args, console, stack)


def _bench(args: argparse.Namespace, console: Console, stack: contextlib.ExitStack) -> int:
    """The benchmark; a talk's recording lives in a temporary folder that ``stack`` removes."""
    from translator.assemble import load_engines  # noqa: PLC0415 - heavy: the engines' modules load only to run the bench
    from translator.bench import corpus, report  # noqa: PLC0415 - heavy: the engines' modules load only to run the bench
    from translator.bench.baseline import baseline  # noqa: PLC0415 - heavy: the engines' modules load only to run the bench
    from translator.bench.plot import pick_utterance, plot_timeline  # noqa: PLC0415 - heavy: the engines' modules load only to run the bench
    from translator.bench.runner import ClipRun, current_rss_mb, idle_cpu, peak_rss_mb, run_clip  # noqa: PLC0415 - heavy: the engines' modules load only to run the bench
    from translator.bench.talk import GAPS, PAUSE, figures, make_talk  # noqa: PLC0415 - heavy: the engines' modules load only to run the bench

    if args.repeat < 1:
        raise ConfigError(f"--repeat: must be at least 1, got {args.repeat}")
    if args.block_ms is not None and not 1 <= args.block_ms <= 2000:
        raise ConfigError(f"--block-ms: give 1 to 2000 ms, got {args.block_ms:g}")
    if args.idle < 0:
        raise ConfigError(f"--idle: must be 0 (skip) or more seconds, got {args.idle}")
    if not 0 <= args.talk <= 3600:
        raise ConfigError(f"--talk: give 0 (each clip alone) to 3600 seconds, got {args.talk:g}")
    if args.gap is not None and not args.talk:
        raise ConfigError("--gap: only with --talk SECONDS (the silence between the talk's clips)")
    if args.gap is not None and not GAPS[0] <= args.gap <= GAPS[1]:
        raise ConfigError(f"--gap: give {GAPS[0]:g} to {GAPS[1]:g} seconds, got {args.gap:g}")
    block_seconds = LIVE_BLOCK_SECONDS if args.block_ms is None else args.block_ms / 1000
    config = cliargs.settings(args)
    speech_dir = corpus.speech_dir(args.corpus)
    manifest = corpus.read_manifest(speech_dir)
    if args.json:
        _check_writable(Path(args.json))
    if args.plot:
        _check_writable(Path(args.plot))

    started = time.monotonic()
    engines = load_engines(config, speak=True)
    clips = corpus.select_clips(manifest, args.clips, english_only=not engines.recognizer.multilingual)
    missing = [c.file for c in clips if not c.path.is_file()]
    if missing:
        raise InputError(f"{speech_dir / missing[0]}: clip listed in the manifest is missing")
    talk = None
    if args.talk:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="translator-talk-")))
        talk = make_talk(clips, args.talk, folder, PAUSE if args.gap is None else args.gap)
        clips = [talk.clip]
    t0 = time.monotonic()
    engines.translator_stage.prepare(sorted({c.lang for c in clips}))
    load_seconds = engines.load_seconds + (time.monotonic() - t0)
    rss_after_load = current_rss_mb()
    for notice in engines.notices:
        console.print(f"[yellow]{escape(notice.message)}[/yellow]", highlight=False)
    info = report.machine(config, engines)
    if not args.quiet:
        console.print(
            f"[dim]{len(clips)} clip(s) x {args.repeat}, model {escape(config.asr.model)}, to {config.languages.target}, "
            f"loaded in {load_seconds:.2f} s, load average {info['load_average_at_start']}[/dim]",
            highlight=False,
        )

    runs: list[ClipRun] = []
    for repeat in range(args.repeat):
        for clip in clips:
            run = run_clip(engines, clip, repeat, block_seconds)
            runs.append(run)
            if not args.quiet:
                s2s = [r.speech_to_speech for r in run.records if r.speech_to_speech is not None]
                console.print(
                    f"[dim]{escape(clip.file)}: {len(run.records)} utterance(s), "
                    f"speech_to_speech {', '.join(ms(x, '') for x in s2s) or '-'} ms[/dim]",
                    highlight=False,
                )
    idle = idle_cpu(engines, args.idle) if args.idle > 0 else None
    peak = peak_rss_mb()
    beams = {"both": (1, 5), "greedy": (1,), "none": ()}[args.baseline]
    stock = baseline(engines, clips, beams) if beams else None
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out: dict[str, Any] = {
        "machine": info,
        "config": dataclasses.asdict(config),
        "command": {
            "clips": [c.file for c in clips],
            "repeat": args.repeat,
            "corpus": str(speech_dir),
            "block_ms": round(block_seconds * 1000, 3),
        },
        "load_seconds": round(load_seconds, 3),
        "rss_after_load_mb": rss_after_load,
        "peak_rss_mb": peak,
        "peak_rss_mb_with_baseline": peak_rss_mb(),
        "idle": idle,
        "summary": report.summarise(
            runs,
            config.asr.model,
            stock,
            multilingual=engines.recognizer.multilingual,
            source=engines.translator_stage.languages.source,
        ),
        "baseline": stock,
        "clips": [report.clip_report(run) for run in runs],
        "talk": figures(runs[0], talk, config.vad) if talk else None,
        "bench_seconds": None,
    }
    out["bench_seconds"] = round(time.monotonic() - started, 1)
    if stock:
        out["summary"]["accuracy_points_above_baseline_beam1"] = {
            metric: round(100 * (rate - stock["summary"]["beam1"].get(metric, rate)), 2)
            for metric, rate in out["summary"]["accuracy"].items()
        }
    if args.plot:
        picked = pick_utterance(runs, args.plot_clip)
        if picked is None:
            raise InputError("--plot: no utterance was recognised, nothing to draw")
        run, record = picked
        title = (
            f"{config.asr.model}: speech_to_speech {ms(record.speech_to_speech)}, "
            f"asr_final {ms(record.asr_final)} ({run.clip.file}, utterance {record.utterance_id})"
        )
        plot_timeline(Path(args.plot), run, record, title)
        out["plot"] = {"file": args.plot, "clip": run.clip.file, "utterance_id": record.utterance_id}
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        except OSError as e:
            raise OutputError(f"{args.json}: cannot write ({one_line(e.strerror or e)})") from None
    report.print_report(console, out, quiet=args.quiet)
    return 0


def _check_writable(path: Path) -> None:
    """Fail before minutes of benchmarking, not after."""
    if not path.parent.is_dir():
        raise OutputError(f"{path}: the folder {path.parent} does not exist; choose a path in an existing folder")
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file name")


__all__ = ["add_parser", "cmd_bench"]
