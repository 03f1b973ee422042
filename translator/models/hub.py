"""Downloads for the model installer: files of a Hugging Face Hub repository, and plain URLs.

Only ``translator models install`` comes here; nothing on the translation path imports this module.

* The hub's file listing (``/api/models/{repo}/revision/{rev}?blobs=true``) comes through
  ``huggingface_hub`` (honouring ``HF_ENDPOINT``), and gives every file's size, its LFS sha256 or
  git blob id, and the commit the revision points at: every file of one install comes from that
  one commit (``/{repo}/resolve/{commit}/{file}``).
* Each file is written to ``<dest>.part``; an interrupted download (a dropped connection, Ctrl-C)
  resumes from where it stopped with an HTTP ``Range`` request, now or on the next run. Only when
  the size and hash match is it renamed to ``<dest>``: a half download never looks complete.
* A hash mismatch deletes the ``.part`` (it cannot be resumed into anything good); a full disk
  raises at once. Both are :class:`~translator.errors.ModelError` subclasses with one-line messages.
* Proxies: ``urllib`` and ``huggingface_hub`` both read ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from translator import __version__
from translator.errors import ModelError

TIMEOUT = 30.0
"""Seconds to wait for a server to answer or to send the next block."""

CHUNK = 1 << 16

USER_AGENT = f"offline-speech-translator/{__version__}"


class DownloadInterrupted(ModelError):
    """The connection failed or dropped; the ``.part`` file is kept so the next run resumes."""


class ChecksumMismatch(ModelError):
    """What arrived is not what the source or the catalog announced; it has been deleted."""


class DiskFull(ModelError):
    """No space left while writing; the caller removes everything of the install."""


class Progress(Protocol):
    """Where download progress goes (a rich progress bar in the CLI, a list in tests)."""

    def start(self, label: str, total: int | None, done: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    def start(self, label: str, total: int | None, done: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch, and what it must be once fetched."""

    name: str
    """Path in the repository (or the URL's last component)."""
    url: str
    size: int | None = None
    sha256: str | None = None
    """From the catalog, or the hub's LFS oid."""
    git_sha1: str | None = None
    """The hub's git blob id, for small files kept in git rather than LFS."""
    md5: str | None = None
    """From the catalog (Piper's voices.json publishes md5)."""


def is_disk_full(error: OSError) -> bool:
    return error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)


def disk_full(path: Path, error: OSError) -> DiskFull:
    return DiskFull(
        f"{path}: no space left on the device ({error.strerror}); free some space or install into "
        f"another store with --models-dir"
    )


# --- the hub ------------------------------------------------------------------------------------


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` as it is now (huggingface_hub reads it only once, at import)."""
    from huggingface_hub import constants  # noqa: PLC0415 (only the installer needs the hub)

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _offline_mode() -> bool:
    from huggingface_hub import constants  # noqa: PLC0415

    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return flag.strip().upper() in ("1", "ON", "YES", "TRUE") or bool(constants.HF_HUB_OFFLINE)


def check_online_allowed() -> None:
    if _offline_mode():
        raise ModelError(
            "downloads are switched off (HF_HUB_OFFLINE is set); unset it to download, or install "
            "from a directory or archive with 'translator models install --from PATH'"
        )


def _short(error: BaseException) -> str:
    """The first line of an exception's message, without the URL noise some libraries add."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]


_NETWORK_MODULES = ("httpx", "httpcore", "requests", "urllib3", "ssl", "socket", "h11", "h2")


def _is_network_error(error: BaseException) -> bool:
    """Connection refused, DNS, proxy, TLS or timeout from whichever HTTP library the hub client uses."""
    if isinstance(error, (OSError, TimeoutError)):
        return True
    return any(cls.__module__.split(".")[0].rstrip("0123456789") in _NETWORK_MODULES for cls in type(error).__mro__)


def list_hub_files(repo: str, revision: str, patterns: tuple[str, ...], *, required: bool = True) -> tuple[str, list[RemoteFile]]:
    """(commit, files) of ``repo`` at ``revision`` matching ``patterns`` (``fnmatch`` globs).

    With ``required``, every pattern must match at least one file (a catalog entry gone stale
    fails here, naming the file, before anything is downloaded).
    """
    check_online_allowed()
    from huggingface_hub import HfApi, hf_hub_url  # noqa: PLC0415
    from huggingface_hub.errors import HfHubHTTPError  # noqa: PLC0415

    endpoint = hub_endpoint()
    try:
        info = HfApi(endpoint=endpoint).model_info(
            repo, revision=revision, files_metadata=True, timeout=TIMEOUT, token=False
        )
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 404):
            raise ModelError(f"{repo}@{revision}: not found on the model hub at {endpoint}; check HF_ENDPOINT or the catalog entry") from None
        raise DownloadInterrupted(f"{repo}: the model hub at {endpoint} answered HTTP {status} ({_short(e)}); try again later") from None
    except Exception as e:
        if not _is_network_error(e):
            raise
        raise DownloadInterrupted(
            f"cannot reach the model hub at {endpoint} ({_short(e)}); check the network, HF_ENDPOINT "
            f"and the proxy settings, or install from a directory with --from PATH"
        ) from None
    commit = info.sha or revision
    siblings = {s.rfilename: s for s in (info.siblings or [])}
    chosen: dict[str, RemoteFile] = {}
    for pattern in patterns:
        matches = [name for name in siblings if fnmatch.fnmatchcase(name, pattern)]
        if not matches and required:
            raise ModelError(f"{repo}@{commit[:12]}: no file {pattern!r} in the repository; the catalog entry is out of date")
        for name in matches:
            s = siblings[name]
            lfs = s.lfs
            sha256 = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
            chosen[name] = RemoteFile(
                name=name,
                url=hf_hub_url(repo, name, revision=commit, endpoint=endpoint),
                size=s.size,
                sha256=sha256,
                git_sha1=None if sha256 else s.blob_id,
            )
    return commit, list(chosen.values())


# --- one file -----------------------------------------------------------------------------------


def _open(url: str, offset: int) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)  # noqa: S310 (https/http only: the catalog and HF_ENDPOINT)


def download(
    remote: RemoteFile,
    dest: Path,
    *,
    progress: Progress | None = None,
    attempts: int = 4,
    backoff: float = 0.5,
) -> str:
    """Fetch ``remote`` into ``dest`` (resuming ``dest.part``), verify it, return its sha256."""
    progress = progress or NullProgress()
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    total = remote.size
    last_error = ""
    connected = False
    failures = 0  # in a row without receiving anything: an attempt that made progress does not count
    while True:
        if failures >= max(attempts, 1):
            if not connected:
                host = urllib.parse.urlsplit(remote.url).netloc
                raise DownloadInterrupted(
                    f"cannot reach {host} to download {remote.name} ({last_error}); check the network and the "
                    f"proxy settings, or install from a directory with --from PATH"
                )
            raise DownloadInterrupted(
                f"{remote.name}: download interrupted ({last_error}) after {failures} attempts; "
                f"run the same command again to resume"
            )
        if failures:
            time.sleep(min(backoff * 2 ** (failures - 1), 8.0))
        have = part.stat().st_size if part.exists() else 0
        if total is not None and have > total:
            part.unlink()
            have = 0
        if total is not None and have == total and total > 0:
            break
        failures += 1
        try:
            response = _open(remote.url, have)
        except urllib.error.HTTPError as e:
            connected = True
            if e.code == 416 and total is not None and have == total:
                break
            if e.code == 416:  # our .part is longer than the file: start again
                part.unlink(missing_ok=True)
                last_error = "HTTP 416"
                continue
            if e.code in (401, 403, 404, 410):
                raise ModelError(f"{remote.url}: HTTP {e.code} {e.reason}; the catalog entry is out of date or the server moved the file") from None
            last_error = f"HTTP {e.code} {e.reason}"
            continue
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            last_error = _short(reason if isinstance(reason, BaseException) else e)
            continue
        connected = True
        with response:
            if have and response.status != 206:  # the server ignored the Range: start from zero
                have = 0
            length = response.headers.get("Content-Length")
            if total is None and length is not None and length.isdigit():
                total = have + int(length)
            progress.start(remote.name, total, have)
            try:
                last_error = _stream(response, part, append=have > 0, progress=progress)
            finally:
                progress.finish()
        received = part.stat().st_size if part.exists() else 0
        if not last_error and (total is None or received == total):
            break
        if not last_error:
            last_error = f"received {received} of {total} bytes"
        if received > have:
            failures = 0
    return _verify_part(remote, part, dest)


def _stream(response: http.client.HTTPResponse, part: Path, *, append: bool, progress: Progress) -> str:
    """Copy the response body to ``part``; '' when it ended cleanly, else why it stopped."""
    try:
        out = open(part, "ab" if append else "wb")  # noqa: SIM115 (closed below, errors sorted by cause)
    except OSError as e:
        if is_disk_full(e):
            raise disk_full(part, e) from None
        raise
    with out:
        while True:
            try:
                block = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as e:  # dropped connection, timeout, short body
                return _short(e) or type(e).__name__
            if not block:
                return ""
            try:
                out.write(block)
                out.flush()
            except OSError as e:
                if is_disk_full(e):
                    raise disk_full(part, e) from None
                raise
            progress.advance(len(block))


def file_hashes(path: Path, *, md5: bool = True, git: bool = True) -> tuple[str, str, str]:
    """(sha256, md5, git blob sha1) of a file in one read ('' for those not asked for)."""
    hashers = [hashlib.sha256()]
    if md5:
        hashers.append(hashlib.md5())  # noqa: S324 (only to compare with Piper's voices.json)
    if git:
        hashers.append(hashlib.sha1(f"blob {path.stat().st_size}\0".encode()))  # noqa: S324 (git's object id)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            for h in hashers:
                h.update(block)
    digests = iter(h.hexdigest() for h in hashers)
    return next(digests), next(digests) if md5 else "", next(digests) if git else ""


def _verify_part(remote: RemoteFile, part: Path, dest: Path) -> str:
    size = part.stat().st_size
    problem = ""
    if remote.size is not None and size != remote.size:
        problem = f"size {size} bytes, expected {remote.size}"
    else:
        sha256, md5, git = file_hashes(part, md5=bool(remote.md5), git=bool(remote.git_sha1))
        if remote.sha256 and sha256 != remote.sha256.lower():
            problem = f"sha256 {sha256[:16]}…, expected {remote.sha256[:16]}…"
        elif remote.md5 and md5 != remote.md5.lower():
            problem = f"md5 {md5}, expected {remote.md5}"
        elif remote.git_sha1 and git != remote.git_sha1.lower():
            problem = f"git blob id {git[:16]}…, expected {remote.git_sha1[:16]}…"
    if problem:
        part.unlink(missing_ok=True)
        raise ChecksumMismatch(f"{remote.name}: checksum mismatch ({problem}); the download was discarded, run the command again")
    os.replace(part, dest)
    return sha256
