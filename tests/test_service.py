"""The systemd service: the unit (verify, security score), ``translator serve`` end to end on the
private PulseAudio server (tests/pulse.py), the sd_notify protocol on a real AF_UNIX datagram
socket, signals, the crash-safe transcript, a full disk, config errors, and ``service install``.

``serve`` runs as a subprocess (``python -m translator.cli serve``), as systemd would run it. The
hung-stage test starts it through a three-line wrapper that makes the translation stage sleep for
good once a flag file exists: a test-only patch, nothing in the product.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import skip_or_fail
from mtmodels import build_marian
from procs import Watched, read_jsonl
from pulse import PulseServer, have_pulseaudio

from translator import config as cfg
from translator import config_load
from translator.errors import EXIT_CONFIG, ConfigError, OutputError
from translator.serve import install, journal, notify, settings
from translator.serve.health import Health, same_problem
from translator.serve.transcript_log import TORN_SUFFIX, TRANSCRIPT_NAME, TranscriptLog
from translator.transcript import JsonlWriter, UtteranceRecord

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "translator" / "serve" / "translator.service"
EXAMPLE = REPO / "translator" / "serve" / "config.toml"
CLIP = REPO.parent / "shared" / "corpus" / "speech" / "en" / "LDC93S1.wav"
MAX_EXPOSURE = 2.5


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        skip_or_fail("systemd-analyze not installed (apt-get install systemd)")
    return tool


def _testable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart= pointing at this Python (verify checks that the binary exists)."""
    unit = tmp_path / "translator.service"
    unit.write_text(install.render_unit(UNIT.read_text(), [sys.executable, "-m", "translator.cli"]))
    return unit


# --- the unit -----------------------------------------------------------------------------------


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = _testable_unit(tmp_path)
    r = subprocess.run([_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (r.stdout + r.stderr).splitlines() if "translator.service" in line]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr


def test_unit_security_exposure_is_ok(tmp_path: Path) -> None:
    unit = _testable_unit(tmp_path)
    r = subprocess.run(
        [_analyze(), "security", "--offline=yes", "--no-pager", str(unit)], capture_output=True, text=True, timeout=60
    )
    m = re.search(r"Overall exposure level for translator\.service: ([0-9.]+) (\w+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    score = float(m[1])
    print(f"\nsystemd-analyze security --offline=yes: exposure {score} {m[2]}")
    assert score <= MAX_EXPOSURE, r.stdout
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "RestartPreventExitStatus=78",
        "StateDirectory=translator",
        "ConfigurationDirectory=translator",
        "User=translator",
        "SupplementaryGroups=audio",
        "PrivateNetwork=yes",
        "RestrictAddressFamilies=AF_UNIX",
        "DevicePolicy=closed",
        "DeviceAllow=char-alsa rw",
        "ProtectSystem=strict",
        "Environment=TRANSLATOR_MODELS=/var/lib/translator/models",
    ):
        assert re.search(rf"(?m)^{re.escape(line)}$", text), line
    assert not re.search(r"(?m)^PrivateDevices=yes", text)  # would hide /dev/snd


def test_example_config_is_every_setting_at_its_default() -> None:
    assert config_load.load(EXAMPLE) == cfg.Config()
    text = EXAMPLE.read_text()
    uncommented = re.sub(r"(?m)^# ([a-z_]+ = )", r"\1", text)  # the commented-out defaults, switched on
    assert config_load.merge(cfg.Config(), tomllib.loads(uncommented), "example") == cfg.Config(), "a default changed"
    config = cfg.Config()
    for section in dataclasses.fields(config):
        for f in dataclasses.fields(getattr(config, section.name)):
            key = {"source": "from", "target": "to"}.get(f.name, f.name)
            assert re.search(rf"(?m)^(# )?{key} = ", text), f"{section.name}.{key} is not in {EXAMPLE}"


# --- pieces -------------------------------------------------------------------------------------


def test_notifier_sends_datagrams_to_a_path_and_an_abstract_socket(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(tmp_path / "notify"))
        n = notify.Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "3000000"})
        assert n.watchdog_interval == 1.5
        assert n.send("READY=1", "STATUS=two\nlines")
        assert s.recv(1024) == b"READY=1\nSTATUS=two lines"
    name = f"translator-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(b"\0" + name.encode())
        n = notify.Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
        assert n.watchdog_interval is None  # the watchdog is for another process
        assert n.send("WATCHDOG=1") and s.recv(64) == b"WATCHDOG=1"
    off = notify.Notifier({})
    assert not off.enabled and not off.send("READY=1") and off.watchdog_interval is None
    assert not off.watchdog(0.0, healthy=True)


def test_watchdog_pings_every_half_watchdog_usec_only_while_healthy(tmp_path: Path) -> None:
    """The schedule on a made-up clock: WATCHDOG_USEC=1 s -> a ping every 0.5 s, none while unhealthy,
    and the next one at once when healthy again."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(tmp_path / "notify"))
        s.setblocking(False)
        n = notify.Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"})
        ticks = [0.25 * i for i in range(13)]  # 0 .. 3 s, exact in binary
        sent = [t for t in ticks if n.watchdog(100.0 + t, healthy=not 1.25 <= t < 2.25)]
        assert sent == [0.0, 0.5, 1.0, 2.25, 2.75]
        assert n.until_ping(100.0 + 3.0, tick=1.0) == 0.25  # the loop wakes for the next ping
        assert n.until_ping(100.0 + 3.0, tick=0.1) == 0.1
        got = []
        with contextlib.suppress(BlockingIOError):
            while True:
                got.append(s.recv(64))
        assert got == [b"WATCHDOG=1"] * len(sent)


def test_health_names_the_stuck_part_and_a_silent_microphone() -> None:
    health = Health()
    now = time.monotonic()
    assert health.problem(now + 100, stall=60, audio_timeout=1e9, listening=True) is None
    health.begin("mt", type("Item", (), {"utterance_id": 3})())
    assert health.problem(now + 30, stall=60, audio_timeout=1e9, listening=True) is None
    stuck = health.problem(now + 100, stall=60, audio_timeout=1e9, listening=True)
    assert stuck is not None and stuck.startswith("mt stuck on utterance 3 for "), stuck
    health.end("mt", None)
    assert health.problem(now + 100, stall=60, audio_timeout=1e9, listening=True) is None
    health.begin("sink", None)
    assert health.problem(now + 100, stall=60, audio_timeout=1e9, listening=True).startswith("speaker stuck for ")
    health.end("sink", None)
    health.consumer.start()
    assert health.problem(now + 100, stall=60, audio_timeout=1e9, listening=True).startswith("event handling stuck")
    health.consumer.done()
    silent = health.problem(now + 100, stall=1e9, audio_timeout=10, listening=True)
    assert silent is not None and silent.startswith("no audio from the microphone"), silent
    assert health.problem(now + 100, stall=1e9, audio_timeout=10, listening=False) is None  # lost or stopping
    assert same_problem("mt stuck for 61 s", "mt stuck for 62 s") and not same_problem("mt stuck for 61 s", None)


def test_journal_formatter_prefixes_every_line_with_its_priority() -> None:
    import logging

    f = journal.JournalFormatter(journal=True)
    rec = logging.LogRecord("translator.service", logging.WARNING, __file__, 1, "a\nb", None, None)
    assert f.format(rec) == "<4>a\n<4>b"
    rec = logging.LogRecord("translator.service", logging.INFO, __file__, 1, "hello", None, None)
    assert f.format(rec) == "<6>hello"
    assert not journal.JournalFormatter(journal=False).format(rec).startswith("<")


def test_transcript_repairs_a_torn_tail_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / TRANSCRIPT_NAME
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": 3, "te')  # killed mid-line by an older version
    log = TranscriptLog(tmp_path, max_bytes=60, keep=2)
    assert "torn" in (log.open() or "")
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert (tmp_path / (TRANSCRIPT_NAME + ".torn")).read_bytes() == b'{"c": 3, "te\n'
    for i in range(6):
        log.append(json.dumps({"i": i, "pad": "x" * 10}))
    log.close()
    files = sorted(p.name for p in tmp_path.glob(TRANSCRIPT_NAME + "*"))
    assert files == [TRANSCRIPT_NAME, *(f"{TRANSCRIPT_NAME}.{k}" for k in (1, 2)), TRANSCRIPT_NAME + ".torn"], files
    for p in tmp_path.glob(TRANSCRIPT_NAME + "*[!n]"):
        assert all(isinstance(json.loads(line), dict) for line in p.read_text().splitlines())
    # a power cut can leave zeros after the last line instead of a torn one
    path.write_bytes(b'{"a": 1}\n' + b"\0" * 100)
    log = TranscriptLog(tmp_path)
    assert log.open() and path.read_bytes() == b'{"a": 1}\n'
    log.close()


def test_transcript_lines_are_the_jsonl_format_with_the_time_first(tmp_path: Path) -> None:
    """One serialisation: the service's line is ``translate --jsonl``'s line with ``time`` added."""
    record = UtteranceRecord(
        utterance_id=1,
        start=0.5,
        end=2.0,
        language="en",
        source_text='Hello "you"',
        target_language="es",
        text="Hola, ¿qué tal?",
        route="opus-mt-en-es",
        voice="v",
        asr_final=0.2,
        mt=0.3,
        speech_to_speech=0.7,
        caption_lags=(0.1,),
        asr_compute=0.1,
        mt_compute=0.05,
        speech_seconds=1.2,
        cut=False,
    )
    with JsonlWriter(tmp_path / "file.jsonl") as w:
        w.write(record)
    log = TranscriptLog(tmp_path / "state")
    log.open()
    log.append(record.to_json(finished=datetime(2024, 5, 1, 12, 0, 1, 250000, tzinfo=UTC)))
    log.close()
    plain = json.loads((tmp_path / "file.jsonl").read_text())
    served = json.loads((tmp_path / "state" / TRANSCRIPT_NAME).read_text())
    assert list(served) == ["time", *plain] and served["time"] == "2024-05-01T12:00:01.250+00:00"
    assert {k: v for k, v in served.items() if k != "time"} == plain and plain["text"] == "Hola, ¿qué tal?"


def test_config_errors_name_the_line_of_their_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[languages]\nfrom = "en"\n\n[vad]\nendpoint = 0.5\n')
    # the form config.py gives a bad value: "PATH: section.key: ..."
    e = settings.with_line(ConfigError(f"{path}: vad.endpoint: expected float, got 'x'"), path)
    assert str(e) == f"{path} line 5: vad.endpoint: expected float, got 'x'"
    e = settings.with_line(ConfigError(f"{path}: unknown section [bogus]; known: ..."), path)
    assert str(e) == f"{path}: unknown section [bogus]; known: ...", "no such line: the message stays"
    kept = ConfigError(f"{path}: invalid TOML: Expected '=' (at line 2, column 3)")
    assert settings.with_line(kept, path) is kept
    path.write_text('[languages]\nto = "en"\npair = "en:en"\n')
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))} line 3: languages\.pair: expected two different"):
        settings.read_config(str(path), [])
    path.write_text('[languages]\nfrom = "xx"\n')
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))} line 2: languages\.from: unknown language code 'xx'"):
        settings.read_config(str(path), [])
    path.write_text("[vad]\nendpoint = -1.0\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))} line 2: .*endpoint"):
        settings.read_config(str(path), [])


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_transcript_on_a_full_disk_keeps_lines_and_writes_them_later(tiny_tmpfs: Path) -> None:
    log = TranscriptLog(tiny_tmpfs)
    log.open()
    log.append(json.dumps({"n": 1}))
    filler = _fill(tiny_tmpfs)
    with pytest.raises(OutputError, match="disk full"):
        log.append(json.dumps({"n": 2, "text": "x" * 6000}))
    assert (tiny_tmpfs / TRANSCRIPT_NAME).read_text() == '{"n": 1}\n'  # no partial line
    filler.unlink()
    log.append(json.dumps({"n": 3}))
    lines = [json.loads(x) for x in (tiny_tmpfs / TRANSCRIPT_NAME).read_text().splitlines()]
    assert [x["n"] for x in lines] == [1, 2, 3]
    log.close()


# --- serve as a process -------------------------------------------------------------------------


def _serve_cmd(config: Path, state: Path, *extra: str, wrapper: Path | None = None) -> list[str]:
    prefix = [sys.executable, str(wrapper)] if wrapper else [sys.executable, "-m", "translator.cli"]
    return [*prefix, "serve", "--config", str(config), "--state-dir", str(state), *extra]


def test_invalid_config_exits_78_with_one_line_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text('[languages]\nfrom = "en"\ntoo = "es"\n')
    read, write = os.pipe()  # stderr as the journal would hand it over: JOURNAL_STREAM names it
    st = os.fstat(write)
    env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    proc = subprocess.Popen(_serve_cmd(bad, tmp_path / "state"), env=env, stderr=write, stdout=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        err = f.read()
    assert proc.wait(60) == EXIT_CONFIG
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("<3>") and "languages.too" in lines[0] and "line 3" in lines[0], err

    r = subprocess.run(_serve_cmd(tmp_path / "missing.toml", tmp_path / "state"), capture_output=True, text=True, timeout=60)
    assert r.returncode == EXIT_CONFIG and "not found" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad.write_text('[languages]\nto = "xx"\n')
    r = subprocess.run(_serve_cmd(bad, tmp_path / "state"), capture_output=True, text=True, timeout=60)
    assert r.returncode == EXIT_CONFIG and "languages.to" in r.stderr and "line 2" in r.stderr, r.stderr


class Served(Watched):
    """A ``serve`` subprocess: its log lines (stderr, as the journal gets them) and notify datagrams,
    with the time each arrived."""

    label = "serve"

    def __init__(self, cmd: list[str], env: dict[str, str], notify: Path | None = None) -> None:
        self.notes: list[tuple[float, str]] = []
        self.sock = None
        if notify is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(str(notify))
            self.sock.settimeout(0.1)
            env = {**env, "NOTIFY_SOCKET": str(notify)}
        read, write = os.pipe()
        st = os.fstat(write)
        env = {**env, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=write, stdin=subprocess.DEVNULL)
        os.close(write)
        super().__init__(proc, os.fdopen(read, errors="replace"))
        if self.sock is not None:
            self._threads.append(threading.Thread(target=self._read_notify, daemon=True))
            self._threads[-1].start()

    def _read_notify(self) -> None:
        assert self.sock is not None
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                if self.proc.poll() is not None:
                    return
                continue
            except OSError:
                return
            self.notes.append((time.monotonic(), data.decode()))

    def wait_note(self, field: str, timeout: float = 60) -> float:
        def hits() -> list[float]:
            return [t for t, m in list(self.notes) if field in m.split("\n")]

        self.wait(f"notification {field!r}", lambda: bool(hits()), timeout)
        return hits()[0]

    def statuses(self) -> list[str]:
        return [f[7:] for _, m in list(self.notes) for f in m.split("\n") if f.startswith("STATUS=")]

    def pings(self, after: float = 0.0, before: float = float("inf")) -> list[float]:
        return [t for t, m in list(self.notes) if "WATCHDOG=1" in m.split("\n") and after <= t <= before]

    def close(self) -> None:
        super().close()
        if self.sock is not None:
            self.sock.close()


def _records(state: Path) -> list[dict]:
    return read_jsonl(state / TRANSCRIPT_NAME)


def _wait_records(served: Served, state: Path, n: int, timeout: float = 60) -> list[dict]:
    served.wait(f"{n} transcript record(s)", lambda: len(_records(state)) >= n, timeout)
    return _records(state)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    from translator.audio.files import FileSource

    if not CLIP.exists():
        pytest.fail(f"corpus clip missing: {CLIP}")
    return np.concatenate([b.samples for b in FileSource(CLIP)])


@pytest.fixture
def pa(tmp_path: Path) -> Iterator[PulseServer]:
    """The private PulseAudio server, for the serve subprocesses only (this process is not pointed at it)."""
    if not have_pulseaudio():
        skip_or_fail("pulseaudio/pactl/parec not installed (apt-get install pulseaudio pulseaudio-utils)")
    with PulseServer(tmp_path) as server:
        yield server


def _config(path: Path, *, to: str = "en", tts: bool = True, mt: Path | None = None) -> Path:
    lines = [
        "[languages]",
        'from = "en"',
        f'to = "{to}"',
        "[asr]",
        'model = "tiny.en"',
        "[tts]",
        f"enabled = {'true' if tts else 'false'}",
    ]
    if mt is not None:
        lines += ["[mt]", f"models = [{json.dumps(str(mt))}]"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _quiet_after(served: Served, records: list[dict]) -> None:
    """Let the spoken translation play out (the self-listening guard mutes the microphone meanwhile)."""
    time.sleep((records[-1]["speech_seconds"] if records else 0) + 0.8)


def test_serve_translates_reloads_on_sighup_and_finishes_the_utterance_on_sigterm(
    tmp_path: Path, pa: PulseServer, clip: np.ndarray
) -> None:
    state = tmp_path / "state"
    model = build_marian(tmp_path / "opus-mt-en-es", "en", "es", eos_bias=0.0)
    config = _config(tmp_path / "config.toml", to="en", mt=model.path)
    served = Served(_serve_cmd(config, state), {**os.environ, **pa.env}, notify=tmp_path / "notify")
    try:
        served.wait_note("READY=1", timeout=120)
        with pa.record_sink() as rec:
            pa.feed(clip)
            records = _wait_records(served, state, 1)
            _quiet_after(served, records)
        first = records[0]
        assert first["target_language"] == "en" and "greasy" in first["source_text"].lower(), first
        assert first["voice"] and first["speech_to_speech"] is not None and first["time"]
        assert rec.voiced_span() is not None, "nothing was spoken on the output"
        assert any("last utterance" in s for s in served.statuses()), served.statuses()

        # a reload with a mistake in the file is refused; the service goes on with what it had
        config.write_text(config.read_text() + "[bogus]\nx = 1\n")
        served.proc.send_signal(signal.SIGHUP)
        served.wait_line(r"<3>reload failed, keeping the previous settings: .*line \d+: unknown section \[bogus\]")
        served.wait("STATUS saying so", lambda: any("last reload refused" in s for s in served.statuses()), 5)

        # SIGHUP with a new target language: the next utterance is translated into Spanish
        _config(config, to="es", mt=model.path)
        served.proc.send_signal(signal.SIGHUP)
        served.wait_line(r"reloaded: translating en → es")
        assert re.search(r"speech model kept", served.log()), served.log()[-2000:]
        served.wait_note("RELOADING=1")
        pa.feed(clip)
        records = _wait_records(served, state, 2)
        assert records[1]["target_language"] == "es" and records[1]["route"] == "opus-mt-en-es", records[1]
        _quiet_after(served, records)

        # SIGTERM while the speaker is still talking: that utterance is finished and written
        started = len([1 for _, line in served.lines if "speech started" in line])
        pa.feed(clip)
        served.wait_line(r"speech started", count=started + 1)
        time.sleep(0.8)
        assert served.stop(signal.SIGTERM) == 0, served.log()[-3000:]
        records = _records(state)
        assert len(records) == 3 and records[2]["target_language"] == "es" and records[2]["source_text"], records
        assert any("STOPPING=1" in m for _, m in served.notes)
        ours = [line for _, line in served.lines if re.search(r"utterance \d|ready|stopp", line)]
        assert ours and all(re.match(r"<[0-7]>", line) for line in ours), ours  # journal priority prefixes
    finally:
        served.close()


HANG_WRAPPER = """\
import os, sys, time
from translator import cli
from translator.stages import translate
_feed = translate.TranslatorStage.feed
def feed(self, event):  # hangs for good once the flag file exists (test only)
    if os.path.exists(os.environ["TEST_HANG_FLAG"]):
        time.sleep(1e6)
    return _feed(self, event)
translate.TranslatorStage.feed = feed
sys.exit(cli.main(sys.argv[1:]))
"""


def test_notify_protocol_ready_watchdog_hang_and_stopping(tmp_path: Path, pa: PulseServer, clip: np.ndarray) -> None:
    state = tmp_path / "state"
    wrapper = tmp_path / "hang_wrapper.py"
    wrapper.write_text(HANG_WRAPPER)
    flag = tmp_path / "hang"
    config = _config(tmp_path / "config.toml", tts=False)
    env = {**os.environ, **pa.env, "WATCHDOG_USEC": "1000000", "TEST_HANG_FLAG": str(flag)}
    cmd = _serve_cmd(config, state, "--stall-timeout", "2", "--stop-timeout", "2", wrapper=wrapper)
    served = Served(cmd, env, notify=tmp_path / "notify")
    try:
        ready = served.wait_note("READY=1", timeout=120)
        served.wait_line(r"models loaded and warmed up")
        # The notify socket is one ordered stream: READY=1 comes after "loading models", and its
        # own STATUS says the models are done (listening, or opening the microphone).
        first = _index(served, lambda f: "READY=1" in f)
        assert any(f.startswith("STATUS=loading models") for m in _datagrams(served)[:first] for f in m), _datagrams(served)
        (status,) = [f for f in _datagrams(served)[first] if f.startswith("STATUS=")]
        assert status.startswith(("STATUS=listening", "STATUS=opening")), status
        # healthy: pinged (the interval itself is test_watchdog_pings_every_half_watchdog_usec_only_while_healthy)
        served.wait("watchdog pings while healthy", lambda: len(served.pings(after=ready)) >= 3, 30)

        flag.touch()  # the translation stage now hangs on the next utterance
        pa.feed(clip)
        served.wait("STATUS saying so", lambda: any("UNHEALTHY" in s and "mt stuck" in s for s in served.statuses()), 60)
        served.wait_line(r"<3>pipeline unhealthy: mt stuck", timeout=10)
        time.sleep(2.5)  # five watchdog intervals
        assert served.proc.poll() is None, "the service must keep running (systemd decides)"
        code = served.stop(signal.SIGTERM)
        assert code == 1, served.log()[-2000:]  # the utterance in flight could not finish: not a clean stop
        unhealthy = _index(served, lambda f: f.startswith("STATUS=") and "UNHEALTHY" in f and "mt stuck" in f)
        stopping = _index(served, lambda f: f == "STOPPING=1", start=unhealthy)
        between = _datagrams(served)[unhealthy:stopping]
        assert len(between) >= 1 and not any("WATCHDOG=1" in m for m in between), between  # withheld while hung
    finally:
        served.close()


def _datagrams(served: Served) -> list[list[str]]:
    """The notifications in the order they were sent, each as its KEY=value fields."""
    return [m.split("\n") for _, m in list(served.notes)]


def _index(served: Served, match: Callable[[str], bool], start: int = 0) -> int:
    """The first notification from ``start`` on with a field ``match`` accepts."""
    for i, fields in enumerate(_datagrams(served)[start:], start):
        if any(match(f) for f in fields):
            return i
    raise AssertionError(f"no such notification in {_datagrams(served)[start:]}")


def test_sigkill_mid_utterance_leaves_valid_json_lines(tmp_path: Path, pa: PulseServer, clip: np.ndarray) -> None:
    state = tmp_path / "state"
    config = _config(tmp_path / "config.toml", tts=False)
    served = Served(_serve_cmd(config, state), {**os.environ, **pa.env})
    try:
        served.wait_line(r"<6>ready", timeout=120)
        pa.feed(clip)
        _wait_records(served, state, 1)
        pa.feed(clip)
        served.wait_line(r"speech started", count=2)
        time.sleep(1.0)
        served.stop(signal.SIGKILL)
    finally:
        served.close()
    records = _records(state)  # every line whole
    assert len(records) in (1, 2) and all(r["source_text"] for r in records)

    # a torn line from an older crash is moved aside on the next start
    with open(state / TRANSCRIPT_NAME, "ab") as f:
        f.write(b'{"utterance_id": 9, "text": "cut sho')
    served = Served(_serve_cmd(config, state), {**os.environ, **pa.env})
    try:
        served.wait_line(r"removed a torn last line", timeout=60)
        served.wait_line(r"<6>ready", timeout=120)
        assert served.stop() == 0
    finally:
        served.close()
    assert _records(state) == records
    assert (state / (TRANSCRIPT_NAME + TORN_SUFFIX)).read_text().startswith('{"utterance_id": 9')


def test_full_disk_is_reported_and_translating_goes_on(
    tiny_tmpfs: Path, tmp_path: Path, pa: PulseServer, clip: np.ndarray
) -> None:
    state = tiny_tmpfs
    filler = _fill(state)
    config = _config(tmp_path / "config.toml", tts=False)
    served = Served(_serve_cmd(config, state), {**os.environ, **pa.env}, notify=tmp_path / "notify")
    try:
        served.wait_note("READY=1", timeout=120)
        pa.feed(clip)
        served.wait_line(r"<3>.*disk full", timeout=60)
        served.wait("STATUS saying disk full", lambda: any("disk full" in s for s in served.statuses()), 10)
        time.sleep(1.0)
        assert served.proc.poll() is None
        served.wait_line(r"utterance \d+ done", timeout=10)  # the translation itself went out
        filler.unlink()  # space again: the record waiting in memory is written on the way out
        assert served.stop() == 0
    finally:
        served.close()
    assert "transcript backlog written" in served.log()
    records = _records(state)
    assert len(records) == 1 and "greasy" in records[0]["source_text"].lower()


# --- install ------------------------------------------------------------------------------------


def test_service_install_dry_run_prints_the_steps_and_changes_nothing(tmp_path: Path) -> None:
    watched = [Path("/etc/systemd/system/translator.service"), Path("/etc/translator"), Path("/var/lib/translator")]
    before = {p: p.exists() for p in watched}
    r = subprocess.run(
        [sys.executable, "-m", "translator.cli", "service", "install", "--dry-run"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "/etc/systemd/system/translator.service" in out and "/etc/translator/config.toml" in out
    assert "/var/lib/translator/models" in out and "daemon-reload" in out
    if not before[Path("/etc/systemd/system/translator.service")]:
        assert "[dry-run] would write /etc/systemd/system/translator.service" in out
    assert {p: p.exists() for p in watched} == before
    rendered = install.render_unit(UNIT.read_text(), ["/opt/x/bin/translator"])
    assert "ExecStart=/opt/x/bin/translator serve --config /etc/translator/config.toml" in rendered


def test_service_install_tune_dry_run_plans_the_measurement_after_the_models_and_changes_nothing() -> None:
    before = Path("/etc/translator/config.toml").exists()
    r = subprocess.run(
        [sys.executable, "-m", "translator.cli", "service", "install", "--dry-run", "--tune"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    tune = next(i for i, line in enumerate(lines) if "would measure this box (translator doctor" in line)
    assert "/etc/translator/config.toml" in lines[tune]
    assert tune > next(i for i, line in enumerate(lines) if "/var/lib/translator/models" in line)  # the models first
    assert Path("/etc/translator/config.toml").exists() == before


def test_tune_sets_the_doctors_keys_in_the_service_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console  # noqa: PLC0415 - only this test prints through an Installer

    from translator.models import locate  # noqa: PLC0415

    config = tmp_path / "config.toml"
    config.write_text((install.SOURCE_DIR / "config.toml").read_text(encoding="utf-8"))
    monkeypatch.setattr(install, "CONFIG_FILE", config)
    console = Console(record=True, width=200, color_system=None)
    install._tune(install.Installer(console, dry_run=False), locate.store_dir())
    out = console.export_text()
    assert "this box: load" in out and "vad.partial_interval = " in out
    tuned = config_load.load(config)
    assert f"vad.partial_interval = {tuned.vad.partial_interval}" in out
    assert (
        tuned.asr.model in ("base", "tiny.en")
        and tuned.languages == config_load.load(install.SOURCE_DIR / "config.toml").languages
    )
