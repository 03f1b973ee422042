"""The speech corpus the benchmark runs on: where it is, its manifest, which clips to run.

The corpus is a folder holding ``speech/manifest.tsv`` (tab-separated: file, lang, seconds,
transcript, ...) and the recordings it lists. It is not part of the package, so its place is given:
``--corpus DIR``, else ``$TRANSLATOR_CORPUS``.

The corpus holds a few derived copies (``x.16k.wav`` made from ``x.flac``/``x.aiff``): the same
utterance twice. :func:`dedupe_derived` keeps one of each pair, so none is counted twice.
"""

from __future__ import annotations

import csv
import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from translator.errors import InputError

CORPUS_ENV = "TRANSLATOR_CORPUS"
"""Environment variable naming the corpus folder when ``--corpus`` is not given."""

DERIVED_SUFFIX = ".16k.wav"
"""The corpus's derived copies: 16 kHz WAV files made from another file of the same stem."""


@dataclass(frozen=True)
class ManifestClip:
    """One row of the corpus manifest."""

    file: str
    """Path relative to the manifest's folder, with forward slashes (``en/jfk.flac``)."""
    path: Path
    lang: str
    seconds: float
    transcript: str


def speech_dir(corpus: str | None) -> Path:
    """The folder holding ``manifest.tsv``: ``DIR/speech`` or ``DIR`` itself, where ``DIR`` is
    ``corpus`` (``--corpus``), else ``$TRANSLATOR_CORPUS``."""
    if corpus:
        root, given = Path(corpus), "--corpus"
    elif os.environ.get(CORPUS_ENV):
        root, given = Path(os.environ[CORPUS_ENV]), f"${CORPUS_ENV}"
    else:
        raise InputError(f"no speech corpus given; use --corpus DIR or set ${CORPUS_ENV} to a folder holding speech/manifest.tsv")
    for candidate in (root / "speech", root):
        if (candidate / "manifest.tsv").is_file():
            return candidate
    raise InputError(f"{root} ({given}): no speech/manifest.tsv in the corpus folder; give the folder that holds it")


def read_manifest(folder: Path) -> list[ManifestClip]:
    """The rows of ``folder/manifest.tsv`` (tab-separated, a header naming the columns)."""
    manifest = folder / "manifest.tsv"
    try:
        with open(manifest, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except FileNotFoundError:
        raise InputError(f"{manifest}: corpus manifest not found; give the corpus folder with --corpus") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{manifest}: cannot read the corpus manifest ({e})") from None
    try:
        return [ManifestClip(r["file"], folder / r["file"], r["lang"], float(r["seconds"]), r["transcript"]) for r in rows]
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(
            f"{manifest}: expected tab-separated columns file, lang, seconds, transcript ({type(e).__name__}: {e})"
        ) from None


def derived_from(file: str) -> str | None:
    """The stem a derived copy was made from (``en/jfk`` for ``en/jfk.16k.wav``), else None."""
    return file[: -len(DERIVED_SUFFIX)] if file.endswith(DERIVED_SUFFIX) else None


def dedupe_derived(clips: Sequence[ManifestClip]) -> list[ManifestClip]:
    """One of each derived-copy pair: the original is kept and its ``*.16k.wav`` copy dropped
    (the original also exercises decoding and resampling); a copy whose original is absent stays."""
    stems = {str(PurePosixPath(c.file).with_suffix("")) for c in clips if derived_from(c.file) is None}
    return [c for c in clips if (stem := derived_from(c.file)) is None or stem not in stems]


def select_clips(clips: Sequence[ManifestClip], globs: Sequence[str] | None, *, english_only: bool) -> list[ManifestClip]:
    """Clips matching ``globs`` (all when None), one of each derived-copy pair, English only for
    an English-only model. A glob that matches nothing is an error, as is an empty selection."""
    chosen = list(clips)
    if globs:
        for g in globs:
            if not any(fnmatch.fnmatchcase(c.file, g) for c in clips):
                raise InputError(f"--clips {g}: matches no clip of the manifest (e.g. en/jfk.flac, 'de/*')")
        chosen = [c for c in clips if any(fnmatch.fnmatchcase(c.file, g) for g in globs)]
    chosen = dedupe_derived(chosen)
    if english_only:
        chosen = [c for c in chosen if c.lang == "en"]
        if not chosen:
            raise InputError("the speech model is English-only and no English clip is selected; use --asr base or pick en/ clips")
    if not chosen:
        raise InputError("no clip selected")
    return chosen


__all__ = [
    "CORPUS_ENV",
    "ManifestClip",
    "dedupe_derived",
    "derived_from",
    "read_manifest",
    "select_clips",
    "speech_dir",
]
