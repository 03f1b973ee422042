"""``translator run`` (the live terminal app) and ``translator devices`` on real PortAudio.

Each app runs as a subprocess (``python -m translator.cli run``) pointed at the private PulseAudio
server of tests/pulse.py (``env={**os.environ, **pa.env}``): the test speaks corpus recordings into
the virtual microphone, records the null sink's monitor, and reads the ``--transcript`` file, the
``--plain`` output, or (for the TUI) a tmux pane.

Figures (caption update rate and lag, speech-to-speech) are printed with ``-s``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import SPEECH, clip, skip_or_fail
from mtmodels import build_marian
from procs import Watched, read_jsonl
from pulse import SOURCE, PulseServer, Room, needs_pulse

from translator.bench import scoring

REPO = Path(__file__).resolve().parents[1]
EN = "en/LDC93S1.wav"  # "She had your dark suit in greasy wash water all year." (2.9 s)
ES = "es/picovoice_leopard_test_es.wav"
SHORT = "en/uberi_english.wav"  # "one two three"
OTHER = "en/LJ050-0131.wav"  # "unless a system is established for the frequent formal review of ..." (7.7 s)


def _audio(name: str, seconds: float | None = None) -> np.ndarray:
    from translator.audio.files import FileSource

    x = np.concatenate([b.samples for b in FileSource(SPEECH / name)])
    return x if seconds is None else x[: round(seconds * 16000)]


@pytest.fixture(scope="module")
def en() -> np.ndarray:
    return _audio(EN)


@pytest.fixture
def pa(tmp_path: Path) -> Iterator[PulseServer]:
    """The private PulseAudio server for the app subprocesses (this process is not pointed at it)."""
    with PulseServer(tmp_path) as server:
        yield server


class App(Watched):
    """``translator run ... --plain`` as a subprocess: its stdout lines, and its stderr apart."""

    label = "run"

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "translator.cli", "run", *args],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        super().__init__(proc, proc.stdout, proc.stderr)


def wait_records(app: App, path: Path, n: int, timeout: float = 60) -> list[dict]:
    app.wait(f"{n} transcript record(s)", lambda: len(read_jsonl(path)) >= n, timeout)
    return read_jsonl(path)


def wait_record(app: App, path: Path, match: Callable[[dict], object], timeout: float = 60) -> dict:
    """The first transcript record ``match`` accepts (waiting for it)."""
    app.wait("a matching transcript record", lambda: any(match(r) for r in read_jsonl(path)), timeout)
    return next(r for r in read_jsonl(path) if match(r))


def figures(recs: list[dict], label: str) -> None:
    """Print the caption update rate and lag, and speech-to-speech (run pytest with -s to see them)."""
    lags = [x for r in recs for x in r["caption_lags"]]
    speech = sum(r["end"] - r["start"] for r in recs)
    s2s = [r["speech_to_speech"] for r in recs if r["speech_to_speech"] is not None]
    line = f"\n[{label}] {len(recs)} utterance(s), {speech:.1f} s of speech, {len(lags)} captions"
    if speech > 0:
        line += f" ({len(lags) / speech:.2f}/s)"
    if lags:
        line += f"; caption lag median {statistics.median(lags):.2f} s, max {max(lags):.2f} s"
    if s2s:
        line += f"; speech_to_speech {', '.join(f'{x:.2f}' for x in s2s)} s"
    print(line)


def run_args(transcript: Path, *extra: str) -> list[str]:
    return ["--plain", "--transcript", str(transcript), *extra]


# --- devices ------------------------------------------------------------------------------------


@needs_pulse
def test_devices_lists_inputs_and_outputs_with_the_defaults(pa: PulseServer) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "translator.cli", "devices"],
        env={**os.environ, **pa.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.index("inputs:") < out.index("outputs:")
    inputs, outputs = out.split("outputs:")
    for part in (inputs, outputs):
        assert re.search(r"(?m)^  \* default ", part) and re.search(r"(?m)^    pulse ", part), out
    # the mode translator run would use there: a loudspeaker, with the canceller installed
    assert re.search(r"(?m)^duplex on 'default': aec \(full duplex, own speech cancelled .*; audio.duplex = auto\)$", out), out
    half = subprocess.run(
        [sys.executable, "-m", "translator.cli", "devices", "--set", "audio.duplex=half"],
        env={**os.environ, **pa.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert half.returncode == 0 and half.stdout.splitlines()[-1] == (
        "duplex on 'default': half (microphone muted while speaking; audio.duplex = half)"
    ), half.stdout


@needs_pulse
def test_no_input_device_is_one_line_listing_the_devices_exit_2(tmp_path: Path, pa: PulseServer) -> None:
    dead = {**os.environ, **pa.env, "PULSE_SERVER": f"unix:{tmp_path}/nothing-here"}
    r = subprocess.run(
        [sys.executable, "-m", "translator.cli", "run", "--plain"],
        env=dead,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "no audio input device found" in lines[0] and "sound server" in lines[0], lines
    assert "loading models" not in r.stdout, "models were loaded before the device check"

    r = subprocess.run(
        [sys.executable, "-m", "translator.cli", "run", "--input", "usb headset"],
        env={**os.environ, **pa.env},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "'usb headset'" in lines[0] and "'pulse'" in lines[0] and "'default'" in lines[0], lines


# --- live runs ----------------------------------------------------------------------------------


@needs_pulse
def test_run_transcribes_speaks_ignores_itself_and_stops_on_sigterm(tmp_path: Path, pa: PulseServer, en: np.ndarray) -> None:
    transcript = tmp_path / "t.jsonl"
    # half duplex, as where no echo canceller is installed
    app = App(run_args(transcript, "--to", "en", "--asr", "tiny.en", "--set", "audio.duplex=half"), {**os.environ, **pa.env})
    try:
        app.wait_line(r"listening on 'default'", timeout=120)
        assert app.hits(r"ready: auto → en; microphone 'default'; speaking on 'default'; microphone muted while speaking")

        # 1. the recording is heard, transcribed and spoken
        with pa.record_sink() as rec:
            pa.feed(en)
            recs = wait_records(app, transcript, 1)
            # the guard lets the microphone go once the speech has played (and its tail)
            app.wait_line(r"microphone open", after=app.wait_line(r"#1 speaking"), timeout=30)
        first = recs[0]
        assert scoring.wer(clip(EN).transcript, first["source_text"]) <= 0.3, first
        assert first["voice"] == "en_US-joe-medium" and first["speech_to_speech"] is not None, first
        span = rec.voiced_span()
        assert span is not None, "nothing was spoken on the output"
        assert 1.5 <= span[1] - span[0] <= 6.0 and abs((span[1] - span[0]) - first["speech_seconds"]) < 1.0, (span, first)
        assert float(np.sqrt(np.mean(rec.samples**2))) > 1e-3
        assert app.hits(r"#1 caption: ") and app.hits(r"#1 done \(en → en\): asr \d+ ms · mt \d+ ms · speech \d+ ms")
        figures(recs, "live tiny.en")

        # 2. the self-listening guard: what the mic hears while we speak is not transcribed
        pa.feed(en)
        spoke = app.wait_line(r"#2 speaking", timeout=60)
        # Speech is synthesised ("#2 speaking") before it plays: playback waits for audio.turn_gap
        # of silence after the user, and someone who talks on within it keeps the turn (unmuted).
        # So speak once the translation is playing, as someone interrupting it would.
        app.wait_line(r"microphone muted while speaking", after=spoke - 0.5, timeout=5)
        pa.feed(_audio(SHORT, 1.7))  # "one two", well inside the ~3.4 s the guard holds the mic
        opened = app.wait_line(r"microphone open", after=spoke, timeout=30)

        # 3. SIGTERM mid-utterance: it is finished and written, exit 0. The next utterance heard
        # is this one (#3, after the microphone opened), so "one two" made none. A long clip, so
        # SIGTERM comes while it is being said.
        pa.feed(_audio(OTHER))
        app.wait_line(r"#3 speech started", after=opened, timeout=30)
        # still speaking: captions come while the words do. Three words heard first, so the final
        # of what SIGTERM leaves has speech to find: a word or two (0.6 s) was once judged not
        # speech by the final's guards, though a greedy caption had made two words of it.
        app.wait_line(r"#3 caption: \S+\s+\S+\s+\S+", timeout=30)
        code = app.stop(signal.SIGTERM)
        assert code == 0, app.log()
    finally:
        app.close()
    recs = read_jsonl(transcript)
    assert len(recs) == 3 and recs[2]["source_text"] and recs[2]["utterance_id"] == 3, (recs, app.log())
    # "one two" made no utterance of its own: the third one heard began after the microphone
    # opened again. (Its text is not checked for "one"/"two": SIGTERM cuts it after a word or two,
    # and tiny.en may make anything of that, "Can you do the next one?" once.)
    assert app.hits(r"#3 ")[0][0] >= opened, app.log()
    assert app.hits(r"stopping: finishing the utterance in flight")


@needs_pulse
def test_full_duplex_hears_during_speech_and_survives_the_mic_unplugged(tmp_path: Path, pa: PulseServer, en: np.ndarray) -> None:
    transcript = tmp_path / "t.jsonl"
    app = App(run_args(transcript, "--to", "en", "--asr", "tiny.en", "--full-duplex"), {**os.environ, **pa.env})
    try:
        app.wait_line(r"listening on 'default'", timeout=120)
        assert app.hits(r"full duplex \(no self-listening guard\)")
        pa.feed(en)
        spoke = app.wait_line(r"#1 speaking", timeout=60)
        pa.feed(_audio(SHORT, 1.7))  # heard while speaking: no guard
        heard = wait_record(app, transcript, lambda r: re.search(r"\b(one|two|1|2)\b", r["source_text"].lower()))
        first = read_jsonl(transcript)[0]
        assert heard["start"] < first["end"] + first["speech_to_speech"] + first["speech_seconds"] + 1.5, (first, heard)
        assert not app.hits(r"microphone muted", after=spoke)

        # the microphone vanishes (the stream dies) and comes back. The app tries to reopen it
        # 0.5, 1.5, 3.5 ... s after the loss (BACKOFF): plugging it back in halfway between two
        # tries keeps this about coming back; one that races a reopen is the next test's.
        lost_at = time.monotonic()
        pa.remove_source()
        app.wait_line(r"warning: input device 'default' lost .*retrying", after=lost_at, timeout=30)
        time.sleep(2.5)
        pa.add_source()
        try:
            back = app.wait_line(r"input device 'default' back after", after=lost_at, timeout=30)
        except AssertionError as e:
            raise AssertionError(f"{e}\nthe test's microphone: {pa.writer_state()}") from None
        before = len(app.hits(r"speech started"))
        pa.feed(en)
        again = wait_record(app, transcript, lambda r: r["utterance_id"] > before)
        assert scoring.wer(clip(EN).transcript, again["source_text"]) <= 0.3, again
        assert app.hits(r"speech started", after=back)
        assert app.proc.poll() is None
        assert app.stop() == 0
    finally:
        app.close()
    figures(read_jsonl(transcript), "live tiny.en full duplex")


def _loudest(rec_samples: np.ndarray, start: float, end: float) -> float:
    """The loudest 200 ms of a recording between two offsets in seconds, dBFS."""
    x = rec_samples[round(start * 16000) : round(end * 16000)].astype(np.float64)
    n = len(x) // 3200 * 3200
    return float(10 * np.log10(np.max(np.mean(x[:n].reshape(-1, 3200) ** 2, axis=1)) + 1e-20)) if n else -200.0


def _settled(app: App) -> bool:
    """Every utterance begun is finished (done, or dropped)."""
    return len(app.hits(r"#\d+ (done|not speech)")) == len(app.hits(r"speech started")) >= 1


@needs_pulse
def test_aec_in_a_room_keeps_our_voice_out_and_hears_who_talks_over_it(tmp_path: Path, pa: PulseServer, en: np.ndarray) -> None:
    """The default on a loudspeaker (audio.duplex = auto: aec). The null sink comes back into the
    microphone through a simulated room (80 ms more than the path's own ~30 ms, -10 dB, a 50 ms
    reverberation tail, -60 dBFS noise). Someone speaks, the translation (with --to en, the same
    words in Piper's voice) plays, and a second recording starts while it plays: that one is
    transcribed, and no word of our own speech (the echo of either translation) is. The first
    translation, talked over, stops (audio.barge_in = stop)."""
    transcript = tmp_path / "t.jsonl"
    app = App(run_args(transcript, "--to", "en", "--asr", "tiny.en"), {**os.environ, **pa.env})
    other = _audio(OTHER)
    try:
        app.wait_line(r"listening on 'default'", timeout=120)
        assert app.hits(r"ready: .*speaking on 'default'; full duplex, own speech cancelled from the microphone")
        with pa.room(Room(delay=0.08, gain_db=-10.0)), pa.record_sink(device=SOURCE) as mic, pa.record_sink() as out:
            pa.feed(en)
            spoke = app.wait_line(r"#1 speaking", timeout=60)
            time.sleep(1.0)  # the translation is playing (no turn gap in aec)
            overlap = time.monotonic()
            pa.feed(other)
            stopped = app.wait_line(r"#1: translation stopped: #\d+ is talking over it", timeout=30)
            wait_record(app, transcript, lambda r: r["utterance_id"] > 1, timeout=90)
            next_speech = app.wait_line(r"#\d+ speaking", after=stopped, timeout=60)
            # both translations play out, into the room: nothing more may be heard
            app.wait("all utterances settled", lambda: _settled(app), timeout=90)
            time.sleep(4.0 + len(other) / 16000)
            app.wait("all utterances settled", lambda: _settled(app), timeout=60)
        assert app.stop() == 0
    finally:
        app.close()
    # the room worked: our translation was loud in the microphone before the other person spoke
    echo = _loudest(mic.samples, spoke - mic.started, overlap - mic.started)
    assert echo > -45.0, f"the room carried no echo ({echo:.1f} dBFS)"
    # barge-in: the translation talked over went quiet (what the device buffered, 0.1 s, aside)
    # until the next one began, and it stays in the transcript
    assert stopped - overlap < 3.0, (overlap, stopped)
    # told from the canceller at the speech start (EchoCanceller.near_end), not at a caption: the
    # notice comes before the talker's first caption
    lines = [line for _, line in app.lines]
    notice = next(i for i, line in enumerate(lines) if re.search(r"#1: translation stopped", line))
    talker = re.search(r"#(\d+) is talking over it", lines[notice]).group(1)  # type: ignore[union-attr]
    captions = [i for i, line in enumerate(lines) if re.search(rf"#{talker} caption:", line)]
    assert not captions or captions[0] > notice, app.log()
    rest_of_it = _loudest(out.samples, stopped + 0.3 - out.started, next_speech - out.started)
    assert rest_of_it < -60.0, f"the stopped translation went on at {rest_of_it:.1f} dBFS"
    recs = read_jsonl(transcript)
    first, rest = recs[0], recs[1:]
    assert scoring.wer(clip(EN).transcript, first["source_text"]) <= 0.3 and first["text"], recs
    # marked as talked over in the record, as is any other the notices name (the other person's
    # "in this regard" may come while the translation of what they said before it plays)
    assert first["interrupted"], recs
    for r in recs:
        assert r["interrupted"] == bool(app.hits(rf"#{r['utterance_id']}: translation stopped")), (r, app.log())
    # the overlapping person's words, once: an echo of either translation would add its words
    heard = " ".join(r["source_text"] for r in rest)
    wer = scoring.wer(clip(OTHER).transcript, heard)
    # tiny.en alone makes ~0.2 of this clip ("there under"); the rest is what the echo's residue
    # costs. An echo heard as words would add them: at most a split word more than were said.
    assert wer <= 0.55, (wer, recs, app.log())
    assert len(heard.split()) <= len(clip(OTHER).transcript.split()) + 2, (heard, app.log())
    assert not any(scoring.wer(clip(EN).transcript, r["source_text"]) <= 0.5 for r in rest), recs
    dropped = app.hits(r"our own speech heard back, dropped")
    print(
        f"\n[aec room] overlap WER {wer:.2f}; {len(dropped)} transcript(s) dropped by the last guard; "
        f"mic echo {echo:.1f} dBFS; barge-in stopped the translation {stopped - overlap:.2f} s after the overlap began"
    )
    figures(recs, "live tiny.en aec room")


@needs_pulse
def test_aec_without_the_canceller_falls_back_to_half_duplex_with_one_notice(
    tmp_path: Path, pa: PulseServer, en: np.ndarray
) -> None:
    """A machine where pywebrtc-audio cannot be imported (no wheel for it): a package of that name
    that fails to import stands first on the path."""
    broken = tmp_path / "site" / "pywebrtc_audio"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise ImportError("no build of WebRTC audio processing for this machine")\n')
    env = {**os.environ, **pa.env, "PYTHONPATH": str(broken.parent)}
    transcript = tmp_path / "t.jsonl"
    app = App(run_args(transcript, "--to", "en", "--asr", "tiny.en", "--set", "audio.duplex=aec"), env)
    try:
        app.wait_line(r"listening on 'default'", timeout=120)
        assert app.hits(r"ready: .*; microphone muted while speaking")
        pa.feed(en)
        wait_records(app, transcript, 1)
        app.wait_line(
            r"microphone open", after=app.wait_line(r"microphone muted while speaking", after=app.wait_line(r"#1 speaking"))
        )
        assert app.stop() == 0
    finally:
        app.close()
    notices = app.hits(r"audio.duplex = aec: the echo canceller is not installed")
    assert len(notices) == 1 and "warning: " in notices[0][1], app.log()


MIC_PROBE = """
import sys
from translator.audio.microphone import MicrophoneSource
mic = MicrophoneSource("", on_status=lambda m: print(m, flush=True))
print("opened", flush=True)
sys.stdin.readline()  # the test unplugs the microphone now: its stream is open, not started
for _ in mic:
    pass
"""


@needs_pulse
def test_a_microphone_gone_between_open_and_start_is_retried(pa: PulseServer) -> None:
    """What a reopen that races the device (the flake of the test above, when the replug met a
    retry) comes down to: the stream opens, then the device fails to start."""
    proc = subprocess.Popen(
        [sys.executable, "-c", MIC_PROBE],
        env={**os.environ, **pa.env},
        cwd=REPO,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    probe = Watched(proc, proc.stdout, proc.stderr)
    try:
        probe.wait_line(r"^opened$", timeout=30)
        pa.remove_source()
        proc.stdin.write("\n")
        proc.stdin.flush()
        probe.wait_line(r"input device 'default' cannot be started .*retrying", timeout=15)
        pa.add_source()
        probe.wait_line(r"listening on 'default'", timeout=30)
    finally:
        probe.close()


@needs_pulse
def test_speaker_unplugged_captions_go_on_the_error_is_shown_once_and_speech_comes_back(
    tmp_path: Path, pa: PulseServer, en: np.ndarray
) -> None:
    transcript = tmp_path / "t.jsonl"
    app = App(run_args(transcript, "--to", "en", "--asr", "tiny.en", "--set", "audio.duplex=half"), {**os.environ, **pa.env})
    try:
        app.wait_line(r"listening on 'default'", timeout=120)
        pa.remove_sink()
        pa.feed(en)
        wait_records(app, transcript, 1)
        app.wait_line(r"warning: audio output 'default' failed", timeout=30)
        pa.feed(en)  # not muted by a speaker that makes no sound
        recs = wait_records(app, transcript, 2)
        assert all(scoring.wer(clip(EN).transcript, r["source_text"]) <= 0.3 for r in recs), recs
        assert app.hits(r"#1 caption: ") and app.hits(r"#2 caption: ")
        assert len(app.hits(r"audio output 'default' failed")) == 1, app.log()
        assert len(app.hits(r"error")) == 0, app.log()

        # a hang would be diagnosed with `kill -USR1`: every thread's stack, and the run goes on
        app.proc.send_signal(signal.SIGUSR1)
        app.wait("the stack dump", lambda: any('File "' in line for line in app.err), timeout=10)
        assert app.proc.poll() is None and any(re.match(r"(Current thread|Thread) 0x", line) for line in app.err)

        pa.add_sink()
        back = app.wait_line(r"audio output 'default' is back", timeout=20)
        with pa.record_sink() as rec:
            pa.feed(en)
            wait_record(app, transcript, lambda r: r["utterance_id"] >= 3)
            # the guard is back with the speaker: it lets the microphone go once the speech has played
            app.wait_line(r"microphone open", after=app.wait_line(r"#3 speaking", after=back), timeout=30)
        assert rec.voiced_span() is not None, "no speech after the output came back"
        assert app.stop() == 0
    finally:
        app.close()


@needs_pulse
def test_conversation_mode_routes_each_language_to_the_other(tmp_path: Path, pa: PulseServer, en: np.ndarray) -> None:
    """Spanish, then English, into one ``--pair en:es`` run. Full duplex: the virtual microphone does
    not hear the sink, and with the guard on, the translation of the Spanish clip's first phrase
    (spoken while the clip goes on) would mute the rest of it, as it would a person talking over it."""
    model = build_marian(tmp_path / "opus-mt-en-es", "en", "es", eos_bias=0.0)
    transcript = tmp_path / "t.jsonl"
    app = App(run_args(transcript, "--pair", "en:es", "--mt-model", str(model.path), "--full-duplex"), {**os.environ, **pa.env})
    try:
        app.wait_line(r"listening on 'default'", timeout=150)
        assert app.hits(r"ready: conversation en ⇄ es")
        pa.feed(_audio(ES))
        pa.wait_fed(30)
        app.wait(  # every utterance begun is finished: none is in flight when the English starts
            "the Spanish clip",
            lambda: (
                any(r["language"] == "es" for r in read_jsonl(transcript))
                and len(app.hits(r"#\d+ (done|not speech)")) == len(app.hits(r"speech started")) >= 1
            ),
            timeout=120,
        )
        pa.feed(en)
        app.wait_line(r"#\d+ speaking \(espeak-ng:es\)", timeout=90)
        # Ctrl-C twice: the first starts a graceful stop (which would let the long espeak-ng speech
        # of the test model's junk Spanish play out), the second exits at once with 130. The
        # English utterance's record, which closes once its speech has been heard (barge-in is on),
        # is written then: what was translated is kept.
        app.proc.send_signal(signal.SIGINT)
        app.wait_line(r"stopping: finishing the utterance in flight", timeout=10)
        app.proc.send_signal(signal.SIGINT)
        assert app.proc.wait(10) == 130  # 128 + SIGINT: it did not wait for the speech (a graceful stop exits 0)
    finally:
        app.close()
    recs = read_jsonl(transcript)
    rest, last = recs[:-1], recs[-1]
    assert rest and all(
        r["language"] == "es"
        and r["target_language"] == "en"
        and r["route"] == "whisper-translate"
        and r["voice"] == "en_US-joe-medium"
        for r in rest
    ), rest
    english = " ".join(r["text"] for r in rest).lower()
    assert re.search(r"sand|grain|white", english), english
    assert last["language"] == "en" and last["target_language"] == "es" and last["route"] == "opus-mt-en-es", last
    assert last["text"] and last["voice"] == "espeak-ng:es", last
    fallback = app.hits(r"no Piper voice for es installed; speaking with espeak-ng")
    assert len(fallback) == 1 and fallback[0][1].split(" ", 1)[1].startswith("warning: "), app.log()
    figures(recs, "conversation base")


# --- the TUI ------------------------------------------------------------------------------------


class Tmux:
    """A private tmux server running one command in a 120x40 pane that stays after it exits."""

    def __init__(self, tmp_path: Path, argv: list[str], cwd: Path) -> None:
        if shutil.which("tmux") is None:
            skip_or_fail("tmux not installed (apt-get install tmux)")
        self.sock = str(tmp_path / "tmux.sock")
        conf = tmp_path / "tmux.conf"
        conf.write_text("set -g remain-on-exit on\n")
        # The exit status through bash, which on Ctrl-C waits for its child and goes on if it exits
        # normally (dash would die at once); tmux's own #{pane_dead_status} is sometimes never set.
        self.rc = tmp_path / "rc"
        script = f"{shlex.join(argv)}; echo $? > {shlex.quote(str(self.rc))}"
        subprocess.run(
            [
                "tmux",
                "-S",
                self.sock,
                "-f",
                str(conf),
                "new-session",
                "-d",
                "-s",
                "live",
                "-x",
                "120",
                "-y",
                "40",
                "-c",
                str(cwd),
                shlex.join(["bash", "-c", script]),
            ],
            check=True,
            timeout=30,
        )

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.sock, *args], capture_output=True, text=True, timeout=10).stdout

    def capture(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "live")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "live", *keys)

    def exit_status(self) -> int | None:
        """The command's exit status once it has exited, else None."""
        text = self.rc.read_text().strip() if self.rc.exists() else ""
        return int(text) if text else None

    def close(self) -> None:
        self._tmux("kill-server")


@needs_pulse
def test_tui_under_tmux_shows_captions_and_translation_push_to_talk_and_q_stops(
    tmp_path: Path, pa: PulseServer, en: np.ndarray
) -> None:
    model = build_marian(tmp_path / "opus-mt-en-es", "en", "es", eos_bias=0.0)
    transcript = tmp_path / "t.jsonl"
    # pytest exports COLUMNS=80/LINES=24, which rich would obey: let the 120x40 pane decide
    argv = [
        "env",
        "-u",
        "COLUMNS",
        "-u",
        "LINES",
        *(f"{k}={v}" for k, v in pa.env.items()),
        "TERM=xterm-256color",
        sys.executable,
        "-m",
        "translator.cli",
        "run",
        "--from",
        "en",
        "--to",
        "es",
        "--asr",
        "tiny.en",
        "--mt-model",
        str(model.path),
        "--ptt",
        "--no-speak",
        "--transcript",
        str(transcript),
    ]
    tmux = Tmux(tmp_path, argv, REPO)
    try:
        deadline = time.monotonic() + 120
        while "microphone off (hold space to talk)" not in (screen := tmux.capture()):
            assert time.monotonic() < deadline and tmux.exit_status() is None, screen
            time.sleep(0.2)
        assert "en → es" in screen and "q/Ctrl-C stop · hold space to talk" in screen, screen

        # push-to-talk: speech without the space bar held is not heard (the first utterance is the
        # one spoken with it held, below)
        pa.feed(en)
        pa.wait_fed(10)

        # hold space (auto-repeat: a space every 50 ms) while speaking; watch the pane
        holding = threading.Event()
        holding.set()

        def hold() -> None:
            while holding.is_set():
                tmux.keys("Space")
                time.sleep(0.05)

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        screens = []
        try:
            deadline = time.monotonic() + 10
            while " TALK " not in (screen := tmux.capture()):  # the key is seen as held: speak
                assert time.monotonic() < deadline, screen
                time.sleep(0.05)
            pa.feed(en)
            deadline = time.monotonic() + 60
            while not read_jsonl(transcript):
                assert time.monotonic() < deadline, screens[-1:]
                screens.append(tmux.capture())
                time.sleep(0.15)
        finally:
            holding.clear()
            holder.join(5)
        first = read_jsonl(transcript)
        record = first[0]
        assert len(first) == 1 and record["utterance_id"] == 1, first  # nothing was heard before the key
        assert scoring.wer(clip(EN).transcript, record["source_text"]) <= 0.3 and record["route"] == "opus-mt-en-es", record
        partial = [s for s in screens if re.search(r"│ (She|she) ", s)]  # the final line starts "│ en She"
        (tmp_path / "screens.txt").write_text("\n=====\n".join(screens))
        assert partial, f"no live caption line was seen before the final text: {tmp_path / 'screens.txt'}"
        words = record["source_text"].split()
        history = r"en→es\s+" + re.escape(" ".join(words[:4]))
        status = r"last #1 en→es: asr \d+ ms · mt \d+ ms"
        deadline = time.monotonic() + 10
        # the record and the status line are drawn at the next ticks (later on a loaded machine)
        while not (re.search(history, screen := tmux.capture()) and re.search(status, screen)):
            assert time.monotonic() < deadline, screen
            time.sleep(0.1)
        assert "→ " + record["text"].split()[0] in screen, screen  # and the translation

        tmux.keys("q")  # as Ctrl-C (a signal, tested in the runs above): finish, then exit 0
        deadline = time.monotonic() + 60
        while (code := tmux.exit_status()) is None:
            assert time.monotonic() < deadline, tmux.capture()
            time.sleep(0.2)
        assert code == 0, tmux.capture()
        assert "stopping: finishing the utterance in flight" in tmux.capture()
    finally:
        tmux.close()
    figures(read_jsonl(transcript), "TUI tiny.en")
