"""``translator run`` (the live terminal app) and ``translator devices``: their flags and commands."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from translator import cliargs, config_load


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "run",
        help="translate live: microphone -> captions -> speech (the terminal app)",
        epilog=cliargs.EPILOG,
        description="Listen to the microphone, show live captions and the translation, and speak it. "
        "Ctrl-C (or SIGTERM, or q) finishes the utterance in flight and exits; a second "
        "Ctrl-C exits at once.",
    )
    r.add_argument(
        "--pair",
        metavar="A:B",
        help="conversation mode, e.g. en:es: each utterance is detected as A or B and translated into the other (languages.pair)",
    )
    r.add_argument("--input", metavar="NAME", help="microphone: a device name or part of one (see: translator devices)")
    r.add_argument("--output", metavar="NAME", help="speaker: a device name or part of one")
    r.add_argument("--no-speak", action="store_true", help="captions and translation only, no speech output")
    r.add_argument(
        "--full-duplex",
        action="store_true",
        help="keep the microphone open while speaking, as it is (headsets): audio.duplex = full",
    )
    r.add_argument("--ptt", action="store_true", help="push-to-talk: the microphone is on only while space is held")
    view = r.add_mutually_exclusive_group()
    view.add_argument(
        "--plain", action="store_true", help="one line per event, no colours (automatic when stdout is not a terminal)"
    )
    view.add_argument("--jsonl", action="store_true", help="one JSON object per utterance on stdout")
    r.add_argument("--transcript", metavar="FILE", help="append one JSON line per utterance to FILE")
    cliargs.add_settings_args(r)
    r.set_defaults(func=cmd_run)

    d = sub.add_parser(
        "devices",
        help="list audio inputs and outputs",
        description="List the audio inputs and outputs by name; * marks the defaults. The last line says which "
        "duplex mode (audio.duplex) translator run would use on the output.",
    )
    d.add_argument("--config", metavar="FILE", help="TOML settings file (its [audio] section is read)")
    d.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides", help="override a setting")
    d.set_defaults(func=cmd_devices)


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from translator.run import app  # noqa: PLC0415 (the live stack is heavy: not for the other commands)
    from translator.run.terminal import choose_mode  # noqa: PLC0415

    config = cliargs.settings(args)
    extra: dict[str, dict[str, object]] = {}
    if args.pair is not None:
        extra.setdefault("languages", {})["pair"] = args.pair
    for key in ("input", "output"):
        if getattr(args, key) is not None:
            extra.setdefault("audio", {})[key] = getattr(args, key)
    if args.full_duplex:
        extra.setdefault("audio", {})["duplex"] = "full"
    if extra:
        config = config_load.merge(config, extra, "command line")
    options = app.RunOptions(
        mode=choose_mode(args.plain, args.jsonl, sys.stdout),
        speak=not args.no_speak,
        ptt=args.ptt,
        transcript=args.transcript,
    )
    return app.run_live(config, options, console)


def cmd_devices(args: argparse.Namespace, console: Console) -> int:
    from translator.run.devices_table import device_table  # noqa: PLC0415 (PortAudio)

    config = config_load.apply_overrides(config_load.load(args.config), args.overrides)
    for line in device_table(config.audio):
        console.out(line, highlight=False)
    return 0
