"""The model catalog: every model the translator knows, where it comes from, what it must hash to.

The catalog is ``catalog.toml``, package data beside this module (``TRANSLATOR_CATALOG`` names
another file); its keys are described at its top and in docs/models.md. This module only parses
and looks up: installing is :mod:`translator.models.install`, the store :mod:`translator.models.store`.
"""

from __future__ import annotations

import difflib
import functools
import os
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from translator.errors import ModelError

# Package data beside this module; pip installs wheels unzipped, so it is a real file.
CATALOG_FILE = Path(str(resources.files(__package__) / "catalog.toml"))


class Kind(StrEnum):
    """What a model does; also the store's top-level folder for it."""

    ASR = "asr"
    """Speech recognition: a faster-whisper (CTranslate2) model."""
    TTS = "tts"
    """Speech synthesis: a Piper ONNX voice."""
    MT = "mt"
    """Translation: a CTranslate2 model (OPUS-MT, Argos, NLLB)."""


class SourceType(StrEnum):
    """Where a catalog model is downloaded from."""

    HUB = "hub"
    """Files of a Hugging Face Hub repository."""
    URL = "url"
    """One archive at a URL (an Argos package)."""
    CONVERT = "convert"
    """A Transformers checkpoint on the hub, converted to CTranslate2 int8 here."""


MT_FAMILIES = ("marian", "nllb", "m2m100")
"""Translation model families the translator runs: ``marian`` (one pair) or ``nllb``/``m2m100``
(many, chosen with language tokens). Checked in the catalog and in ``model-info.json``."""


PI_MODELS = (4, 5)
"""The Raspberry Pi models a catalog entry's ``pi`` may name."""


@dataclass(frozen=True)
class Source:
    """Where a catalog model comes from: ``hub`` (a repository), ``url`` (one archive) or
    ``convert`` (a Transformers checkpoint on the hub, converted to CTranslate2 int8 here)."""

    type: SourceType
    location: str
    revision: str = "main"
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bundled:
    """A model a Python package installs; used in place (base: joined once into the store)."""

    package: str
    module: str
    path: str


@dataclass(frozen=True)
class CatalogModel:
    """One ``[[model]]`` table of the catalog (the keys are described at the catalog's top)."""

    name: str
    kind: Kind
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
    pi: int = 0
    """The oldest Raspberry Pi (4 or 5) this model runs on live; 0 = not rated for a Pi."""

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
        """Where this model is installed in ``store``."""
        return store / self.kind / self.name

    @property
    def size_text(self) -> str:
        return ("~" if self.size_approximate else "") + human_size(self.size)


@dataclass(frozen=True)
class Catalog:
    """Every model of one catalog file, looked up by name or alias."""

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
        found = [m for m in self.models if m.kind == Kind.MT and source in m.sources and target in m.targets]
        return sorted(found, key=lambda m: (m.family != "marian", m.name.startswith("argos-"), m.name))


_MODEL_KEYS = {
    "name",
    "aliases",
    "kind",
    "languages",
    "size",
    "size_approximate",
    "quality",
    "source",
    "bundled",
    "family",
    "sources",
    "targets",
    "sha256",
    "md5",
    "bundled_sha256",
    "pi",
}


def _pairs(where: str, value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ModelError(f'{where}: expected a table of file name = "hex digest"')
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
    if t["kind"] not in tuple(Kind):
        raise ModelError(f"{where}: kind must be one of {', '.join(Kind)}")
    if not isinstance(t["size"], int) or t["size"] <= 0:
        raise ModelError(f"{where}: size must be a positive number of bytes")
    source = None
    if "source" in t:
        s = t["source"]
        kinds = [k for k in SourceType if k in s]
        if len(kinds) != 1:
            raise ModelError(f"{where}: source needs exactly one of {', '.join(SourceType)}")
        files = _strings(f"{where}: source.files", s.get("files", []))
        if kinds[0] != SourceType.URL and not files:
            raise ModelError(f"{where}: source.files is empty")
        source = Source(kinds[0], s[kinds[0]], s.get("revision", "main"), files)
    bundled = None
    if "bundled" in t:
        b = t["bundled"]
        try:
            bundled = Bundled(b["package"], b["module"], b.get("path", ""))
        except (KeyError, TypeError):
            raise ModelError(f"{where}: bundled needs package and module") from None
    family = t.get("family", "")
    sources: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    kind = Kind(t["kind"])
    pi = t.get("pi", 0)
    if pi != 0 and (isinstance(pi, bool) or pi not in PI_MODELS):
        raise ModelError(f"{where}: pi must be one of {', '.join(map(str, PI_MODELS))}, or left out (not rated for a Pi)")
    if kind == Kind.MT:
        if family not in MT_FAMILIES:
            raise ModelError(f"{where}: family must be one of {', '.join(MT_FAMILIES)}")
        sources = _strings(f"{where}: sources", t.get("sources"))
        targets = _strings(f"{where}: targets", t.get("targets"))
    return CatalogModel(
        name=name,
        kind=kind,
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
        pi=pi,
    )


def load_catalog(path: str | Path | None = None) -> Catalog:
    """The catalog: ``path``, else ``$TRANSLATOR_CATALOG``, else the catalog shipped in the package."""
    path = Path(path or os.environ.get("TRANSLATOR_CATALOG") or CATALOG_FILE).expanduser()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise ModelError(
            f"{path}: model catalog not found; set TRANSLATOR_CATALOG to a catalog.toml, or unset it to use the one shipped with the translator"
        ) from None
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
