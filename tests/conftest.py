"""Shared test fixtures: the real-speech corpus that lives beside the project (never copied)."""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("TRANSLATOR_CORPUS") or REPO.parent / "shared" / "corpus")
"""Real recordings with references (speech/manifest.tsv); read in place, never copied."""
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """A missing tool or privilege: skip on a developer's machine, fail under CI (a green CI must
    never mean that a suite did not run)."""
    if CI:
        pytest.fail(reason)
    pytest.skip(reason)


SPEECH = CORPUS / "speech"

SPANISH_NUMBER = "Mi número favorito es 3061."
"""espeak-ng says it; base's greedy translate task answers in Spanish ("Minumero favorito, S6, S61")."""


def espeak(path: Path, voice: str, text: str) -> Path:
    """``text`` spoken by espeak-ng's ``voice`` into the WAV file ``path`` (22.05 kHz mono)."""
    if shutil.which("espeak-ng") is None:
        skip_or_fail("espeak-ng is not installed (apt install espeak-ng)")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return path


@dataclass(frozen=True)
class Clip:
    path: Path
    lang: str
    seconds: float
    sample_rate: int
    transcript: str


def load_clips() -> list[Clip]:
    with open(SPEECH / "manifest.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [Clip(SPEECH / r["file"], r["lang"], float(r["seconds"]), int(r["sample_rate"]), r["transcript"]) for r in rows]


def clip(name: str) -> Clip:
    """The manifest row for ``name`` (a path relative to corpus/speech, e.g. ``en/jfk.flac``)."""
    for c in load_clips():
        if c.path == SPEECH / name:
            return c
    raise KeyError(name)


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (SPEECH / "manifest.tsv").exists():
        pytest.fail(f"speech corpus not found at {SPEECH}: set TRANSLATOR_CORPUS, or put the corpus at ../shared/corpus")
    return CORPUS


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` (e.g. ``64k``) mounted at ``path``: a disk that fills up (root only)."""
    path.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True
    )
    if r.returncode:
        skip_or_fail(f"cannot mount a tmpfs ({r.stderr.strip()}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs."""
    with small_disk(tmp_path / "tmpfs", "64k") as mount:
        yield mount
