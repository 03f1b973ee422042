"""The model store on disk: its layout, manifest and lock; what is installed, removing, listing.

Store layout (``translator.models.locate.store_dir()``; documented in docs/models.md)::

    <store>/asr/faster-whisper-<size>/      model.bin, config.json, tokenizer.json, vocabulary.*
    <store>/tts/<voice>/<voice>.onnx        + <voice>.onnx.json
    <store>/mt/<name>/                      a CTranslate2 model (or an extracted Argos package)
                                            + model-info.json {"name", "family", "sources", "targets"}
    <store>/manifest.json                   what ``install`` put there: source, time, size and sha256
                                            of every file (``verify`` re-hashes against it)
    <store>/.partial/                       downloads in progress (resumable), archives being
                                            extracted; never read as a model

Installing (:mod:`translator.models.install`) assembles a model in ``.partial/`` and moves it into
place under this module's lock. Every user-fixable problem is a
:class:`~translator.errors.ModelError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from translator.errors import ModelError, is_disk_full
from translator.models import locate
from translator.models.catalog import Catalog, CatalogModel, Kind, SourceType, human_size, load_catalog
from translator.models.locate import JOIN_MARKER, PARTIAL_DIR, WHISPER_FILES

MANIFEST = "manifest.json"


class DiskFull(ModelError):
    """No space left while writing into the store; the install removes everything it wrote."""


def unwritable(path: Path, error: OSError) -> ModelError:
    """The one-line error for a failed write into the store: disk full, or not writable."""
    if is_disk_full(error):
        return DiskFull(
            f"{path}: no space left on the device ({error.strerror}); free some space or install into "
            f"another store with --models-dir"
        )
    return ModelError(
        f"{path}: cannot write the model store ({error.strerror}); check its permissions or choose another with --models-dir"
    )


@contextlib.contextmanager
def locked(store: Path) -> Iterator[None]:
    """An exclusive lock on the store (manifest updates, moves into place)."""
    try:
        store.mkdir(parents=True, exist_ok=True)
        f = open(store / ".lock", "a+")  # noqa: SIM115 - closed by the with below, once the open's OSError is handled
    except OSError as e:
        raise unwritable(store, e) from None
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_manifest(store: Path) -> dict[str, Any]:
    """The store's ``manifest.json`` (an empty one when nothing was installed yet)."""
    path = store / MANIFEST
    if not path.is_file():
        return {"schema": 1, "models": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data.get("models"), dict):
            raise ValueError("no models table")
    except (OSError, ValueError, AttributeError) as e:
        raise ModelError(f"{path}: unreadable store manifest ({e}); move it away and reinstall the models") from None
    return data


def write_manifest(store: Path, data: dict[str, Any]) -> None:
    """Replace the manifest in one rename (a crash leaves the old one); call it under :func:`locked`."""
    tmp = store / f"{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, store / MANIFEST)


def layout_problem(kind: Kind, path: Path, name: str = "") -> str:
    """'' when ``path`` has the files a model of ``kind`` needs, else what is missing."""
    if not path.is_dir():
        return f"{path}: not a directory"
    if kind == Kind.ASR:
        missing = [f for f in WHISPER_FILES if not (path / f).is_file()]
        return f"{path}: missing {', '.join(missing)}" if missing else ""
    if kind == Kind.TTS:
        onnx = [p for p in path.glob("*.onnx")]
        if name:
            onnx = [p for p in onnx if p.stem == name]
        if not onnx:
            return f"{path}: no {name or '*'}.onnx Piper voice"
        config = onnx[0].with_name(onnx[0].name + ".json")
        return "" if config.is_file() else f"{config}: missing (every Piper voice needs its .onnx.json)"
    ct2 = path / "model" if (path / "model" / "model.bin").is_file() else path
    if not (ct2 / "model.bin").is_file():
        return f"{path}: no CTranslate2 model.bin"
    tokenizers = ("source.spm", "sentencepiece.model", "sentencepiece.bpe.model", "spm.model")
    if not any((path / t).is_file() for t in tokenizers):
        return f"{path}: no sentencepiece model (source.spm/target.spm, sentencepiece.model or sentencepiece.bpe.model)"
    if (path / "source.spm").is_file() and not (path / "target.spm").is_file():
        return f"{path}: source.spm without target.spm"
    return ""


def installed_dirs(store: Path) -> dict[str, tuple[Kind, Path]]:
    """Every model directory in the store: name -> (kind, path)."""
    found: dict[str, tuple[Kind, Path]] = {}
    for kind in Kind:
        base = store / kind
        if base.is_dir():
            for p in sorted(base.iterdir()):
                if p.is_dir() and not p.name.startswith("."):
                    found[p.name] = (kind, p)
    return found


def bundled_available(entry: CatalogModel) -> bool:
    """Is the package that bundles ``entry`` installed (for base: both halves)?"""
    if entry.bundled is None:
        return False
    if entry.name == "faster-whisper-base":
        return locate.bundled_base_parts() is not None
    if entry.kind == Kind.TTS:
        return locate.bundled_voice() is not None
    location = locate._package_dir(  # the bundled package's folder, as the resolver finds it
        entry.bundled.module, *filter(None, [entry.bundled.path])
    )
    return location is not None and location.is_dir()


def bundled_location(entry: CatalogModel, store: Path) -> Path | None:
    """Where the bundled copy is used from (joining base into the store if needed)."""
    if not bundled_available(entry):
        return None
    if entry.kind == Kind.ASR:
        return locate.resolve_asr(entry.name, store=store)
    if entry.kind == Kind.TTS:
        return locate.bundled_voice()
    return None


def status(entry: CatalogModel, store: Path) -> str:
    """installed | bundled | bundled, joined | available | available, converted here."""
    path = entry.directory(store)
    if path.is_dir():
        if layout_problem(entry.kind, path, entry.name if entry.kind == Kind.TTS else ""):
            return "incomplete: reinstall"
        if (path / JOIN_MARKER).is_file():
            return "bundled, joined"
        return "installed"
    if bundled_available(entry):
        return "bundled"
    if entry.source is not None and entry.source.type == SourceType.CONVERT:
        return "available, converted here"
    return "available" if entry.source is not None else "not available"


def remove(store: Path, name: str, *, catalog: Catalog | None = None) -> Path:
    """Delete an installed model from the store (atomically: it is moved aside, then deleted)."""
    catalog = catalog or load_catalog()
    entry = catalog.find(name)
    dname = entry.name if entry is not None else name
    found = installed_dirs(store).get(dname)
    if found is None:
        if entry is not None and entry.bundled is not None and bundled_available(entry):
            package = entry.bundled.package
            raise ModelError(f"{dname} is bundled in the Python package {package}; remove it with pip uninstall {package}")
        raise ModelError(f"{name}: not installed in {store}")
    kind, path = found
    trash = store / PARTIAL_DIR / f"{dname}.removed-{os.getpid()}"
    try:
        trash.parent.mkdir(parents=True, exist_ok=True)
        with locked(store):
            os.replace(path, trash)
            data = read_manifest(store)
            data["models"].pop(dname, None)
            write_manifest(store, data)
    except OSError as e:
        raise unwritable(store, e) from None
    shutil.rmtree(trash, ignore_errors=True)
    with contextlib.suppress(OSError):
        (store / PARTIAL_DIR).rmdir()
    return path


def model_path(store: Path, name: str, *, catalog: Catalog | None = None) -> Path:
    """Where an installed model is: a directory (ASR, MT) or a voice's ``.onnx``."""
    catalog = catalog or load_catalog()
    entry = catalog.find(name)
    dname = entry.name if entry is not None else name
    kind = entry.kind if entry is not None else (installed_dirs(store).get(dname, ("", None))[0])
    if kind == Kind.ASR:
        return locate.resolve_asr(dname, store=store)
    if kind == Kind.TTS:
        return locate.resolve_voice(dname, store=store).model
    found = installed_dirs(store).get(dname)
    if found is None:
        hint = f"run 'translator models install {dname}'" if entry is not None else "see 'translator models list'"
        raise ModelError(f"{name}: not installed; {hint}")
    return found[1]


@dataclass(frozen=True)
class Listing:
    """One row of ``translator models list``."""

    name: str
    kind: Kind
    languages: str
    size: str
    status: str
    quality: str
    pi: str = ""
    """The oldest Raspberry Pi the model runs on live ("4+", "5"), empty = not rated."""


def listing(store: Path, *, catalog: Catalog | None = None) -> list[Listing]:
    """Every catalog model with its status, then what the store holds that the catalog does not."""
    catalog = catalog or load_catalog()
    rows = []
    for m in catalog.models:
        langs = (
            "all Whisper languages"
            if m.languages == ("*",)
            else (f"{len(m.languages)} languages" if len(m.languages) > 6 else " ".join(m.languages))
        )
        if m.kind == Kind.MT and m.family == "marian":
            langs = f"{'/'.join(m.sources)} → {'/'.join(m.targets)}"
        pi = {4: "4+", 5: "5"}.get(m.pi, "")
        rows.append(Listing(m.name, m.kind, langs, m.size_text, status(m, store), m.quality, pi))
    known = {m.name for m in catalog.models}
    for dname, (kind, path) in installed_dirs(store).items():
        if dname not in known:
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            rows.append(Listing(dname, kind, "", human_size(size), "installed, not in catalog", str(path)))
    return rows
