"""Recognising models in a local directory (a USB stick, a copied store, a download): which kind, which name.

A model is recognised from its files: Whisper (model.bin, config.json, tokenizer.json), a Piper
voice (``.onnx`` + ``.onnx.json``), a CTranslate2 Marian or NLLB model, an Argos package, or a
Transformers checkpoint to convert. The name comes from the catalog hint, the folder name, or the
model's own metadata; when none says, the error names what to pass.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from translator.errors import ModelError
from translator.models.archives import is_archive
from translator.models.catalog import Catalog, Kind
from translator.models.locate import ARGOS_METADATA, MT_INFO, WHISPER_FILES, MtModel, read_mt_model

ASR_PREFIX = "faster-whisper-"


@dataclass(frozen=True)
class Found:
    """A model recognised in a local directory."""

    kind: Kind
    name: str
    root: Path
    files: tuple[Path, ...] = ()
    """For voices: just these files; else the whole directory."""
    mt: MtModel | None = None
    convert: bool = False


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
    if entry is not None and entry.kind == Kind.ASR:
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
    if (root / MT_INFO).is_file() or (root / ARGOS_METADATA).is_file():
        with contextlib.suppress(ModelError):
            mt = read_mt_model(root)
            return [Found(Kind.MT, entry.name if entry is not None else mt.name, root, mt=mt)]
    if all((root / f).is_file() for f in WHISPER_FILES):
        name = _asr_name(hint, catalog)
        if name is None:
            raise ModelError(
                f"{root}: a Whisper model, but which one? name it: translator models install --from {root} faster-whisper-<size>"
            )
        return [Found(Kind.ASR, name, root)]
    voices = sorted(p for p in root.glob("*.onnx") if p.with_name(p.name + ".json").is_file())
    if voices:
        found = []
        for onnx in voices:
            extra = [root / "MODEL_CARD"] if (root / "MODEL_CARD").is_file() and len(voices) == 1 else []
            found.append(Found(Kind.TTS, onnx.stem, root, (onnx, onnx.with_name(onnx.name + ".json"), *extra)))
        return found
    spm = any((root / f).is_file() for f in ("sentencepiece.bpe.model", "spm.model"))
    if (root / "model.bin").is_file() and ((root / "source.spm").is_file() or spm):
        marian = (root / "source.spm").is_file()
        if entry is not None and entry.kind == Kind.MT:
            return [Found(Kind.MT, entry.name, root)]
        pair = _marian_pair(root, hint) if marian else None
        if pair is not None:
            s, t = pair
            name = f"opus-mt-{s}-{t}"
            return [Found(Kind.MT, name, root, mt=MtModel(name, root, "marian", (s,), (t,)))]
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
            if entry is not None and entry.kind == Kind.MT:
                return [Found(Kind.MT, entry.name, root, convert=True)]
            pair = _marian_pair(root, hint) if model_type == "marian" else None
            if pair is not None:
                s, t = pair
                name = f"opus-mt-{s}-{t}"
                return [Found(Kind.MT, name, root, mt=MtModel(name, root, "marian", (s,), (t,)), convert=True)]
            raise ModelError(f"{root}: a Transformers {model_type} checkpoint; name the catalog entry it is, to convert it")
    return []


def candidates(path: Path, catalog: Catalog) -> list[Path]:
    """Models and archives directly in ``path`` or in its asr/, tts/, mt/ folders (a USB stick)."""
    out = []
    for child in sorted(path.iterdir()):
        if child.name.startswith("."):
            continue
        if is_archive(child):
            out.append(child)
        elif child.is_dir() and child.name in tuple(Kind):
            out.extend(c for c in sorted(child.iterdir()) if not c.name.startswith(".") and (is_archive(c) or c.is_dir()))
        elif child.is_dir():
            out.append(child)
    return [c for c in out if is_archive(c) or detect(c, c.name, catalog)]
