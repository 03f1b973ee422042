"""Acoustic echo cancellation: what the speaker played, taken out of what the microphone hears.

The canceller is WebRTC's AEC3 in-process (the ``pywebrtc-audio`` wheel), chosen by measurement
over PulseAudio's ``module-echo-cancel`` (docs/duplex.md). It needs the played audio as a
reference, sample-aligned with the capture. The two streams are separate PortAudio streams, so the
alignment comes from timestamps: each open output stream is one contiguous run of samples whose
first sample is heard at the first callback's time plus the output latency, and each open input
stream one whose first sample was spoken at its first callback's time less the input latency and
the callback's length. Anchoring once per stream (not per callback) keeps callback jitter out of
the alignment; what is left is a constant offset (the room's delay, the sound server's buffering
beyond what it reports), which AEC3's own delay estimator finds, as long as the echo comes after
the reference it is given (an echo ahead of its reference cannot be cancelled): hence :data:`LEAD`.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

from translator.audio.samples import StreamResampler
from translator.events import SAMPLE_RATE

FRAME = SAMPLE_RATE // 100
"""AEC3 works on 10 ms frames."""

LEAD = 0.2
"""Seconds the reference is handed over ahead of the capture it is aligned with. Through ALSA's
``pulse`` plugin the echo came 80-130 ms before the reported latencies put it, varying from one
pair of streams to the next (the plugin reports its ALSA buffer, not the server's): at 50 ms AEC3
cancelled nothing, at 120 ms one run in three. AEC3 finds delays up to about 500 ms (measured:
28 dB at 500 ms, 3.5 at 600), which leaves 250 ms for the room beyond this margin."""

HOLD = 0.05
"""At most this much capture waits for its reference: the speaker hands over audio about when it
is queued to be heard (its output latency, 0.1 s, ahead), which is a little less than ``LEAD``
beyond the capture's age. Only while the output plays; the wait is added to what is heard."""

QUIET = 0.5
"""Seconds of a silent reference (digital zeros: nothing played, the room's tail gone) after
which AEC3 is not run: the capture passes through, delayed as AEC3 would delay it, so a session
nobody speaks to pays nothing for the canceller. AEC3 keeps what it learnt of the room meanwhile."""

AEC3_DELAY = 128
"""Samples AEC3 (as pywebrtc-audio runs it) delays its output by (8 ms; tests/test_audio_echo.py)."""

NEAR_END_DB = 20.0
"""How far above what the canceller left of our playback just before (its 90th percentile) the
last :data:`NEAR_END_WINDOW` must be (its 75th) to be somebody speaking over it. Measured in the
simulated room (tests/pulse.py, +80 ms, -10 dB, -60 dBFS noise): AEC3 leaves our voice at the noise
floor from the first 0.1 s of playback on (-62 to -60 dBFS in every 0.3 s window of 490), and a
person talking over it comes out at -42 to -8 dBFS: 20 dB leaves room for a quieter speaker and a
louder room. Below it, the caption decides (translator/live.py)."""

NEAR_END_WINDOW = 0.45
"""Seconds of the latest capture looked at: the voiced audio that started the utterance (the
VAD's ``min_speech``, 0.25 s) with the frames around it."""

NEAR_END_BEFORE = 2.0
"""Seconds before that window in which the canceller must have been shown to take our voice out:
at least :data:`NEAR_END_PLAYED` of them with something played, and no new reference run (an
underflow, a new stream: a new offset for AEC3 to find, while our words leak through)."""

NEAR_END_PLAYED = 0.5
"""Seconds of playback (frames of it) the canceller must have been seen on, within those 2 s."""

_FAR_ON_DBFS = -50.0
"""A 10 ms frame of the reference this loud is playback (speech; what is between words is not)."""

_KEEP = 2.0
"""Seconds of played audio kept behind the capture (more than any room's echo path)."""

_UNREAD = 10.0
"""Seconds of played audio held for a capture that does not come (the microphone lost and being
reopened while the output, open for good in aec, goes on): beyond this the oldest is dropped, and
what is kept starts a run of its own. Capture older than 2 s is dropped by the microphone anyway."""


def unavailable() -> str | None:
    """Why echo cancellation cannot run here, or None when it can."""
    try:
        import pywebrtc_audio  # noqa: F401, PLC0415 - an optional native wheel
    except ImportError as e:
        return f"the echo canceller is not installed ({e}; pip install pywebrtc-audio)"
    return None


class EchoReference:
    """What the speaker played, on a 16 kHz timeline of wall time, for the microphone's canceller.

    :meth:`played` is called from the output callback with every buffer it fills (silence
    included, so an open stream is one contiguous run); it only appends. :meth:`take` is called
    from the microphone's thread and does the resampling there.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._incoming: deque[tuple[int, int, float, np.ndarray, bool]] = deque()  # played()'s arguments
        self._unread = 0.0  # seconds in _incoming
        self._dropped = False  # _incoming lost its oldest: what is left starts a run of its own
        self._run = -1
        self._to_16k: StreamResampler | None = None
        self._runs: deque[_Run] = deque(maxlen=2)  # the current run, and the one before it
        self._open = False  # an output stream is delivering: what it will play is still coming
        self.played_seconds = 0.0
        """Seconds of audio the speaker reported, silence included (for tests and the bench)."""
        self.runs = 0
        """Runs started so far (each one a new offset for the canceller)."""

    def played(self, run: int, rate: int, heard_at: float, samples: np.ndarray, *, resumed: bool = False) -> None:
        """An output buffer (device rate, mono) whose first sample is heard at ``heard_at``; a new
        ``run`` starts a new timeline, anchored at its first buffer (a new stream, an underflow).
        The run before it is kept too: its echo is still in the room.

        ``resumed``: the run follows an underflow of the same stream, and ``heard_at`` is only the
        earliest it can be heard (the device's buffer may be empty). It is anchored no earlier
        than where the run before ends (the device played nothing of ours meanwhile): so the
        reference never comes after its echo, which AEC3 could not cancel; too early by up to the
        output latency, it is within what AEC3 finds."""
        with self._lock:
            self._incoming.append((run, rate, heard_at, samples.copy(), resumed))
            self._unread += len(samples) / rate
            while self._unread > _UNREAD and len(self._incoming) > 1:
                _, old_rate, _, old, _ = self._incoming.popleft()
                self._unread -= len(old) / old_rate
                self._dropped = True
            self._open = True

    def ended(self) -> None:
        """The output stream closed: nothing more is coming until the next run."""
        with self._lock:
            self._open = False

    def ready(self, until: float) -> bool:
        """Whether what is heard up to wall time ``until`` is known (or nothing is playing)."""
        self._ingest()
        with self._lock:
            if not self._open:
                return True
        return bool(self._runs) and self._runs[-1].until >= until

    def _ingest(self) -> None:
        with self._lock:
            pieces = list(self._incoming)
            self._incoming.clear()
            self._unread = 0.0
            if self._dropped:  # the kept audio does not follow what was ingested before it
                self._dropped = False
                self._run = -1
        for run, rate, heard_at, samples, resumed in pieces:
            if run != self._run or self._to_16k is None or self._to_16k.rate != rate:
                if resumed and self._runs:
                    heard_at = max(heard_at, self._runs[-1].until)
                self._run = run
                self._to_16k = StreamResampler(rate)
                self._runs.append(_Run(heard_at))
                self.runs += 1
            self.played_seconds += len(samples) / rate
            self._runs[-1].add(self._to_16k(samples))

    def take(self, at: float, n: int) -> np.ndarray:
        """``n`` samples of what was heard from wall time ``at`` on (zeros where nothing played)."""
        self._ingest()
        out = np.zeros(n, dtype=np.float32)
        for run in self._runs:  # oldest first: where two overlap, the newer one is right
            run.copy_into(out, at)
        return out


class _Run:
    """One contiguous run of played audio at 16 kHz, sample 0 heard at ``anchor``."""

    def __init__(self, anchor: float) -> None:
        self.anchor = anchor
        self.base = 0  # index of buf[0] in the run
        self.buf = np.zeros(0, dtype=np.float32)

    @property
    def until(self) -> float:
        """Wall time at which the last sample received is heard."""
        return self.anchor + (self.base + len(self.buf)) / SAMPLE_RATE

    def add(self, samples: np.ndarray) -> None:
        self.buf = np.concatenate([self.buf, samples])

    def copy_into(self, out: np.ndarray, at: float) -> None:
        start = round((at - self.anchor) * SAMPLE_RATE) - self.base
        lo, hi = max(start, 0), min(start + len(out), len(self.buf))
        if hi > lo:
            out[lo - start : hi - start] = self.buf[lo:hi]
        drop = start - round(_KEEP * SAMPLE_RATE)
        if drop > 0:
            self.buf = self.buf[drop:]
            self.base += drop


class EchoCanceller:
    """AEC3 over the microphone's 16 kHz audio, with :class:`EchoReference` as the far end.

    :meth:`process` takes contiguous capture and returns as many samples as it was given, up to
    one frame (10 ms) later, or :data:`HOLD` while its reference has not come: what is held waits
    for the next call. ``at`` (the wall time the first sample was spoken) starts a new run: a new
    stream, or audio after a gap. Coming back from the bypass, AEC3 first gives back the 8 ms it
    held when it was left.
    """

    def __init__(self, reference: EchoReference) -> None:
        from pywebrtc_audio import EchoCanceller as Aec3  # noqa: PLC0415 - an optional native wheel

        self.reference = reference
        self._aec: Any = Aec3(sample_rate=SAMPLE_RATE, num_channels=1)
        self._pending = np.zeros(0, dtype=np.float32)
        self._next = 0.0  # wall time of self._pending[0]
        self._line = np.zeros(AEC3_DELAY, dtype=np.float32)  # the last input, for the bypass
        self._quiet = 0  # samples of silent reference in a row
        self._keep = round((NEAR_END_WINDOW + NEAR_END_BEFORE) * SAMPLE_RATE / FRAME)
        self._recent: deque[tuple[float, bool, int]] = deque(maxlen=self._keep)  # per frame: output dBFS, far on, run
        self._recent_lock = threading.Lock()
        self.frames = 0
        """Frames run through AEC3."""
        self.bypassed = 0
        """Frames passed through while the reference was silent (see :data:`QUIET`)."""

    def process(self, samples: np.ndarray, at: float | None = None) -> np.ndarray:
        if at is not None:
            self._next = at - len(self._pending) / SAMPLE_RATE
        x = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        whole = len(x) // FRAME * FRAME
        hold = round(HOLD * SAMPLE_RATE)
        out = np.empty(whole, dtype=np.float32)
        for i in range(0, whole, FRAME):
            at = self._next + i / SAMPLE_RATE + LEAD
            if len(x) - i <= hold and not self.reference.ready(at + FRAME / SAMPLE_RATE):
                whole = i  # the rest waits for its reference (see HOLD)
                break
            far = self.reference.take(at, FRAME)
            near = np.ascontiguousarray(x[i : i + FRAME], dtype=np.float32)
            self._quiet = 0 if far.any() else self._quiet + FRAME
            line = np.concatenate([self._line, near])
            self._line = line[-AEC3_DELAY:]
            if self._quiet > QUIET * SAMPLE_RATE:
                out[i : i + FRAME] = line[:FRAME]
                self.bypassed += 1
            else:
                out[i : i + FRAME] = self._aec.process(near, far)
                self.frames += 1
            self._note(out[i : i + FRAME], far)
        out = out[:whole]
        self._pending = x[whole:].copy()
        self._next += whole / SAMPLE_RATE
        return out

    def _note(self, out: np.ndarray, far: np.ndarray) -> None:
        level = _dbfs(out)
        with self._recent_lock:
            self._recent.append((level, _dbfs(far) > _FAR_ON_DBFS, self.reference.runs))

    def near_end(self) -> bool:
        """Whether somebody is speaking over our playback in the latest capture: the canceller,
        having taken our voice down to the room's floor over the seconds before, now lets through
        much more (:data:`NEAR_END_DB`). False when it cannot tell: too little played before, or
        a new reference run among those frames, in which our own voice may be what comes through.
        Called from another thread than :meth:`process`."""
        with self._recent_lock:
            recent = list(self._recent)
        window = round(NEAR_END_WINDOW * SAMPLE_RATE / FRAME)
        if len(recent) < self._keep or len({run for _, _, run in recent}) > 1:
            return False
        before = np.array([level for level, far_on, _ in recent[:-window] if far_on])
        if len(before) < NEAR_END_PLAYED * SAMPLE_RATE / FRAME:
            return False
        latest = np.array([level for level, _, _ in recent[-window:]])
        return bool(np.percentile(latest, 75) >= np.percentile(before, 90) + NEAR_END_DB)

    def flush(self) -> np.ndarray:
        """What is held short of a frame, as it was captured (before a gap, or at the end)."""
        rest, self._pending = self._pending, np.zeros(0, dtype=np.float32)
        self._next += len(rest) / SAMPLE_RATE
        return rest


def _dbfs(x: np.ndarray) -> float:
    """Level of a frame, floored at -120 dBFS so that digital silence compares as a level."""
    return float(10 * np.log10(np.dot(x, x) / max(len(x), 1) + 1e-12))
