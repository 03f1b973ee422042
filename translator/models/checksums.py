"""Hashing model files and comparing them with what the catalog, the hub or the manifest expects.

One read of a file gives every digest asked for: sha256 (the catalog, the hub's LFS id, the
manifest), md5 (Piper's voices.json publishes it) and the git blob id (the hub's id for small
files kept in git rather than LFS).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from translator.errors import ModelError


class ChecksumMismatch(ModelError):
    """What arrived is not what the source or the catalog announced; it has been deleted."""


def file_hashes(path: Path, *, md5: bool = True, git: bool = True) -> tuple[str, str, str]:
    """(sha256, md5, git blob sha1) of a file in one read ('' for those not asked for)."""
    hashers = [hashlib.sha256()]
    if md5:
        hashers.append(hashlib.md5(usedforsecurity=False))  # only to compare with Piper's voices.json
    if git:
        hashers.append(hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False))  # git's object id
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            for h in hashers:
                h.update(block)
    digests = iter(h.hexdigest() for h in hashers)
    return next(digests), next(digests) if md5 else "", next(digests) if git else ""


def check_file(
    path: Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    git_sha1: str | None = None,
) -> tuple[str, str]:
    """(what differs, or '' when ``path`` has the size and digests given; its sha256).

    None means not checked. The size is compared first: a file of the wrong size is not hashed
    (and its sha256 is ''). The sha256 comes back so a caller recording it reads the file once.
    """
    got_size = path.stat().st_size
    if size is not None and got_size != size:
        return f"size {got_size} bytes, expected {size}", ""
    got_sha, got_md5, got_git = file_hashes(path, md5=bool(md5), git=bool(git_sha1))
    if sha256 and got_sha != sha256.lower():
        return f"sha256 {got_sha[:16]}…, expected {sha256[:16]}…", got_sha
    if md5 and got_md5 != md5.lower():
        return f"md5 {got_md5}, expected {md5}", got_sha
    if git_sha1 and got_git != git_sha1.lower():
        return f"git blob id {got_git[:16]}…, expected {git_sha1[:16]}…", got_sha
    return "", got_sha
