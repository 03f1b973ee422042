"""A private PulseAudio server for tests: real sounddevice/PortAudio I/O on a machine with no sound card.

What it gives you::

    with PulseServer(tmp_path) as pa:          # or the ``pulse`` fixture below
        pa.feed(samples_16k)                   # speak into the virtual microphone "mic"
        with pa.record_sink() as rec:          # record what is played to the null sink "out"
            ...play something...
        rec.samples                            # float32, 16 kHz mono, filled on leaving the block
        with pa.room(Room(delay=0.08)):        # what "out" plays comes back into "mic" (an echo)
            ...
        subprocess.run([...], env={**os.environ, **pa.env})
        pa.remove_source(); pa.add_source()    # unplug / replug the microphone

How it works here (Debian, PulseAudio 16, PortAudio 19.6 with no PulseAudio host API):

* ``pulseaudio --daemonize=no --system=no -n -F <dir>/default.pa --exit-idle-time=-1
  --disallow-exit --use-pid-file=no --realtime=no --high-priority=yes`` runs fine as root (it only
  warns) with ``HOME``/``XDG_RUNTIME_DIR``/``PULSE_RUNTIME_PATH``/``PULSE_STATE_PATH`` pointing into
  the temporary directory. ``-n`` skips the system default.pa; ours loads only the native protocol
  (anonymous auth, socket ``<dir>/native``), the CLI protocol (``<dir>/cli``, used to kill streams),
  a null sink ``out`` and a pipe source ``mic`` (s16le, 16 kHz, mono, FIFO ``<dir>/mic.fifo``).
* PortAudio reaches the server through ALSA's ``pulse`` plugin (libasound2-plugins): it lists two
  devices, ``pulse`` and ``default``. Clients pick the server with ``PULSE_SERVER=unix:<dir>/native``
  and the source/sink with ``PULSE_SOURCE=mic`` / ``PULSE_SINK=out`` (read by libpulse each time a
  stream is opened). PortAudio only scans devices when it initialises: set the environment first, or
  re-scan with ``sd._terminate(); sd._initialize()`` (:meth:`PulseServer.activate` does both).
* A pipe source has no clock: it delivers exactly what is written to its FIFO, when it is written,
  bit-exact. With nothing written a capture stream gets no callbacks at all (and PortAudio's
  ``stop()`` then hangs for about 70 s; ``abort()`` returns at once). So by default a writer thread
  feeds silence in real time whenever nothing else is queued, which makes ``mic`` behave like a real
  microphone; :meth:`feed` queues speech into that stream.
* Unloading a source does not break the streams recording from it: PulseAudio moves them to the
  fallback source (here ``out.monitor``), so PortAudio sees nothing. :meth:`remove_source` therefore
  also kills those streams through the CLI socket, which is what a client sees when a device vanishes
  and the server cannot rescue its stream (a directly opened ALSA device, a restarted sound server).
* An idle null sink sleeps 2 s at a time and does not wake when a stream connects: a new playback
  stream then stalls for up to 2 s (and the monitor records nothing while the sink idles). So the
  server keeps a silent 10 ms-latency ``pacat`` stream playing into ``out`` (the "sink clock") and
  suspends/resumes the sink once so it adopts the short period at once; the sink then behaves like
  a sound card and the monitor records a continuous timeline. Fresh streams may still lose their
  first tens of milliseconds: lead in with silence.

Add to ``tests/conftest.py`` to make the fixture available everywhere: ``from pulse import pulse  # noqa: F401``.

Missing tools: a test that needs the server is skipped on a developer's machine without them, but
with ``CI=true`` in the environment it fails (``conftest.skip_or_fail``): a CI image that lost
pulseaudio must not turn the live and service suites green by skipping them. Mark such tests
with :data:`needs_pulse`, which skips only outside CI.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from conftest import CI, skip_or_fail

RATE = 16000
"""The pipe source's rate: ``feed`` takes 16 kHz mono float32."""

SINK = "out"
SOURCE = "mic"
_TICK = 0.01  # the writer's pacing step (10 ms of audio per write)
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, missing from Python 3.11's fcntl on some builds


NO_PULSEAUDIO = "pulseaudio/pactl/parec not installed (apt-get install pulseaudio pulseaudio-utils)"


def have_pulseaudio() -> bool:
    return all(shutil.which(tool) for tool in ("pulseaudio", "pactl", "parec"))


needs_pulse = pytest.mark.skipif(not have_pulseaudio() and not CI, reason=NO_PULSEAUDIO)
"""For tests that start a :class:`PulseServer`: skipped without the tools, except under CI, where
the server's start fails them (``conftest.skip_or_fail``)."""


@dataclass
class Recording:
    """What ``record_sink`` captured: 16 kHz mono float32, available after the ``with`` block."""

    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    rate: int = RATE
    started: float = 0.0
    """``time.monotonic()`` when the recorder was connected."""

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate

    def voiced_span(self, threshold: float = 1e-3) -> tuple[float, float] | None:
        """(first, last) time in seconds where ``|x| > threshold``, or None if all silent."""
        idx = np.flatnonzero(np.abs(self.samples) > threshold)
        if not len(idx):
            return None
        return idx[0] / self.rate, (idx[-1] + 1) / self.rate


@dataclass(frozen=True)
class Room:
    """How the simulated room carries the loudspeaker back into the microphone (:meth:`PulseServer.room`)."""

    delay: float = 0.08
    """Seconds added to the path's own latency (monitor recording and the pipe, ~30 ms here)."""
    gain_db: float = -10.0
    """Level of the echo against what was played (a loudspeaker a little away from the microphone)."""
    reverb: float = 0.05
    """Length of the decaying reverberation tail, seconds (a small furnished room)."""
    noise_db: float = -60.0
    """White noise added to the microphone, dBFS."""
    seed: int = 0

    def impulse_response(self) -> np.ndarray:
        """The direct path and an exponentially decaying tail (-60 dB over ``reverb``), scaled to ``gain_db``."""
        n = max(1, round(self.reverb * RATE))
        rng = np.random.default_rng(self.seed)
        ir = rng.standard_normal(n) * np.exp(-np.arange(n) * 6.9 / n) * 0.3
        ir[0] = 1.0
        return (ir / np.sqrt(np.sum(ir**2)) * 10 ** (self.gain_db / 20)).astype(np.float32)


class _Echo:
    """The room's running state: the null sink's monitor, filtered, waiting to be mixed into ``mic``."""

    def __init__(self, room: Room, proc: subprocess.Popen[bytes]) -> None:
        self.room = room
        self.proc = proc
        self.ir = room.impulse_response()
        self.pending = np.zeros(round(room.delay * RATE), dtype=np.float32)  # the delay line
        self.tail = np.zeros(len(self.ir) - 1, dtype=np.float32)
        self.owed = 0  # echo samples the writer had to replace with silence (dropped on arrival)
        self.noise = np.random.default_rng(room.seed + 1)
        self.lock = threading.Lock()

    def add(self, played: np.ndarray) -> None:
        y = np.convolve(played, self.ir).astype(np.float32)
        y[: len(self.tail)] += self.tail
        out, self.tail = y[: len(played)], y[len(played) :].copy()
        with self.lock:
            drop = min(self.owed, len(out))
            self.owed -= drop
            self.pending = np.concatenate([self.pending, out[drop:]])

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` samples of echo plus noise; a late monitor costs its echo, never the timing."""
        with self.lock:
            got, self.pending = self.pending[:n], self.pending[n:]
            self.owed += n - len(got)
        x = np.zeros(n, dtype=np.float32)
        x[: len(got)] = got
        return x + (self.noise.standard_normal(n) * 10 ** (self.room.noise_db / 20)).astype(np.float32)


class _Feed:
    """One ``feed`` request: int16 PCM plus how to deliver it."""

    def __init__(self, pcm: np.ndarray, realtime: bool) -> None:
        self.pcm = pcm
        self.pos = 0
        self.realtime = realtime
        self.done = threading.Event()


class PulseServer:
    """A private PulseAudio server with a null sink ``out`` and a pipe source ``mic``.

    ``tmp_path`` holds the logs (and the runtime dir, when its path is short enough for a Unix
    socket). ``idle_silence=False`` leaves the pipe source unclocked: it then delivers only what
    :meth:`feed` writes, and capture streams get no callbacks in between.
    """

    def __init__(self, tmp_path: str | Path, *, idle_silence: bool = True, sink_rate: int = 48000) -> None:
        self.tmp_path = Path(tmp_path)
        self.idle_silence = idle_silence
        self.sink_rate = sink_rate
        self.dir: Path | None = None
        self._own_dir = False
        self.proc: subprocess.Popen[bytes] | None = None
        self._clock_proc: subprocess.Popen[bytes] | None = None
        self._queue: deque[_Feed] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._writer: threading.Thread | None = None
        self._reader_idle = False
        self.dropped_seconds = 0.0
        """Audio the writer could not deliver: the source was absent (unplugged) or nobody recorded it."""
        self.writer_errors: list[str] = []
        """Unexpected errors on the FIFO (the writer goes on after them)."""
        self._saved_env: dict[str, str | None] | None = None
        self._echo: _Echo | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> PulseServer:
        if not have_pulseaudio():
            skip_or_fail(NO_PULSEAUDIO)
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        d = self.tmp_path / "pulse"
        if len(str(d / "native")) > 100:  # sun_path is 108 bytes
            d = Path(tempfile.mkdtemp(prefix="pulse-"))
            self._own_dir = True
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
        self.dir = d
        (d / "default.pa").write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={d}/native\n"
            f"load-module module-cli-protocol-unix socket={d}/cli\n"
            f"load-module module-null-sink sink_name={SINK} rate={self.sink_rate}"
            f" sink_properties=device.description={SINK}\n"
            f"load-module {self._source_module_args()}\n"
            f"set-default-sink {SINK}\n"
            f"set-default-source {SOURCE}\n"
        )
        log = open(self.tmp_path / "pulseaudio.log", "ab")  # noqa: SIM115 (lives as long as the server)
        try:
            self.proc = subprocess.Popen(
                [
                    "pulseaudio",
                    "--daemonize=no",
                    "--system=no",
                    "-n",
                    "-F",
                    str(d / "default.pa"),
                    "--exit-idle-time=-1",
                    "--disallow-exit",
                    "--use-pid-file=no",
                    "--realtime=no",
                    "--high-priority=yes",
                    "--log-target=stderr",
                    "--log-level=notice",
                ],
                env=self._server_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited with {self.proc.returncode}: {self._log_tail()}")
            if (d / "native").exists() and self._pactl_ok("info"):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pulseaudio did not come up in 10 s: {self._log_tail()}")
            time.sleep(0.05)
        self._start_clock()
        self._writer = threading.Thread(target=self._write_loop, name="pulse-mic-writer", daemon=True)
        self._writer.start()
        return self

    def _start_clock(self) -> None:
        """Keep the null sink ticking every 10 ms, like a sound card.

        An idle null sink sleeps for 2 s at a time and does not wake when a stream connects, so a
        new playback stream would stall for up to 2 s. A silent low-latency stream keeps it awake;
        suspending and resuming the sink makes it pick the short period up at once.
        """
        self._clock_proc = subprocess.Popen(
            [
                "pacat",
                "--playback",
                f"--device={SINK}",
                "--raw",
                "--format=s16le",
                f"--rate={self.sink_rate}",
                "--channels=2",
                "--latency-msec=10",
                "--client-name=sink-clock",
                "/dev/zero",
            ],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not self._streams_on("sink-inputs", SINK):
            if self._clock_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"could not start the sink clock (pacat exited with {self._clock_proc.returncode})")
            time.sleep(0.02)
        self.pactl("suspend-sink", SINK, "1")
        self.pactl("suspend-sink", SINK, "0")

    def _stop_clock(self) -> None:
        if self._clock_proc is not None:
            self._clock_proc.kill()
            self._clock_proc.wait(5)
            self._clock_proc = None

    def stop(self) -> None:
        """Stop the writer and the server; restores the environment if :meth:`activate` changed it.

        The server goes first: a capture stream left open on a source that delivers nothing would
        make PortAudio's re-scan (Pa_Terminate) wait ~70 s, while a dead server fails it at once.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._writer is not None:
            self._writer.join(5)
            self._writer = None
        self._stop_clock()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self.deactivate()
        if self._own_dir and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PulseServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- environment ----------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """Variables a client needs (merge into ``os.environ`` for a subprocess)."""
        assert self.dir is not None, "server not started"
        d = str(self.dir)
        return {
            "PULSE_SERVER": f"unix:{d}/native",
            "PULSE_SOURCE": SOURCE,
            "PULSE_SINK": SINK,
            "XDG_RUNTIME_DIR": d,
            "PULSE_RUNTIME_PATH": d,
            "PULSE_STATE_PATH": d,
            "HOME": d,
        }

    def _server_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "DBUS_"))}
        env.update(self.env)
        env.pop("PULSE_SERVER")
        env.pop("PULSE_SOURCE")
        env.pop("PULSE_SINK")
        env["XDG_CONFIG_HOME"] = str(self.dir / "config")
        return env

    def activate(self) -> None:
        """Point this process at the server: set :attr:`env` in ``os.environ`` and re-scan PortAudio."""
        if self._saved_env is None:
            self._saved_env = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        _rescan_portaudio()

    def deactivate(self) -> None:
        if self._saved_env is None:
            return
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env = None
        _rescan_portaudio()

    # --- control --------------------------------------------------------------------------------

    def pactl(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(["pactl", *args], env={**os.environ, **self.env}, capture_output=True, text=True, timeout=10)
        if check and r.returncode:
            raise RuntimeError(f"pactl {' '.join(args)} failed: {r.stderr.strip() or r.stdout.strip()}")
        return r.stdout

    def _pactl_ok(self, *args: str) -> bool:
        try:
            self.pactl(*args)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return True

    def cli(self, command: str) -> str:
        """One command on PulseAudio's CLI socket (pacmd's protocol; pactl cannot kill streams)."""
        assert self.dir is not None
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.dir / "cli"))
            s.sendall(command.encode() + b"\n")
            s.shutdown(socket.SHUT_WR)
            chunks = []
            with contextlib.suppress(TimeoutError):
                while data := s.recv(4096):
                    chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def _short(self, what: str) -> list[list[str]]:
        return [line.split("\t") for line in self.pactl("list", "short", what).splitlines() if line.strip()]

    def sources(self) -> list[str]:
        return [row[1] for row in self._short("sources")]

    def sinks(self) -> list[str]:
        return [row[1] for row in self._short("sinks")]

    def _module_index(self, module: str, name_arg: str) -> str | None:
        for row in self._short("modules"):
            if row[1] == module and name_arg in (row[2].split() if len(row) > 2 else []):
                return row[0]
        return None

    def _streams_on(self, kind: str, device: str) -> list[str]:
        """Indexes of the source-outputs / sink-inputs currently attached to ``device``."""
        devices = {row[0]: row[1] for row in self._short("sources" if kind == "source-outputs" else "sinks")}
        return [row[0] for row in self._short(kind) if devices.get(row[1]) == device]

    def _source_module_args(self) -> str:
        assert self.dir is not None
        return f"module-pipe-source source_name={SOURCE} file={self.dir}/mic.fifo format=s16le rate={RATE} channels=1"

    def remove_source(self, *, kill_streams: bool = True) -> None:
        """Unplug the microphone: unload ``mic`` and (by default) kill the streams that were on it."""
        streams = self._streams_on("source-outputs", SOURCE)
        index = self._module_index("module-pipe-source", f"source_name={SOURCE}")
        if index is None:
            raise RuntimeError("source 'mic' is not loaded")
        self.pactl("unload-module", index)
        if kill_streams:
            for s in streams:  # PulseAudio has moved them to the fallback source by now
                self.cli(f"kill-source-output {s}")

    def add_source(self) -> None:
        """Plug the microphone back in (the writer reconnects to the FIFO by itself)."""
        self.pactl("load-module", *self._source_module_args().split())

    def remove_sink(self, *, kill_streams: bool = True) -> None:
        """Unplug the speaker: unload ``out`` and (by default) kill the streams that were playing to it."""
        streams = self._streams_on("sink-inputs", SINK)
        index = self._module_index("module-null-sink", f"sink_name={SINK}")
        if index is None:
            raise RuntimeError("sink 'out' is not loaded")
        self.pactl("unload-module", index)
        if kill_streams:
            for s in streams:
                self.cli(f"kill-sink-input {s}")
        self._stop_clock()

    def add_sink(self) -> None:
        self.pactl(
            "load-module",
            "module-null-sink",
            f"sink_name={SINK}",
            f"rate={self.sink_rate}",
            f"sink_properties=device.description={SINK}",
        )
        self._start_clock()

    # --- the microphone -------------------------------------------------------------------------

    def feed(self, samples: np.ndarray, *, realtime: bool = True) -> threading.Event:
        """Queue 16 kHz mono float32 audio for the ``mic`` source; returns an Event set once written.

        ``realtime`` writes it on the clock, 10 ms at a time, like a microphone; otherwise it is
        written as fast as the FIFO takes it (bit-exact still, but it arrives in a burst). Audio
        fed while the source is removed is dropped, as speech into an unplugged mic would be; so is
        audio nobody records (the pipe source stops reading then; the FIFO is kept at 4 KiB so no
        more than ~128 ms can pile up and arrive late as a burst).
        """
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"feed takes mono samples, got shape {x.shape}")
        pcm = np.round(np.clip(x, -1.0, 32767 / 32768) * 32768).astype("<i2")
        item = _Feed(pcm, realtime)
        with self._cond:
            self._queue.append(item)
            self._cond.notify_all()
        return item.done

    def writer_state(self) -> str:
        """For a failure message: is the microphone's writer alive, and what went wrong on the FIFO."""
        alive = self._writer is not None and self._writer.is_alive()
        return (
            f"writer {'alive' if alive else 'DEAD'}, {self.dropped_seconds:.1f} s dropped, "
            f"errors: {self.writer_errors[-5:] or 'none'}; server log: {self._log_tail()}"
        )

    def wait_fed(self, timeout: float | None = None) -> bool:
        """Wait until everything queued with :meth:`feed` has been written."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left if left is not None else 0.1)
        return True

    def _open_fifo(self) -> int | None:
        assert self.dir is not None
        try:
            fd = os.open(self.dir / "mic.fifo", os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno not in (errno.ENXIO, errno.ENOENT):  # not just: no reader (source unloaded) / FIFO gone
                self.writer_errors.append(f"open: {e}")
            return None
        with contextlib.suppress(OSError):  # a small pipe: no backlog while nobody records
            fcntl.fcntl(fd, _F_SETPIPE_SZ, 4096)
        return fd

    def _write(self, fd: int, chunk: np.ndarray, realtime: bool) -> int:
        """Write ``chunk``; returns the samples that could not be delivered. Raises BrokenPipeError."""
        data = memoryview(chunk.tobytes())
        if realtime:  # one tick (<= PIPE_BUF, atomic)
            # A full pipe: pulseaudio is either late (a busy machine; wait a little) or not reading
            # at all (no stream records the source): then drop ticks at once until it reads again.
            deadline = time.monotonic() + (0.0 if self._reader_idle else 0.3)
            while True:
                try:
                    os.write(fd, data)
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        self._reader_idle = True
                        return len(chunk)
                    select.select([], [fd], [], 0.01)
                    continue
                self._reader_idle = False
                return 0
        stuck_since = time.monotonic()
        while data:
            try:
                n = os.write(fd, data)
            except BlockingIOError:
                n = 0
            if n:
                data = data[n:]
                stuck_since = time.monotonic()
            elif time.monotonic() - stuck_since > 1.0:  # pulseaudio is not reading
                return len(data) // 2
            else:
                select.select([], [fd], [], 0.05)
        return 0

    def _next_chunk(self) -> tuple[np.ndarray | None, _Feed | None]:
        """The next piece to write (under the lock): a realtime tick, a whole burst, or silence."""
        while self._queue and self._queue[0].pos >= len(self._queue[0].pcm):
            self._queue.popleft().done.set()
            self._cond.notify_all()
        if self._queue:
            item = self._queue[0]
            n = len(item.pcm) - item.pos if not item.realtime else round(_TICK * RATE)
            chunk = item.pcm[item.pos : item.pos + n]
            item.pos += len(chunk)
            return chunk, item
        if self.idle_silence:
            return np.zeros(round(_TICK * RATE), dtype="<i2"), None
        return None, None

    def _write_loop(self) -> None:
        # A microphone's clock does not slow down when the machine is busy: neither should ours.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        fd: int | None = None
        clock = time.monotonic()
        try:
            while True:
                with self._cond:
                    if self._stopping:
                        return
                    chunk, item = self._next_chunk()
                    if chunk is None:
                        self._cond.wait(0.05)
                        clock = time.monotonic()
                        continue
                echo = self._echo
                if echo is not None and (item is None or item.realtime):
                    mixed = chunk.astype(np.float32) / 32768 + echo.take(len(chunk))
                    chunk = np.round(np.clip(mixed, -1.0, 32767 / 32768) * 32768).astype("<i2")
                if fd is None:
                    fd = self._open_fifo()
                lost = len(chunk)
                if fd is not None:
                    try:
                        lost = self._write(fd, chunk, item is None or item.realtime)
                    except OSError as e:  # BrokenPipeError: the source was unloaded
                        if not isinstance(e, BrokenPipeError):
                            self.writer_errors.append(f"write: {e}")
                        os.close(fd)
                        fd = None
                self.dropped_seconds += lost / RATE
                if item is not None and not item.realtime:
                    clock = time.monotonic()
                    continue
                clock += len(chunk) / RATE
                now = time.monotonic()
                # Behind the clock (this thread was not scheduled): catch up, as a microphone's
                # samples keep coming whoever is late. Far behind (stuck on a dead reader): resync.
                if clock - now < -1.0:
                    clock = now
                with self._cond:
                    if clock > now and not self._stopping:
                        self._cond.wait(clock - now)
        finally:
            if fd is not None:
                os.close(fd)
            with self._cond:
                for item in self._queue:
                    item.done.set()
                self._queue.clear()
                self._cond.notify_all()

    # --- the speaker ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def record_sink(self, *, settle: float = 0.2, device: str = f"{SINK}.monitor") -> Iterator[Recording]:
        """Record the null sink's monitor (``out.monitor``) as 16 kHz mono float32 while inside;
        ``device`` records another source instead (``mic``: what the microphone hears in a room).

        ``settle`` seconds are waited after connecting so nothing played right after is missed.
        """
        assert self.dir is not None
        rec = Recording()
        path = self.dir / f"rec-{time.monotonic_ns()}.f32"
        with open(path, "wb") as out:
            proc = subprocess.Popen(
                [
                    "parec",
                    f"--device={device}",
                    "--format=float32le",
                    f"--rate={RATE}",
                    "--channels=1",
                    "--latency-msec=20",
                    "--raw",
                ],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.PIPE,
            )
        rec.started = time.monotonic()
        time.sleep(settle)
        try:
            yield rec
        finally:
            time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            data = path.read_bytes()
            path.unlink(missing_ok=True)
            rec.samples = np.frombuffer(data[: len(data) // 4 * 4], dtype="<f4").astype(np.float32)
            if proc.returncode not in (0, -signal.SIGINT, 1) or (not len(data) and err):
                raise RuntimeError(f"parec failed ({proc.returncode}): {err.decode(errors='replace').strip()}")

    @contextlib.contextmanager
    def room(self, room: Room = Room()) -> Iterator[Room]:
        """While inside, what the null sink plays comes back into ``mic`` as through a room: the
        monitor is recorded, filtered by ``room`` (delay, level, reverberation), mixed with noise
        and with whatever :meth:`feed` queues. Needs the idle silence (the writer's clock)."""
        assert self.dir is not None and self.idle_silence, "the room needs the writer's clock"
        proc = subprocess.Popen(
            [
                "parec",
                f"--device={SINK}.monitor",
                "--format=float32le",
                f"--rate={RATE}",
                "--channels=1",
                "--latency-msec=10",
                "--raw",
                "--client-name=room",
            ],
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        echo = _Echo(room, proc)
        stream = proc.stdout

        def listen() -> None:
            step = round(_TICK * RATE) * 4
            while data := stream.read(step):
                echo.add(np.frombuffer(data[: len(data) // 4 * 4], dtype="<f4"))

        reader = threading.Thread(target=listen, name="pulse-room", daemon=True)
        reader.start()
        self._echo = echo
        try:
            yield room
        finally:
            self._echo = None
            proc.kill()
            proc.wait(5)
            reader.join(5)

    # --- diagnostics ----------------------------------------------------------------------------

    def _log_tail(self) -> str:
        try:
            lines = (self.tmp_path / "pulseaudio.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        lines = [ln for ln in lines if "not intended to be run as root" not in ln and "D-Bus" not in ln]
        return " | ".join(lines[-5:])


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, so no server outlives a killed run."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _rescan_portaudio() -> None:
    """Make an already-imported sounddevice see the current environment's devices."""
    sd = sys.modules.get("sounddevice")
    if sd is None:
        return
    sd._terminate()
    sd._initialize()


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[PulseServer]:
    """A running :class:`PulseServer`, with this process pointed at it (env set, PortAudio re-scanned)."""
    server = PulseServer(tmp_path)
    with server:
        server.activate()
        yield server
