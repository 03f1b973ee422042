"""Echo return loss enhancement and CPU of the two echo cancellers, in the simulated room.

Run: ``PYTHONPATH=$PWD:$PWD/tests python3 tests/echo_bench.py [--rooms 40:-6,100:-12,150:-20]``.

For each room (extra delay in ms : echo level in dB) a private PulseAudio server (tests/pulse.py)
carries the null sink's monitor back into the microphone. A corpus recording is played, and the
microphone's energy with playback only is compared before and after the canceller, from 3 s after
playback starts (convergence) to its end:

* ``aec3``: the translator's own path, :class:`~translator.audio.speaker.SpeakerSink` feeding
  :class:`~translator.audio.echo.EchoReference` and :class:`~translator.audio.microphone.MicrophoneSource`
  running :class:`~translator.audio.echo.EchoCanceller`. Its CPU is AEC3 replayed on the same capture.
* ``pulse``: PulseAudio's ``module-echo-cancel aec_method=webrtc`` (its gain control and noise
  suppression off, so only cancellation is measured). Its CPU is the sound server's, less the same
  server's without playback.

The room's noise (-60 dBFS) bounds what can be measured: a canceller that removes all the echo
shows the echo-to-noise ratio. Figures go to stdout; docs/duplex.md keeps the last ones.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from conftest import SPEECH
from pulse import RATE, PulseServer, Room

from translator.audio.echo import EchoCanceller, EchoReference
from translator.audio.files import FileSource

CONVERGE = 3.0


def _far() -> np.ndarray:
    clips = ("en/jfk.16k.wav", "en/LJ050-0131.wav")
    return np.concatenate([b.samples for name in clips for b in FileSource(SPEECH / name)]) * 0.5


def _record(pa: PulseServer, device: str, path: Path) -> subprocess.Popen[bytes]:
    args = ["parec", f"--device={device}", "--format=float32le", f"--rate={RATE}", "--channels=1", "--latency-msec=10", "--raw"]
    with open(path, "wb") as out:
        return subprocess.Popen(args, env={**os.environ, **pa.env}, stdout=out)


def _stop(proc: subprocess.Popen[bytes], path: Path) -> np.ndarray:
    proc.send_signal(signal.SIGINT)
    proc.wait(5)
    data = path.read_bytes()
    return np.frombuffer(data[: len(data) // 4 * 4], dtype="<f4")


def _window(raw: np.ndarray) -> slice:
    """From convergence to the end of the echo, found on the raw capture's envelope."""
    env = np.convolve(raw**2, np.ones(1600) / 1600, "same")
    on = np.flatnonzero(env > 10 * np.median(env) + 1e-9)
    return slice(on[0] + round(CONVERGE * RATE), on[-1])


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20))


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pulse_module(pa: PulseServer, far: np.ndarray, tmp: Path) -> tuple[float, float, float]:
    """(raw dBFS, cancelled dBFS, % of a core) for PulseAudio's echo-cancel module."""
    aec_args = 'aec_args="analog_gain_control=0 digital_gain_control=0 noise_suppression=0"'
    args = ("source_master=mic", "sink_master=out", "aec_method=webrtc", "source_name=ec", "sink_name=ec_sink", aec_args)
    pa.pactl("load-module", "module-echo-cancel", *args)
    time.sleep(0.5)
    raw_rec, ec_rec = _record(pa, "mic", tmp / "raw.f32"), _record(pa, "ec", tmp / "ec.f32")
    time.sleep(0.5)
    assert pa.proc is not None
    c0, t0 = _cpu(pa.proc.pid), time.monotonic()
    play = subprocess.Popen(
        ["pacat", "--playback", "--device=ec_sink", "--raw", "--format=float32le", f"--rate={RATE}", "--channels=1"],
        env={**os.environ, **pa.env},
        stdin=subprocess.PIPE,
    )
    assert play.stdin is not None
    play.stdin.write(far.astype("<f4").tobytes())
    play.stdin.close()
    play.wait(120)
    time.sleep(0.5)
    c1, t1 = _cpu(pa.proc.pid), time.monotonic()
    raw, ec = _stop(raw_rec, tmp / "raw.f32"), _stop(ec_rec, tmp / "ec.f32")
    time.sleep(t1 - t0)  # the same server, same room, no playback: its own cost
    c2 = _cpu(pa.proc.pid)
    w = _window(raw)
    return _db(raw[w]), _db(ec[w]), 100 * ((c1 - c0) - (c2 - c1)) / (t1 - t0)


def in_process(pa: PulseServer, far: np.ndarray, tmp: Path) -> tuple[float, float, float]:
    """(raw dBFS, cancelled dBFS, % of a core) for AEC3 on the translator's own streams."""
    from translator.audio.microphone import MicrophoneSource
    from translator.audio.speaker import SpeakerSink

    pa.activate()
    reference = EchoReference()
    canceller = EchoCanceller(reference)
    raw_rec = _record(pa, "mic", tmp / "raw.f32")
    heard: list[np.ndarray] = []
    with MicrophoneSource("pulse", canceller=canceller) as mic, SpeakerSink("pulse", reference=reference) as speaker:

        def listen() -> None:
            heard.extend(block.samples for block in mic)

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        time.sleep(0.5)
        speaker.write(far, RATE)
        speaker.drain(timeout=120)
        time.sleep(0.5)
    t.join(10)
    raw = _stop(raw_rec, tmp / "raw.f32")
    out = np.concatenate(heard)
    # The two captures start apart: the window found on the raw one is moved by their lag.
    w_raw = _window(raw)
    shift = _lag(raw, out)
    w = slice(max(0, w_raw.start - shift), w_raw.stop - shift)
    # CPU: AEC3 replayed on what was captured, with the played audio as its reference.
    replay = EchoReference()
    replay.played(0, RATE, 0.0, np.concatenate([np.zeros(RATE, np.float32), far]))
    aec = EchoCanceller(replay)
    t0 = time.process_time()
    aec.process(raw[: len(far)], 0.0)
    cpu = 100 * (time.process_time() - t0) / (len(far) / RATE)
    return _db(raw[w_raw]), _db(out[w]), cpu


def _lag(a: np.ndarray, b: np.ndarray) -> int:
    """Samples by which ``b`` starts after ``a`` began (both record the same microphone)."""
    n = min(len(a), len(b), 20 * RATE)
    spec = np.fft.rfft(a[:n], 2 * n) * np.conj(np.fft.rfft(b[:n], 2 * n))
    xc = np.fft.irfft(spec)
    k = int(np.argmax(np.abs(xc)))
    return k if k < n else k - 2 * n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", default="40:-6,100:-12,150:-20", help="delay_ms:level_db pairs")
    parser.add_argument("--method", choices=("aec3", "pulse", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=1, help="runs per room and method (the median is printed too)")
    args = parser.parse_args()
    far = _far()
    methods = {"aec3": in_process, "pulse": pulse_module}
    chosen = list(methods) if args.method == "both" else [args.method]
    for room_text in args.rooms.split(","):
        delay_ms, level = (float(v) for v in room_text.split(":"))
        for name in chosen:
            erles, cpus = [], []
            for _ in range(args.repeat):
                with (
                    tempfile.TemporaryDirectory() as d,
                    PulseServer(d) as pa,
                    pa.room(Room(delay=delay_ms / 1000, gain_db=level)),
                ):
                    raw, out, cpu = methods[name](pa, far, Path(d))
                erles.append(raw - out)
                cpus.append(cpu)
                print(
                    f"{name:5} room +{delay_ms:.0f} ms {level:+.0f} dB: mic {raw:.1f} dBFS -> {out:.1f} dBFS, "
                    f"ERLE {raw - out:.1f} dB (ceiling {raw + 60:.0f} dB: noise), CPU {cpu:.1f} % of a core",
                    flush=True,
                )
            if args.repeat > 1:
                print(
                    f"{name:5} room +{delay_ms:.0f} ms {level:+.0f} dB: median ERLE {np.median(erles):.1f} dB, CPU {np.median(cpus):.1f} %"
                )


if __name__ == "__main__":
    main()
