"""The settings flags every command shares, and how they merge into a :class:`~translator.config.Config`."""

from __future__ import annotations

import argparse

from translator import config as cfg
from translator import config_load, languages

EPILOG = "Settings come from defaults, then --config FILE (TOML), then --set section.key=value and the flags."


def add_settings_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("settings")
    g.add_argument("--config", metavar="FILE", help="TOML settings file (example: translator config > config.toml)")
    g.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override any setting, e.g. --set vad.endpoint=0.3 (repeatable)",
    )
    g.add_argument("--from", dest="source", metavar="LANG", help="spoken language, or auto (default: auto)")
    g.add_argument(
        "--languages",
        metavar="LIST",
        help="detect only among these spoken languages, e.g. en,es,de (default: any; sets languages.allowed)",
    )
    g.add_argument("--to", dest="target", metavar="LANG", help="language to translate into (default: en)")
    g.add_argument("--asr", metavar="MODEL", help="speech model: tiny.en, base (bundled) or a model directory")
    g.add_argument(
        "--mt-model", metavar="DIR", action="append", default=[], help="extra translation model directory (repeatable)"
    )
    g.add_argument("--voice", metavar="VOICE", help="Piper voice name or .onnx path")
    g.add_argument("--models-dir", metavar="DIR", help="model store (default: $TRANSLATOR_MODELS or the user data dir)")


def settings(args: argparse.Namespace) -> cfg.Config:
    """Defaults < config file < --set < dedicated flags."""
    config = config_load.apply_overrides(config_load.load(args.config), args.overrides)
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
    if args.languages is not None:
        flags.setdefault("languages", {})["allowed"] = languages.parse_list(args.languages)
    if args.mt_model:
        flags.setdefault("mt", {})["models"] = list(config.mt.models) + args.mt_model
    return config_load.merge(config, flags, "command line")
