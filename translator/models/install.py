"""``translator models install``: from the hub or a URL by catalog name, or from a local directory or archive.

Every install is assembled in ``<store>/.partial/<name>/`` and moved into place with one
``os.replace`` after every file has been verified (the hub's size and hash, the catalog's
checksums), so an interrupted or failed install never looks installed. An interrupted download
stays in ``.partial/`` and the next run resumes it; any other failure removes all of it.
Installing from a directory or archive works with no network at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from translator.errors import ModelError
from translator.models import hub
from translator.models.archives import archive_stem, extract_archive, is_archive, package_root
from translator.models.catalog import Catalog, CatalogModel, Kind, SourceType, load_catalog
from translator.models.checksums import ChecksumMismatch, check_file, file_hashes
from translator.models.detect import candidates, detect
from translator.models.hub import DownloadInterrupted, Progress, RemoteFile
from translator.models.locate import MT_INFO, PARTIAL_DIR, MtModel
from translator.models.store import bundled_location, layout_problem, locked, read_manifest, status, unwritable, write_manifest
from translator.text import one_line

CONVERT_HINT = "install the [convert] extra: pip install 'offline-speech-translator[convert]'"


@dataclass(frozen=True)
class Installed:
    """What an install did: where the model is now, its size, where it came from."""

    name: str
    kind: Kind
    path: Path
    size: int
    source: str
    note: str = ""


def _hash_tree(root: Path, known: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file under ``root`` (``known``: sha256 already computed, by path)."""
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            rel = p.relative_to(root).as_posix()
            sha256 = (known or {}).get(rel) or file_hashes(p, md5=False, git=False)[0]
            files[rel] = {"size": p.stat().st_size, "sha256": sha256}
    return files


def _write_info(path: Path, name: str, family: str, sources: tuple[str, ...], targets: tuple[str, ...]) -> None:
    info = {"name": name, "family": family, "sources": list(sources), "targets": list(targets)}
    (path / MT_INFO).write_text(json.dumps(info, indent=1), encoding="utf-8")


@contextlib.contextmanager
def _staging(store: Path, name: str) -> Iterator[Path]:
    """``<store>/.partial/<name>``: kept after an interrupted download (to resume), removed after
    any other failure and after success. One install of a name at a time."""
    stage = store / PARTIAL_DIR / name
    lock_path = store / PARTIAL_DIR / f"{name}.lock"
    try:
        stage.mkdir(parents=True, exist_ok=True)
        lock = open(lock_path, "a+")  # noqa: SIM115 - held for the whole install, closed in the finally below
    except OSError as e:
        raise unwritable(store, e) from None
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise ModelError(f"{name}: another install of this model is running; wait for it to finish") from None
        try:
            yield stage
        except (DownloadInterrupted, KeyboardInterrupt):
            for sub in ("model", "extract"):
                shutil.rmtree(stage / sub, ignore_errors=True)
            if not any(p.is_file() for p in stage.rglob("*")):  # nothing to resume
                shutil.rmtree(stage, ignore_errors=True)
            raise
        except OSError as e:
            shutil.rmtree(stage, ignore_errors=True)
            raise unwritable(store, e) from None
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        else:
            shutil.rmtree(stage, ignore_errors=True)
        finally:
            with contextlib.suppress(OSError):
                lock_path.unlink()
            lock.close()
    finally:
        with contextlib.suppress(OSError):
            (store / PARTIAL_DIR).rmdir()  # only when empty


def _commit(
    store: Path, model_dir: Path, kind: Kind, name: str, source: str, known: Mapping[str, str] | None = None
) -> Installed:
    """Move a verified, complete model directory into place and record it in the manifest."""
    files = _hash_tree(model_dir, known)
    final = store / kind / name
    final.parent.mkdir(parents=True, exist_ok=True)
    with locked(store):
        old = None
        if final.exists():
            old = store / PARTIAL_DIR / f"{name}.old-{os.getpid()}"
            os.replace(final, old)
        os.replace(model_dir, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        data = read_manifest(store)
        data["models"][name] = {
            "kind": kind,
            "path": f"{kind}/{name}",
            "source": source,
            "installed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": files,
        }
        write_manifest(store, data)
    return Installed(name, kind, final, sum(f["size"] for f in files.values()), source)


def _check_catalog_checksums(entry: CatalogModel | None, model_dir: Path) -> None:
    """A copy from a directory or archive must match what the catalog knows of that model."""
    if entry is None:
        return
    for filename, (sha256, md5) in entry.checksums.items():
        path = model_dir / filename
        if not path.is_file():
            raise ModelError(f"{entry.name}: {filename} is missing from the model; use a complete copy")
        if check_file(path, sha256=sha256, md5=md5)[0]:
            raise ChecksumMismatch(
                f"{entry.name}: {filename} does not match the catalog checksum; the copy is corrupt or a different model"
            )


def _finish_mt(entry: CatalogModel | None, model_dir: Path, name: str, guess: MtModel | None = None) -> None:
    """Write ``model-info.json`` from the catalog entry, else from what detection read."""
    if entry is not None and entry.kind == Kind.MT:
        _write_info(model_dir, name, entry.family, entry.sources, entry.targets)
    elif guess is not None:
        _write_info(model_dir, name, guess.family, guess.sources, guess.targets)


def install(
    name: str,
    store: Path,
    *,
    progress: Progress | None = None,
    force: bool = False,
    catalog: Catalog | None = None,
) -> Installed:
    """Install a catalog model from its source (hub, URL, or hub checkpoint + conversion)."""
    catalog = catalog or load_catalog()
    entry = catalog.get(name)
    current = status(entry, store)
    if not force and current in ("installed", "bundled", "bundled, joined"):
        where = entry.directory(store) if current != "bundled" else bundled_location(entry, store)
        return Installed(entry.name, entry.kind, Path(where or entry.directory(store)), 0, current, note=f"already {current}")
    if entry.source is None:
        raise ModelError(
            f"{entry.name} has no download source; install it with 'translator models install --from PATH {entry.name}'"
        )
    if entry.source.type == SourceType.CONVERT:
        _require_converter()
    with _staging(store, entry.name) as stage:
        download_dir, model_dir = stage / "download", stage / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        src = entry.source
        hashes: dict[str, str] = {}
        if src.type in (SourceType.HUB, SourceType.CONVERT):
            commit, remote = hub.list_hub_files(src.location, src.revision, src.files, required=src.type == SourceType.HUB)
            known = entry.checksums  # checked during the download, with the hub's own hashes
            for r in remote:
                sha256, md5 = known.get(Path(r.name).name, (None, None))
                r = replace(r, sha256=sha256 or r.sha256, md5=md5)
                hashes[Path(r.name).name] = hub.download(r, download_dir / r.name, progress=progress)
            source_text = f"hub:{src.location}@{commit}"
            if src.type == SourceType.CONVERT:
                hashes = {}
                convert_checkpoint(download_dir, model_dir)
                source_text = f"converted:{src.location}@{commit}"
            else:
                for r in remote:  # flat: voices live in subfolders of their repository
                    os.replace(download_dir / r.name, model_dir / Path(r.name).name)
        else:
            filename = src.location.rstrip("/").rsplit("/", 1)[-1] or f"{entry.name}.zip"
            sha256, md5 = entry.checksums.get(filename, (None, None))
            archive = download_dir / filename
            hub.download(RemoteFile(filename, src.location, sha256=sha256, md5=md5), archive, progress=progress)
            root = package_root(extract_archive(archive, stage / "extract"))
            shutil.rmtree(model_dir)
            os.replace(root, model_dir)
            source_text = f"url:{src.location}"
        if entry.kind == Kind.MT:
            _finish_mt(entry, model_dir, entry.name)
        problem = layout_problem(entry.kind, model_dir, entry.name if entry.kind == Kind.TTS else "")
        if problem:
            raise ModelError(f"{entry.name}: the download is not a usable model ({problem}); the catalog entry is out of date")
        return _commit(store, model_dir, entry.kind, entry.name, source_text, hashes)


def install_from_path(
    path: str | Path,
    store: Path,
    *,
    name: str | None = None,
    catalog: Catalog | None = None,
) -> list[Installed]:
    """Install from a model directory or archive, or every model found in a directory of them.

    Works with no network. Archives are extracted safely (see :func:`~translator.models.archives.extract_archive`); files are
    checked against the catalog's checksums where it has them, and recorded with their sha256.
    """
    catalog = catalog or load_catalog()
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path}: not found; pass a model directory or a .zip/.tar/.argosmodel archive")
    if name is not None or is_archive(path):
        return _install_one(path, store, name, catalog)
    if not path.is_dir():
        raise ModelError(f"{path}: not a directory or a .zip/.tar/.argosmodel archive")
    if detect(path, path.name, catalog):
        return _install_one(path, store, None, catalog)
    found = candidates(path, catalog)
    if not found:
        raise ModelError(f"{path}: no model found (expected model directories or .zip/.tar/.argosmodel archives)")
    installed = []
    for item in found:
        installed.extend(_install_one(item, store, None, catalog))
    return installed


def _install_one(src: Path, store: Path, name: str | None, catalog: Catalog) -> list[Installed]:
    label = re.sub(r"[^A-Za-z0-9._-]", "_", name or archive_stem(src))
    with _staging(store, f"from-{label}") as stage:
        if is_archive(src):
            root = package_root(extract_archive(src, stage / "extract"))
            hint = name or (root.name if root.name != "extract" else archive_stem(src))
            moved = True
        else:
            root, hint, moved = src, name or src.name, False
        found = detect(root, hint, catalog)
        if not found:
            raise ModelError(
                f"{src}: no model recognised (not a Whisper, Piper, CTranslate2, Argos or Transformers model directory)"
            )
        if name is not None and len(found) > 1:
            found = [f for f in found if f.name == name] or found[:1]
        results = []
        for item in found:
            item_name = name if name is not None else item.name
            entry = catalog.find(item_name)
            if entry is not None:
                item_name = entry.name
                if entry.kind != item.kind:
                    raise ModelError(f"{src}: holds a {item.kind} model but {entry.name} is a {entry.kind} model")
            model_dir = stage / f"model-{item_name}"
            if item.convert:
                convert_checkpoint(item.root, model_dir)
            elif item.kind == Kind.TTS:
                model_dir.mkdir(parents=True)
                for f in item.files:  # renamed with the voice when a NAME was given
                    renamed = item_name + f.name[len(item.name) :] if f.name.startswith(item.name + ".onnx") else f.name
                    shutil.copyfile(f, model_dir / renamed)
            elif moved and len(found) == 1:
                os.replace(item.root, model_dir)
            else:
                shutil.copytree(item.root, model_dir, ignore=shutil.ignore_patterns(".*"))
            _check_catalog_checksums(entry, model_dir)
            if item.kind == Kind.MT:
                _finish_mt(entry, model_dir, item_name, item.mt)
            problem = layout_problem(item.kind, model_dir, item_name if item.kind == Kind.TTS else "")
            if problem:
                raise ModelError(f"{src}: not a complete model ({problem})")
            results.append(_commit(store, model_dir, item.kind, item_name, f"path:{src.resolve()}"))
        return results


def _require_converter() -> None:
    """Fail before downloading anything when the [convert] extra is missing."""
    try:
        import transformers  # noqa: F401, PLC0415 - only checks the [convert] extra is installed
        from ctranslate2.converters import TransformersConverter  # noqa: F401, PLC0415 - only checks it imports
    except ImportError:
        raise ModelError(CONVERT_HINT) from None


def convert_checkpoint(checkpoint: Path, out: Path) -> None:
    """Convert a Transformers Marian/NLLB/M2M100 checkpoint directory to CTranslate2 int8."""
    _require_converter()
    from ctranslate2.converters import TransformersConverter  # noqa: PLC0415 - needs the optional [convert] extra

    copy = [
        f
        for f in (
            "source.spm",
            "target.spm",
            "sentencepiece.bpe.model",
            "spm.model",
            "tokenizer_config.json",
            "special_tokens_map.json",
        )
        if (checkpoint / f).is_file()
    ]
    try:
        TransformersConverter(str(checkpoint), copy_files=copy).convert(str(out), quantization="int8", force=True)
    except ImportError:
        raise ModelError(CONVERT_HINT) from None
    except Exception as e:  # noqa: BLE001 - the converter raises anything from transformers/torch
        raise ModelError(
            f"{checkpoint}: conversion to CTranslate2 failed ({one_line(e)}); is it a Marian, NLLB or M2M100 checkpoint?"
        ) from None
