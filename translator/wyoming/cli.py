"""``translator wyoming``: load the models once, then serve Wyoming clients until stopped."""

from __future__ import annotations

import argparse
import asyncio
import logging

from rich.console import Console

from translator import cliargs, config_load
from translator.serve.journal import setup_logging

log = logging.getLogger("translator.wyoming")


def cmd_wyoming(args: argparse.Namespace, console: Console | None = None) -> int:
    setup_logging(args.verbose)
    config = cliargs.settings(args)
    flags: dict[str, object] = {}
    if args.uri is not None:
        flags["uri"] = args.uri
    if args.zeroconf:
        flags["zeroconf"] = True
    if flags:
        config = config_load.merge(config, {"wyoming": flags}, "command line")
    from translator.wyoming.engine import LocalEngine  # noqa: PLC0415 - heavy: CTranslate2, faster-whisper, Piper
    from translator.wyoming.server import Server  # noqa: PLC0415 - imports the engine

    log.info("loading models for %s", config.wyoming.uri)
    engine = LocalEngine(config)
    log.info("models loaded in %.1f s", engine.engines.load_seconds)
    for notice in engine.engines.notices:  # what loading found (a voice missing, espeak-ng standing in)
        log.warning("%s", notice.message)
    asyncio.run(Server(engine, config.wyoming).run())
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "wyoming",
        help="serve speech recognition, translation and speech over the Wyoming protocol (Home Assistant)",
        description="Wyoming protocol server (docs/home-assistant.md): asr (transcribe, or translate:LANG), tts (Piper "
        "voices) and handle (a transcript in, its translation out), the models loaded once and shared. Settings: the "
        "[wyoming] section; loopback unless wyoming.uri says otherwise.",
        epilog=cliargs.EPILOG,
    )
    p.add_argument(
        "--uri", metavar="URI", help="tcp://HOST:PORT, unix://PATH or stdio:// (default: wyoming.uri, tcp://127.0.0.1:10300)"
    )
    p.add_argument("--zeroconf", action="store_true", help="announce the server over mDNS (needs the zeroconf package)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug lines too")
    cliargs.add_settings_args(p)
    p.set_defaults(func=cmd_wyoming)
