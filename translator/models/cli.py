"""``translator models``: list, install (hub, URL, local directory or archive), verify, remove, path, route.

Wired into the main parser by ``translator/cli.py`` with ``cli_models.add_parser(sub)``. Every
handler is ``(args, console) -> int``; user errors are raised as TranslatorError subclasses and
turned into one line and an exit code by the CLI edge.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from translator import config as cfg
from translator import config_load, languages
from translator.errors import LanguageError, ModelError
from translator.models import install, locate, store, verify
from translator.models.catalog import Kind, human_size, load_catalog

EPILOG = (
    "The store is --models-dir, else [models] dir of --config, else $TRANSLATOR_MODELS, else the user data "
    "directory (the service uses /var/lib/translator/models). Downloads honour HF_ENDPOINT and HTTPS_PROXY."
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``models`` and its subcommands on the main parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("store")
    g.add_argument("--models-dir", metavar="DIR", help="model store (default: $TRANSLATOR_MODELS or the user data dir)")
    g.add_argument("--config", metavar="FILE", help="TOML settings file; its [models] dir is the store")

    p = subparsers.add_parser(
        "models",
        help="list, install, verify and remove models",
        epilog=EPILOG,
        description="Manage the models in the store: everything works offline except downloads.",
    )
    sub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    s = sub.add_parser(
        "list", parents=[common], help="every known model: installed, bundled or available, with sizes", epilog=EPILOG
    )
    s.add_argument("--kind", choices=list(Kind), help="only speech recognition, synthesis or translation models")
    s.add_argument("--installed", action="store_true", help="only models usable now (installed or bundled)")
    s.add_argument("--pi", action="store_true", help="only models that run live on a Raspberry Pi 4 or 5 (the Pi column)")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser(
        "install",
        parents=[common],
        epilog=EPILOG,
        help="install catalog models from the hub, or from a local directory/archive with --from",
        description="Download catalog models (resumable, checksum-verified), or install from a directory "
        "or archive (.zip, .tar[.gz], .argosmodel) with --from, e.g. a USB stick, with no network.",
    )
    s.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="catalog names (see 'translator models list'); with --from: the name of that model",
    )
    s.add_argument(
        "--from", dest="from_path", metavar="PATH", help="a model directory or archive, or a directory holding several"
    )
    s.add_argument("--force", action="store_true", help="install again even when installed or bundled")
    s.set_defaults(func=cmd_install)

    s = sub.add_parser(
        "verify", parents=[common], epilog=EPILOG, help="re-hash installed and bundled models against their checksums"
    )
    s.add_argument("name", nargs="?", metavar="NAME", help="only this model")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("remove", parents=[common], epilog=EPILOG, help="delete an installed model from the store")
    s.add_argument("name", metavar="NAME")
    s.set_defaults(func=cmd_remove)

    s = sub.add_parser(
        "path", parents=[common], epilog=EPILOG, help="print where an installed model is (directory, or a voice's .onnx)"
    )
    s.add_argument("name", metavar="NAME")
    s.set_defaults(func=cmd_path)

    s = sub.add_parser(
        "route",
        parents=[common],
        epilog=EPILOG,
        help="which translation route a language pair takes, and what would make it better",
    )
    s.add_argument("--from", dest="source", metavar="LANG", required=True, help="spoken language")
    s.add_argument("--to", dest="target", metavar="LANG", required=True, help="language to translate into")
    s.add_argument("--asr", metavar="MODEL", help="speech model (default: [asr] model of the config, base)")
    s.add_argument(
        "--mt-model", metavar="DIR", action="append", default=[], help="extra translation model directory (repeatable)"
    )
    s.add_argument("--prefer-whisper", action="store_true", default=None, help="as [mt] prefer_whisper = true")
    s.set_defaults(func=cmd_route)


def _settings(args: argparse.Namespace) -> cfg.Config:
    return config_load.load(getattr(args, "config", None))


def store_path(args: argparse.Namespace) -> Path:
    """--models-dir, else the config's [models] dir, else $TRANSLATOR_MODELS, else the user data dir."""
    override = getattr(args, "models_dir", None) or _settings(args).models.dir or None
    return locate.store_dir(override)


class RichProgress:
    """Download progress as a rich progress bar, one line per file."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, label: str, total: int | None, done: int) -> None:
        name = label.rsplit("/", 1)[-1]
        self._task = self._progress.add_task(escape(name if not done else f"{name} (resumed)"), total=total, completed=done)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    def finish(self) -> None:
        self._task = None


# --- handlers -----------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    where = store_path(args)
    rows = store.listing(where)
    if args.kind:
        rows = [r for r in rows if r.kind == args.kind]
    if args.installed:
        rows = [r for r in rows if r.status.startswith(("installed", "bundled"))]
    if args.pi:
        rows = [r for r in rows if r.pi]
    table = Table(title=f"Models (store: {escape(str(where))})", title_justify="left", expand=False)
    for column in ("name", "kind", "languages", "size", "status", "Pi", "notes"):
        table.add_column(column, overflow="fold")
    styles = {"installed": "green", "bundled": "cyan", "incomplete": "red"}
    for r in rows:
        style = next((v for k, v in styles.items() if r.status.startswith(k)), "dim")
        table.add_row(
            escape(r.name),
            r.kind,
            escape(r.languages),
            r.size,
            f"[{style}]{escape(r.status)}[/{style}]",
            r.pi,
            escape(r.quality),
        )
    console.print(table)
    return 0


def cmd_install(args: argparse.Namespace, console: Console) -> int:
    where = store_path(args)
    if args.from_path:
        if len(args.names) > 1:
            raise ModelError("with --from, give at most one NAME (the model the directory or archive holds)")
        results = install.install_from_path(args.from_path, where, name=args.names[0] if args.names else None)
    else:
        if not args.names:
            raise ModelError("name the models to install (see 'translator models list'), or use --from PATH")
        catalog = load_catalog()
        for name in args.names:  # every name checked before the first download starts
            catalog.get(name)
        results = []
        with RichProgress(console) as progress:
            for name in args.names:
                results.append(install.install(name, where, progress=progress, force=args.force, catalog=catalog))
    for r in results:
        if r.note:
            console.print(f"{escape(r.name)}: {escape(r.note)} ({escape(str(r.path))})", highlight=False)
        else:
            console.print(
                f"[green]installed[/green] {escape(r.name)} ({human_size(r.size)}, verified) → {escape(str(r.path))}",
                highlight=False,
            )
    return 0


def cmd_verify(args: argparse.Namespace, console: Console) -> int:
    checks = verify.verify(store_path(args), args.name)
    table = Table(title="Verification", title_justify="left")
    for column in ("name", "kind", "result", "details"):
        table.add_column(column, overflow="fold")
    styles = {"ok": "green", "unverified": "yellow", "corrupt": "red", "missing": "red"}
    for c in checks:
        table.add_row(escape(c.name), c.kind, f"[{styles[c.status]}]{c.status}[/{styles[c.status]}]", escape(c.detail))
    console.print(table)
    failed = [c.name for c in checks if c.failed]
    if failed:
        raise ModelError(
            f"{len(failed)} model(s) failed verification: {', '.join(failed)}; reinstall with "
            f"'translator models install --force NAME' (details above)"
        )
    return 0


def cmd_remove(args: argparse.Namespace, console: Console) -> int:
    path = store.remove(store_path(args), args.name)
    console.print(f"removed {escape(args.name)} ({escape(str(path))})", highlight=False)
    if path.name == "faster-whisper-base" and locate.bundled_base_parts() is not None:
        console.print("the bundled Whisper base is joined into the store again on its next use", highlight=False)
    return 0


def cmd_path(args: argparse.Namespace, console: Console) -> int:
    console.out(str(store.model_path(store_path(args), args.name)), highlight=False)
    return 0


def _asr_multilingual(name: str, where: Path) -> bool:
    """Can the configured recognizer run Whisper's translate task (installed and not *.en)?"""
    try:
        path = locate.resolve_asr(name, store=where)
    except ModelError:
        return False
    return not path.name.endswith(".en") and not name.endswith(".en")


def cmd_route(args: argparse.Namespace, console: Console) -> int:
    from translator.stages.routes import plan_route  # noqa: PLC0415 - imports CTranslate2, which listing models does not need

    settings = _settings(args)
    where = store_path(args)
    source, target = languages.check(args.source), languages.check(args.target)
    mt = locate.installed_mt_models(store=where, extra=tuple(Path(p) for p in (*settings.mt.models, *args.mt_model)))
    asr = args.asr or settings.asr.model
    whisper = _asr_multilingual(asr, where)
    prefer = settings.mt.prefer_whisper if args.prefer_whisper is None else args.prefer_whisper
    catalog = load_catalog()
    installed = {m.name for m in mt}
    better = [m for m in catalog.serving(source, target) if m.name not in installed]
    try:
        route = plan_route(source, target, mt, whisper_translate_available=whisper, prefer_whisper=prefer)
    except LanguageError as e:
        hint = f"; e.g. translator models install {better[0].name}" if better else ""
        raise LanguageError(f"{e}{hint}") from None
    names = ", ".join(m.name for m in route.models) or "no translation model"
    console.print(f"{source} → {target}: [bold]{route.kind}[/bold] ({escape(names)})", highlight=False)
    if route.note:
        console.print(f"  {escape(route.note)}", highlight=False)
    if route.kind == "whisper" and source != target:
        console.print(
            f"  speech model {escape(asr)} translates into English itself (lower quality than a translation model)",
            highlight=False,
        )
    suggestions = []
    if route.kind in ("whisper", "pivot"):
        suggestions = [m for m in better if m.family == "marian"][:2] or better[:1]
    elif route.kind == "direct" and route.models and route.models[0].family in ("nllb", "m2m100"):
        suggestions = [m for m in better if m.family == "marian"][:1]  # much faster on small machines
    for m in suggestions:
        console.print(f"  better: translator models install {m.name}  ({m.size_text}; {escape(m.quality)})", highlight=False)
    return 0
