"""Unpacking model archives safely: zip (``.argosmodel`` too) and tar, from a USB stick or a download.

Every member is checked before anything is written: absolute paths, ``..`` components, links
that lead outside the extraction folder and device files are refused, so a hostile archive cannot
write outside the store's staging folder.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path

from translator.errors import ModelError
from translator.text import one_line

ARCHIVE_SUFFIXES = (".zip", ".argosmodel", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def is_archive(path: Path) -> bool:
    """A file whose name says it is an archive we extract."""
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def archive_stem(path: Path) -> str:
    """The archive's name without its (possibly double) suffix: ``x.tar.gz`` -> ``x``."""
    name = path.name
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _check_name(archive: Path, name: str) -> None:
    """Refuse an archive member whose name is empty, absolute or climbs out with '..'."""
    why = ""
    if not name:
        why = "an empty name"
    elif name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        why = "an absolute path"
    elif ".." in re.split(r"[\\/]+", name):
        why = "a '..' component"
    if why:
        raise ModelError(f"{archive}: refused, member {name!r} has {why}")


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
        raise ModelError(f"{archive}: corrupt or truncated archive ({one_line(e)}); copy it again") from None
    return dest


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        members = z.infolist()
        for info in members:
            _check_name(archive, info.filename)
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
            _check_name(archive, m.name)
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


def package_root(extracted: Path) -> Path:
    """The folder of an extracted archive that holds the model (Argos: the one top-level folder)."""
    entries = [p for p in extracted.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return extracted
