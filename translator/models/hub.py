"""Downloads for the model installer: files of a Hugging Face Hub repository, and plain URLs.

Only ``translator models install`` comes here; nothing on the translation path imports this
module, and huggingface_hub is imported only inside its functions. huggingface_hub does the
talking; this module decides where the bytes go and whether they are good:

* The file listing, ``HfApi.model_info`` (``/api/models/{repo}/revision/{rev}``, honouring
  ``HF_ENDPOINT``), gives every file's size, its LFS sha256 or git blob id, and the commit the
  revision points at: every file of one install comes from that one commit
  (``/{repo}/resolve/{commit}/{file}``).
* The bytes come through huggingface_hub's ``http_get``: its session (proxies from
  ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``), its retries, which resume with a ``Range`` request
  after a dropped connection, and its size check.
* Each file is written to ``<dest>.part`` in the install's staging folder, and kept there when a
  download is interrupted (a failed retry, an HTTP error, Ctrl-C): the next run resumes from its
  size. ``hf_hub_download``/``snapshot_download`` are not used because they delete their partial
  file on any failure: measured with huggingface_hub 2.4.0, 100 kB received, then a drop and an
  HTTP 503, left nothing, and the next call started again at byte 0; a model is 75 MB to 1.2 GB.
  ``http_get`` hands bytes over in blocks of ``constants.DOWNLOAD_CHUNK_SIZE`` (10 MiB), so a
  drop loses at most the block in flight.
* Only when the size and hash match is ``.part`` renamed to ``<dest>``: a half download never
  looks complete. A hash mismatch deletes the ``.part`` (it cannot be resumed into anything good);
  a full disk raises at once. All are :class:`~translator.errors.ModelError` subclasses with
  one-line messages.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from translator import __version__
from translator.errors import ModelError, is_disk_full
from translator.models.checksums import ChecksumMismatch, check_file
from translator.models.store import unwritable
from translator.offline import is_offline
from translator.text import one_line

TIMEOUT = 30.0
"""Seconds to wait for the hub's file listing."""

HEADERS = {
    "User-Agent": f"offline-speech-translator/{__version__}",
    # The real size in Content-Length, and byte offsets a Range request can resume from.
    "Accept-Encoding": "identity",
}
"""Sent with every file download (no token: the catalog's repositories are public)."""


class DownloadInterrupted(ModelError):
    """The connection failed or dropped; the ``.part`` file is kept so the next run resumes."""


class Progress(Protocol):
    """Where download progress goes (a rich progress bar in the CLI, a list in tests)."""

    def start(self, label: str, total: int | None, done: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """Progress that goes nowhere (and keeps huggingface_hub's own bars off the terminal)."""

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


# --- the hub ------------------------------------------------------------------------------------


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` as it is now (huggingface_hub reads it only once, at import)."""
    from huggingface_hub import constants  # noqa: PLC0415 - only the installer needs the hub

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def check_online_allowed() -> None:
    """Refuse to download while the offline switch is on (see :mod:`translator.offline`)."""
    if is_offline():
        raise ModelError(
            "downloads are switched off (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set); unset it to download, or install "
            "from a directory or archive with 'translator models install --from PATH'"
        )


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
    from huggingface_hub import HfApi, hf_hub_url  # noqa: PLC0415 - only the installer needs the hub
    from huggingface_hub.errors import HfHubHTTPError  # noqa: PLC0415 - only the installer needs the hub

    endpoint = hub_endpoint()
    try:
        info = HfApi(endpoint=endpoint).model_info(repo, revision=revision, files_metadata=True, timeout=TIMEOUT, token=False)
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 404):
            raise ModelError(
                f"{repo}@{revision}: not found on the model hub at {endpoint}; check HF_ENDPOINT or the catalog entry"
            ) from None
        raise DownloadInterrupted(
            f"{repo}: the model hub at {endpoint} answered HTTP {status} ({one_line(e)}); try again later"
        ) from None
    except Exception as e:
        if not _is_network_error(e):
            raise
        raise DownloadInterrupted(
            f"cannot reach the model hub at {endpoint} ({one_line(e)}); check the network, HF_ENDPOINT "
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


class _Bar:
    """What ``http_get`` takes for its ``tqdm_class``: it is called like tqdm's constructor, used
    as a context manager and told ``update(n)``; this passes all of it on to a :class:`Progress`,
    and remembers whether a response ever started (to tell "cannot reach" from "interrupted")."""

    def __init__(self, progress: Progress, label: str) -> None:
        self.progress, self.label, self.started = progress, label, False

    def __call__(self, *, total: int | None = None, initial: int = 0, **_tqdm_options: object) -> _Bar:
        self.started = True
        self.progress.start(self.label, total, initial)
        return self

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.finish()

    def update(self, n: int) -> None:
        self.progress.advance(n)


def download(remote: RemoteFile, dest: Path, *, progress: Progress | None = None) -> str:
    """Fetch ``remote`` into ``dest`` (resuming ``dest.part``), verify it, return its sha256."""
    check_online_allowed()  # plain URLs too: the offline switch covers every download
    from huggingface_hub.errors import HfHubHTTPError  # noqa: PLC0415 - only the installer needs the hub
    from huggingface_hub.file_download import http_get  # noqa: PLC0415 - only the installer needs the hub

    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise unwritable(dest.parent, e) from None
    bar = _Bar(progress or NullProgress(), remote.name)
    try:
        for _ in range(2):  # a second time only when the server refused to resume (HTTP 416)
            have = part.stat().st_size if part.exists() else 0
            if remote.size is not None and have > remote.size:  # not a prefix of this file
                part.unlink()
                have = 0
            try:
                with open(part, "ab") as out:
                    http_get(
                        remote.url,
                        out,
                        resume_size=have,
                        headers=HEADERS,
                        expected_size=remote.size,
                        displayed_filename=remote.name,
                        tqdm_class=bar,  # type: ignore[arg-type]  # typed as a tqdm class, but only called, entered and update()d
                    )
                break
            except HfHubHTTPError as e:
                code = e.response.status_code if e.response is not None else None
                if code == 416 and have:  # our .part is not a prefix of what the server has now
                    part.unlink(missing_ok=True)
                    continue
                if code in (401, 403, 404, 410):
                    raise ModelError(
                        f"{remote.url}: HTTP {code}; the catalog entry is out of date or the server moved the file"
                    ) from None
                raise _interrupted(remote, f"HTTP {code}") from None
            except OSError as e:
                if e.errno is None:  # http_get's size check: the body ended early
                    raise _interrupted(remote, one_line(e)) from None
                if is_disk_full(e):
                    raise unwritable(part, e) from None
                raise
            except Exception as e:
                if not _is_network_error(e):
                    raise
                if not bar.started:
                    host = urllib.parse.urlsplit(remote.url).netloc
                    raise DownloadInterrupted(
                        f"cannot reach {host} to download {remote.name} ({one_line(e)}); check the network and the "
                        f"proxy settings, or install from a directory with --from PATH"
                    ) from None
                raise _interrupted(remote, one_line(e)) from None
    except BaseException:  # an empty .part is nothing to resume: no trace of a download that never started
        with contextlib.suppress(OSError):
            if part.stat().st_size == 0:
                part.unlink()
        raise
    return _verify_part(remote, part, dest)


def _interrupted(remote: RemoteFile, why: str) -> DownloadInterrupted:
    return DownloadInterrupted(f"{remote.name}: download interrupted ({why}); run the same command again to resume")


def _verify_part(remote: RemoteFile, part: Path, dest: Path) -> str:
    problem, sha256 = check_file(part, size=remote.size, sha256=remote.sha256, md5=remote.md5, git_sha1=remote.git_sha1)
    if problem:
        part.unlink(missing_ok=True)
        raise ChecksumMismatch(f"{remote.name}: checksum mismatch ({problem}); the download was discarded, run the command again")
    os.replace(part, dest)
    return sha256
