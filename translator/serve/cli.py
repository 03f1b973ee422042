"""The command line of the service package: ``translator serve`` and ``translator service install``."""

from __future__ import annotations

import argparse
import logging
import os

from rich.console import Console

from translator.errors import EXIT_CONFIG, ConfigError
from translator.serve.install import CONFIG_FILE, cmd_install
from translator.serve.journal import setup_logging
from translator.serve.service import Service
from translator.text import one_line

log = logging.getLogger("translator.service")


def cmd_serve(args: argparse.Namespace, console: Console | None = None) -> int:
    """``serve``: run :class:`Service` until stopped; a config error is one journal line and 78."""
    handler = setup_logging(args.verbose)
    try:
        try:
            return Service(args).run()
        except ConfigError as e:
            log.error("%s", one_line(e, 1000))
            return EXIT_CONFIG
        except Exception:  # a bug: the traceback goes to the journal line by line, at its priority
            log.critical("crashed; systemd will restart the service", exc_info=True)
            handler.flush()
            os._exit(1)  # without waiting for pipeline threads or PortAudio to let go
    finally:
        handler.flush()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``serve`` and ``service install`` on the main parser's subparsers: the one entry
    point of this package."""
    s = subparsers.add_parser(
        "serve",
        help="run as a service: microphone -> translation -> speaker, journal log, sd_notify",
        description="The live translator without a terminal UI, for systemd (see docs/service.md): one log line per "
        "event, a JSON-lines transcript in the state directory, READY/STATUS/WATCHDOG/STOPPING "
        "notifications; SIGTERM finishes the utterance in flight, SIGHUP reloads the config.",
    )
    s.add_argument("--config", metavar="FILE", default=str(CONFIG_FILE), help=f"TOML settings file (default: {CONFIG_FILE})")
    s.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override a setting, e.g. --set languages.to=de (repeatable; kept on reload)",
    )
    s.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where the transcript goes (default: $STATE_DIRECTORY from systemd, else the user state dir)",
    )
    s.add_argument(
        "--transcript-max-mb", type=float, default=10.0, metavar="MB", help="rotate transcript.jsonl at this size (default: 10)"
    )
    s.add_argument("--transcript-keep", type=int, default=5, metavar="N", help="rotated transcripts kept (default: 5)")
    s.add_argument(
        "--stall-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="a stage busy with one item this long without output counts as hung: the watchdog is no longer pinged (default: 60)",
    )
    s.add_argument(
        "--audio-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="an open microphone that delivers no audio this long counts as hung (default: 10)",
    )
    s.add_argument(
        "--stop-timeout",
        type=float,
        default=40.0,
        metavar="S",
        help="on SIGTERM, wait this long for the utterance in flight (default: 40)",
    )
    s.add_argument("-v", "--verbose", action="store_true", help="also log captions and speech chunks")
    s.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("service", help="install the systemd service", description="Set up the systemd service.")
    sub = p.add_subparsers(dest="service_command", required=True, metavar="ACTION")
    i = sub.add_parser(
        "install",
        help="create the translator user, install the unit, the example config and the bundled models (root)",
        description="As root: create the system user 'translator' (group audio), install the packaged translator.service to "
        "/etc/systemd/system, the example config.toml to /etc/translator/config.toml (an existing one is kept), "
        "set up /var/lib/translator/models with the bundled models, and run systemctl daemon-reload.",
    )
    i.add_argument("--dry-run", action="store_true", help="print each step, change nothing")
    i.add_argument(
        "--tune",
        action="store_true",
        help="also measure this box (translator doctor) and set the recommended speech model, voice and caption "
        "interval in the config",
    )
    i.set_defaults(func=cmd_install)
