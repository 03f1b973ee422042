"""Live audio devices through the real sounddevice/PortAudio path, against a private PulseAudio server.

PortAudio reaches the server through ALSA's ``pulse`` plugin; the ``pulse`` fixture (tests/pulse.py)
points this process at it (PULSE_SERVER, PULSE_SOURCE=mic, PULSE_SINK=out) and re-scans PortAudio.
"""

from __future__ import annotations

import threading
import time
from itertools import pairwise

import numpy as np
import pulse as harness
import pytest
import soundfile as sf
import soxr
from conftest import SPEECH
from pulse import PulseServer

from translator.audio import portaudio
from translator.audio.blocks import LIVE_BLOCK_SECONDS
from translator.audio.lookup import find_device
from translator.audio.microphone import CAPTURE_PERIOD, MicrophoneSource
from translator.audio.portaudio import DeviceInfo, list_devices
from translator.audio.speaker import SpeakerSink
from translator.errors import DeviceError
from translator.events import SAMPLE_RATE, AudioBlock

CLIP = SPEECH / "en" / "LDC93S1.wav"

pulse = harness.pulse
"""The private PulseAudio server as a fixture (pytest finds a fixture by the name it has here)."""


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    x, rate = sf.read(CLIP, dtype="float32")
    assert rate == SAMPLE_RATE and x.ndim == 1
    return x


@pytest.fixture(autouse=True)
def _close_captures():
    """A failed test still closes its microphone."""
    yield
    while Capture.live:
        Capture.live.pop().mic.close()


def align(y: np.ndarray, x: np.ndarray) -> tuple[int, float]:
    """Where ``x`` starts in ``y`` (may be negative or past the end: y is zero-padded) and the
    correlation coefficient of the overlap."""
    pad = np.concatenate([np.zeros(len(x), np.float32), y, np.zeros(len(x), np.float32)])
    n = 1 << (len(pad) + len(x)).bit_length()
    c = np.fft.irfft(np.fft.rfft(pad, n) * np.conj(np.fft.rfft(x, n)), n)[: len(pad) - len(x) + 1]
    k = int(np.argmax(np.abs(c)))
    seg = pad[k : k + len(x)]
    corr = float(np.corrcoef(seg, x)[0, 1]) if seg.std() > 0 else 0.0
    return k - len(x), corr


class Capture:
    """Iterates a MicrophoneSource on a thread, keeping blocks and status messages.

    ``events`` has both in the order the iterating thread saw them (the microphone reports its
    status from that thread), so a test can check what came before what.
    """

    live: list[Capture] = []

    def __init__(self, **kwargs: object) -> None:
        Capture.live.append(self)
        self.blocks: list[AudioBlock] = []
        self.statuses: list[str] = []
        self.events: list[AudioBlock | str] = []
        self.error: BaseException | None = None
        self.mic = MicrophoneSource(on_status=self._status, **kwargs)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _status(self, message: str) -> None:
        self.statuses.append(message)
        self.events.append(message)

    def _run(self) -> None:
        try:
            for block in self.mic:
                self.blocks.append(block)
                self.events.append(block)
        except BaseException as e:  # checked by the test
            self.error = e

    def wait_for(self, predicate, timeout: float) -> bool:
        return _wait(predicate, timeout)

    def stop(self) -> None:
        """Close the source; iteration must end (not hang in PortAudio, as ``stop()`` would for ~70 s)."""
        self.mic.close()
        self.thread.join(5)
        assert not self.thread.is_alive(), "iteration did not end after close()"

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate([b.samples for b in self.blocks]) if self.blocks else np.zeros(0, np.float32)


# --- finding devices ----------------------------------------------------------------------------


def test_list_devices_shows_the_pulse_devices(pulse: PulseServer) -> None:
    found = list_devices()
    names = [d.name for d in found]
    assert "pulse" in names and "default" in names, names
    d = next(d for d in found if d.name == "pulse")
    assert d.host_api == "ALSA"
    assert d.max_input_channels > 0 and d.max_output_channels > 0 and d.default_samplerate > 0
    assert found[d.index] == d


def test_find_device_by_name_part_and_default(pulse: PulseServer) -> None:
    import sounddevice as sd

    assert find_device("default", "input").name == "default"
    assert find_device("PUL", "output").name == "pulse"  # case-insensitive part of a name
    assert find_device("", "input").index == sd.default.device[0]
    assert find_device("", "output").index == sd.default.device[1]
    with pytest.raises(DeviceError) as e:
        find_device("usb headset", "input")
    msg = str(e.value)
    assert "'usb headset'" in msg and "'pulse'" in msg and "'default'" in msg and "\n" not in msg
    with pytest.raises(DeviceError, match=r"ambiguous.*'pulse'.*'default'"):
        find_device("u", "output")  # in both "pulse" and "default"


def test_missing_device_names_the_available_ones(pulse: PulseServer) -> None:
    with pytest.raises(DeviceError, match=r"no audio input device matches 'Jabra'.*'pulse', 'default'"):
        MicrophoneSource("Jabra")
    with pytest.raises(DeviceError, match=r"no audio output device matches 'HDMI'.*'pulse', 'default'"):
        SpeakerSink("HDMI")


def test_live_session_closes_the_microphone_when_the_output_is_missing(pulse: PulseServer) -> None:
    from translator.config import AudioSettings
    from translator.live import LiveSession

    with pytest.raises(DeviceError, match=r"no audio output device matches 'HDMI'"):
        LiveSession(None, AudioSettings(output="HDMI"))  # type: ignore[arg-type] (fails before engines are used)
    assert portaudio.open_streams() == 0


def _fake(monkeypatch: pytest.MonkeyPatch, infos: list[DeviceInfo], default: int) -> None:
    monkeypatch.setattr(portaudio, "list_devices", lambda: infos)
    monkeypatch.setattr(portaudio, "default_index", lambda kind: default)


def test_find_device_rules_without_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    mme = DeviceInfo(0, "Headset (Jabra Evolve)", "MME", 1, 0, 44100)
    wasapi = DeviceInfo(1, "Headset (Jabra Evolve)", "Windows WASAPI", 1, 0, 48000)
    usb = DeviceInfo(2, "USB PnP Sound Device", "ALSA", 1, 2, 48000)
    usb2 = DeviceInfo(3, "USB Audio CODEC", "ALSA", 2, 2, 44100)
    spk = DeviceInfo(4, "Speakers", "ALSA", 0, 2, 48000)
    _fake(monkeypatch, [mme, wasapi, usb, usb2, spk], default=1)
    # one device under two host APIs: the default one wins, whether matched exactly or in part
    assert find_device("Headset (Jabra Evolve)", "input") == wasapi
    assert find_device("jabra", "input") == wasapi
    assert find_device("", "input") == wasapi
    assert find_device("pnp", "input") == usb
    assert find_device("3", "input") == usb2  # digits that name nothing: an index
    assert find_device("speak", "output") == spk
    with pytest.raises(DeviceError, match=r"'USB PnP Sound Device', 'USB Audio CODEC'; give more of the name"):
        find_device("usb", "input")
    with pytest.raises(DeviceError, match=r"no audio input device matches 'speak'"):
        find_device("speak", "input")  # an output only
    _fake(monkeypatch, [spk], default=-1)
    with pytest.raises(DeviceError, match="no audio input device found; connect a microphone"):
        find_device("", "input")
    with pytest.raises(DeviceError, match=r"no default audio output device; choose one of the outputs there are: 'Speakers'"):
        find_device("", "output")
    with pytest.raises(ValueError):
        find_device("x", "both")  # type: ignore[arg-type]  # not a direction: the ValueError is the point


# --- microphone ---------------------------------------------------------------------------------


def _check_contiguous(blocks: list[AudioBlock]) -> None:
    """Fixed-size blocks from audio time 0, each starting where the one before ended."""
    size = round(LIVE_BLOCK_SECONDS * SAMPLE_RATE)
    assert all(len(b.samples) == size for b in blocks[:-1]) and 0 < len(blocks[-1].samples) <= size
    assert blocks[0].start == 0.0
    assert all(round(b.start * SAMPLE_RATE) == round(a.end * SAMPLE_RATE) for a, b in pairwise(blocks))


def test_microphone_captures_the_fed_clip(pulse: PulseServer, clip: np.ndarray) -> None:
    cap = Capture()
    mic = cap.mic
    assert mic.rate == 44100 and mic.channels == 1  # the device's own rate, resampled to 16 kHz
    assert cap.wait_for(lambda: len(cap.blocks) >= 2, 3), cap.statuses
    pulse.feed(clip).wait(10)
    time.sleep(0.4)
    cap.stop()
    assert cap.error is None
    blocks = cap.blocks
    assert all(b.samples.dtype == np.float32 for b in blocks)
    _check_contiguous(blocks)
    k, corr = align(cap.audio, clip)  # also fails if the rate were off: the clip would not line up
    assert corr > 0.9, (corr, pulse.dropped_seconds, mic.overruns)
    assert k >= 0 and k + len(clip) <= len(cap.audio)
    assert mic.overruns == 0
    assert cap.statuses and cap.statuses[0] == "listening on 'default' at 44100 Hz"


def test_microphone_wakes_its_consumer_per_block_not_per_callback(pulse: PulseServer) -> None:
    # Idle CPU: nobody speaking still means a stream of samples, and every wakeup of Python costs.
    cap = Capture()
    assert cap.wait_for(lambda: len(cap.blocks) >= 10, 5), cap.statuses
    stream = cap.mic._stream
    assert stream is not None and stream.blocksize == round(CAPTURE_PERIOD * cap.mic.rate)  # not PortAudio's choice
    cap.stop()
    blocks, wakeups = len(cap.blocks), cap.mic.wakeups
    callbacks_per_block = LIVE_BLOCK_SECONDS / CAPTURE_PERIOD
    assert callbacks_per_block == 4
    # Once or twice per block (a callback early at most), never at each of its callbacks.
    assert 0 < wakeups <= 2 * blocks + 2, (wakeups, blocks)


def test_microphone_reports_each_burst_of_overruns(pulse: PulseServer) -> None:
    import sounddevice as sd

    statuses: list[str] = []
    mic = MicrophoneSource(on_status=statuses.append)
    try:
        # Called as PortAudio would, before the stream starts: no real callback comes in between.
        callback = mic._make_callback(mic._generation)
        frames = 441
        overflow, fine = sd.CallbackFlags(), sd.CallbackFlags()
        overflow.input_overflow = True
        for flags in (overflow, overflow, fine):  # one burst of two overruns, then a clean callback
            callback(np.zeros((frames, mic.channels), np.float32), frames, None, flags)
        blocks = iter(mic)
        next(blocks)
        assert mic.overruns == 2
        assert statuses == [
            "listening on 'default' at 44100 Hz",
            "input overrun: audio lost (2 overruns so far); the machine is falling behind",
        ]
        callback(np.zeros((frames, mic.channels), np.float32), frames, None, overflow)  # a new burst
        assert _wait(lambda: (next(blocks), len(statuses) > 2)[1], 3), statuses
        assert statuses[2:] == ["input overrun: audio lost (3 overruns so far); the machine is falling behind"]
    finally:
        mic.close()


def test_microphone_at_16k_is_bit_exact_and_mutes(pulse: PulseServer, clip: np.ndarray) -> None:
    cap = Capture(samplerate=16000)
    part = clip[:SAMPLE_RATE]
    assert cap.wait_for(lambda: len(cap.blocks) >= 1, 3), cap.statuses
    pulse.feed(part).wait(5)
    time.sleep(0.3)
    cap.mic.muted.set()  # the self-listening guard: input zeroed while set
    n_before = len(cap.blocks)
    pulse.feed(part).wait(5)
    time.sleep(0.3)
    cap.mic.muted.clear()
    cap.mic.mute_until(time.monotonic() + 0.6)
    pulse.feed(part).wait(5)
    time.sleep(0.3)
    cap.stop()
    y = cap.audio
    k, corr = align(y, part)
    expected = np.round(part * 32768) / 32768
    assert np.array_equal(y[k : k + len(part)], expected)  # a pipe source delivers bit-exact samples
    muted = np.concatenate([b.samples for b in cap.blocks[n_before + 3 : n_before + 6]])
    assert not muted.any()
    assert np.abs(y[k + len(part) :]).max() > 0.05  # the tail after mute_until is heard again
    assert np.abs(y[-len(part) // 3 :]).max() > 0.01


def test_microphone_survives_the_source_being_unplugged(pulse: PulseServer, clip: np.ndarray) -> None:
    cap = Capture()
    assert cap.wait_for(lambda: len(cap.blocks) >= 2, 3), cap.statuses
    pulse.remove_source()
    assert cap.wait_for(lambda: any(" lost (" in m for m in cap.statuses), 3), cap.statuses
    time.sleep(1.0)
    pulse.add_source()
    assert cap.wait_for(lambda: any("back after" in m for m in cap.statuses), 8), cap.statuses
    pulse.feed(clip).wait(10)
    time.sleep(0.4)
    cap.stop()
    assert cap.error is None
    lost = "input device 'default' lost (the audio stream stopped); retrying"
    assert [m for m in cap.statuses if " lost (" in m] == [lost]  # lost once, reported once
    blocks = cap.blocks
    gaps = [(a, b) for a, b in pairwise(blocks) if round(b.start * SAMPLE_RATE) != round(a.end * SAMPLE_RATE)]
    assert len(gaps) == 1, [(a.end, b.start) for a, b in gaps]
    before, after = gaps[0]
    away = after.start - before.end
    assert away > 0  # the clock moved on by the time the device was away
    # In the order the consumer saw them: the audio up to the loss, the loss, the return, the rest.
    events = cap.events
    back = next(m for m in cap.statuses if "back after" in m)
    assert events.index(before) < events.index(lost) < events.index(back) < events.index(after)
    assert not any(isinstance(e, AudioBlock) for e in events[events.index(lost) : events.index(back)])
    _check_contiguous(blocks[: blocks.index(before) + 1])
    resumed = np.concatenate([b.samples for b in blocks[blocks.index(after) :]])
    assert align(resumed, clip)[1] > 0.9


def test_microphone_without_retry_raises_when_lost(pulse: PulseServer) -> None:
    cap = Capture(retry=False)
    assert cap.wait_for(lambda: len(cap.blocks) >= 1, 3)
    pulse.remove_source()
    cap.thread.join(3)
    assert isinstance(cap.error, DeviceError)
    assert str(cap.error) == "audio input 'default' was lost (the audio stream stopped); reconnect it and start again"


def test_microphone_that_stops_delivering_is_retried(tmp_path, clip: np.ndarray) -> None:
    # An unclocked pipe source: no callbacks at all while nothing is fed, like a hung device.
    with PulseServer(tmp_path, idle_silence=False) as server:
        server.activate()
        cap = Capture(stall_timeout=0.5)
        try:
            assert cap.wait_for(lambda: any("no audio for 0.5 s" in m for m in cap.statuses), 3), cap.statuses
            server.idle_silence = True
            assert cap.wait_for(lambda: any("back after" in m for m in cap.statuses), 5), cap.statuses
            server.feed(clip[:SAMPLE_RATE]).wait(5)
            time.sleep(0.3)
        finally:
            cap.stop()
        assert cap.error is None and cap.blocks[0].start == 0.0  # nothing before the stall: no gap
        assert align(cap.audio, clip[:SAMPLE_RATE])[1] > 0.9


# --- speaker ------------------------------------------------------------------------------------


def test_speaker_plays_to_the_null_sink(pulse: PulseServer, clip: np.ndarray) -> None:
    piper_rate = 22050
    x = soxr.resample(clip, SAMPLE_RATE, piper_rate).astype(np.float32)
    lead_in = 1.0  # much longer than the output latency, so the silence it adds cannot be mistaken
    sink = SpeakerSink(lead_in=lead_in, lead_in_after=0.0)
    try:
        assert sink.rate == 44100
        assert not sink.speaking
        with pulse.record_sink() as rec:
            sink.write(x[: len(x) // 2], piper_rate)  # two sentences, in a row: no lead-in between them
            sink.write(x[len(x) // 2 :], piper_rate)
            assert sink.speaking  # write queued the speech and returned before it was heard
            assert sink.drain(10)
            assert not sink.speaking
            sink.write(clip, SAMPLE_RATE)  # a new burst after silence: led in
            assert sink.drain(10)
    finally:
        sink.close()
    y = rec.samples
    first, corr = align(y, clip)
    masked = y.copy()
    masked[max(first, 0) : first + len(clip)] = 0
    second, corr2 = align(masked, clip)
    first, second = sorted((first, second))
    assert corr > 0.9 and corr2 > 0.9, (corr, corr2)
    assert second - (first + len(clip)) >= lead_in * SAMPLE_RATE  # samples of silence before the new burst
    # Both halves of the first burst played back to back: its voiced span is the clip's.
    voiced = np.flatnonzero(np.abs(y[: first + len(clip) + SAMPLE_RATE // 2]) > 1e-3)
    clip_voiced = np.flatnonzero(np.abs(clip) > 1e-3)
    assert abs((voiced[-1] - voiced[0]) - (clip_voiced[-1] - clip_voiced[0])) < 0.1 * SAMPLE_RATE


def test_speaker_failure_raises_once_then_recovers(pulse: PulseServer, clip: np.ndarray) -> None:
    statuses: list[str] = []
    sink = SpeakerSink(on_status=statuses.append)
    try:
        pulse.remove_sink()
        assert _wait(lambda: sink.error is not None, 3), statuses
        with pytest.raises(DeviceError, match=r"audio output 'default' failed \(the audio stream stopped\)"):
            sink.write(clip, SAMPLE_RATE)
        for _ in range(3):
            sink.write(clip, SAMPLE_RATE)  # no more errors: dropped
        assert not sink.speaking and not sink.drain(0.1)
        time.sleep(2.0)  # retries fail meanwhile (0.5, 1.5 s), and are not announced again
        pulse.add_sink()
        assert _wait(lambda: sink.error is None, 8), statuses  # found again with nothing to play
        assert statuses == [
            "audio output 'default' failed (the audio stream stopped); speech is not played",
            "audio output 'default' is back",
        ], statuses
        with pulse.record_sink() as rec:
            sink.write(clip, SAMPLE_RATE)
            assert sink.drain(10)
        assert align(rec.samples, clip)[1] > 0.9
    finally:
        sink.close()


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
