"""The ``translator`` command. User errors become one line on stderr and a non-zero exit here."""

from __future__ import annotations

import argparse
import faulthandler
import signal
import sys
from collections.abc import Sequence
from contextlib import suppress

from rich.console import Console
from rich.markup import escape

from translator import __version__, cliargs, config_load, translate_file
from translator.bench import cli as bench
from translator.cliargs import add_settings_args
from translator.doctor import cli as doctor
from translator.errors import TranslatorError
from translator.models import cli as cli_models
from translator.run import cli as run_cli
from translator.serve import cli as service
from translator.wyoming import cli as wyoming


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="translator",
        description="Offline speech translator: speech in one language, text and speech out in another.",
        epilog=cliargs.EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    translate_file.add_parser(sub)
    run_cli.add_parser(sub)
    c = sub.add_parser("config", help="print the effective settings as TOML", epilog=cliargs.EPILOG)
    add_settings_args(c)
    c.set_defaults(func=cmd_config)
    cli_models.add_parser(sub)
    bench.add_parser(sub)
    doctor.add_parser(sub)
    service.add_parser(sub)
    wyoming.add_parser(sub)
    return parser


def cmd_config(args: argparse.Namespace, console: Console) -> int:
    console.out(config_load.to_toml(cliargs.settings(args)), highlight=False)
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
