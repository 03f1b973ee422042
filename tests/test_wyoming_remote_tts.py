"""``tts.backend``: the speaker stage synthesising through a real ``translator wyoming`` on 127.0.0.1;
and the same server as another pipeline's ``asr.backend``.

The backend is the server a user would run (the bundled joe voice, tiny.en for its asr side); the
local voice standing by is the same bundled voice. A down backend is a
closed port, a slow one a socket that accepts connections and never answers.
"""

from __future__ import annotations

import functools
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soxr
from test_tts import JOE, translation
from test_wyoming import Server, free_port, running, wyoming_cmd
from test_wyoming_remote_asr import assert_right, translate

from translator.bench.scoring import wer
from translator.config import AsrSettings, TtsSettings
from translator.events import SAMPLE_RATE, Notice, NoticeLevel, SpeechChunk, SpeechDone
from translator.models.locate import resolve_voice
from translator.stages.recognizer import WhisperRecognizer
from translator.stages.tts import SpeakerStage, choose_voice
from translator.wyoming import backend as wyoming_backend
from translator.wyoming.remote_tts import remote_voices

SENTENCES = "The quick brown fox jumps over the lazy dog. It was a sunny day."


@pytest.fixture(scope="module")
def backend() -> Iterator[Server]:
    port = free_port()
    # backends in its config (a config shared with a client box) are not the server's: it serves itself
    closed = f"wyoming://127.0.0.1:{free_port()}"
    s = Server(
        wyoming_cmd(f"tcp://127.0.0.1:{port}", "--asr", "tiny.en", f"--set=asr.backend={closed}", f"--set=tts.backend={closed}"),
        port,
    )
    with running(s, r"ready on tcp://", timeout=300):
        yield s


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty model store: the local voice is the bundled joe."""
    return tmp_path_factory.mktemp("store")


def speaker(uri: str, store: Path, timeout: float = 2.0) -> tuple[SpeakerStage, list[Notice]]:
    stage = SpeakerStage(
        remote_voices(functools.partial(choose_voice, store=store), TtsSettings(backend=uri, backend_timeout=timeout))
    )
    return stage, stage.prepare(["en"])


def spoken(stage: SpeakerStage, text: str, uid: int = 1) -> tuple[list[SpeechChunk], list[Notice]]:
    out = list(stage.feed(translation(text, "en", uid)))
    assert isinstance(out[-1], SpeechDone)
    return [e for e in out if isinstance(e, SpeechChunk)], [e for e in out if isinstance(e, Notice)]


def test_each_sentence_is_synthesised_by_the_backend(backend: Server, store: Path) -> None:
    stage, notices = speaker(f"wyoming://127.0.0.1:{backend.port}", store)
    assert notices == []
    chunks, notices = spoken(stage, SENTENCES)
    assert notices == []
    assert [c.text for c in chunks] == ["The quick brown fox jumps over the lazy dog.", "It was a sunny day."]
    assert {c.voice for c in chunks} == {f"wyoming:127.0.0.1:{backend.port}"}
    # the server spoke them (its log line per request), not the local voice under the remote's name
    for sentence in ("The quick brown fox", "It was a sunny day."):
        backend.wait_line(rf"spoke [\d.]+ s with .*{sentence}", timeout=10)
    assert_intelligible(chunks[0], store)


def assert_intelligible(chunk: SpeechChunk, store: Path) -> None:
    """At the local voice's rate (what the sink was opened for), and words Whisper hears back."""
    local, _ = choose_voice("en", store=store)
    assert local is not None and chunk.sample_rate == local.sample_rate
    audio16k = soxr.resample(chunk.samples, chunk.sample_rate, SAMPLE_RATE).astype(np.float32)
    heard = WhisperRecognizer(AsrSettings(model="tiny.en", threads=2)).recognize(audio16k)
    assert heard is not None and wer(chunk.text, heard.text) <= 0.3, heard.text


def test_wyoming_piper_serves_as_the_backend(store: Path, tmp_path: Path) -> None:
    """The real peer from the package registry, offline, with the bundled voice file."""
    port = free_port()
    voice = resolve_voice(JOE, store=store).model
    peer = Server(
        [sys.executable, "-m", "wyoming_piper", "--uri", f"tcp://127.0.0.1:{port}", "--voice", str(voice)]
        + ["--data-dir", str(tmp_path), "--download-dir", str(tmp_path), "--local-files-only"],
        port,
    )
    try:
        peer.wait_line(r"Ready", timeout=120)
        # it loads the voice at its first request (1.5 s here): the timeout is for a loaded box
        stage, notices = speaker(f"wyoming://127.0.0.1:{port}", store, timeout=30.0)
        assert notices == []
        chunks, notices = spoken(stage, SENTENCES)
        assert notices == [] and {c.voice for c in chunks} == {f"wyoming:127.0.0.1:{port}"} and len(chunks) == 2
        assert_intelligible(chunks[0], store)
    finally:
        assert peer.stop() == 0, peer.log(50)


def test_a_down_backend_falls_back_to_the_local_voice_said_once(store: Path) -> None:
    uri = f"wyoming://127.0.0.1:{free_port()}"  # nothing listens there
    stage, notices = speaker(uri, store)
    assert len(notices) == 1 and notices[0].level is NoticeLevel.WARNING
    assert uri in notices[0].message and JOE in notices[0].message
    for uid in (1, 2):
        chunks, later = spoken(stage, SENTENCES, uid)
        assert later == []
        assert len(chunks) == 2 and {c.voice for c in chunks} == {JOE}
        assert all(c.samples.size > 0 for c in chunks)


def test_a_backend_that_never_answers_falls_back_within_the_timeout(store: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections are accepted by the kernel and never answered
        uri = f"wyoming://127.0.0.1:{silent.getsockname()[1]}"
        stage, notices = speaker(uri, store, timeout=0.5)
        assert len(notices) == 1 and uri in notices[0].message and "0.5 s" in notices[0].message
        chunks, later = spoken(stage, "Hello there.")
        assert later == [] and [c.voice for c in chunks] == [JOE]


def test_the_backend_is_used_again_once_it_is_back(backend: Server, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wyoming_backend, "RETRY_AFTER", 0.0)
    connect = socket.create_connection
    refusals = iter([ConnectionRefusedError("Connection refused")])

    def down_once(*args: object, **kwargs: object) -> socket.socket:
        if (refusal := next(refusals, None)) is not None:
            raise refusal  # the backend restarting while the speaker starts
        return connect(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(wyoming_backend.socket, "create_connection", down_once)
    uri = f"wyoming://127.0.0.1:{backend.port}"
    stage, notices = speaker(uri, store)
    assert [n.level for n in notices] == [NoticeLevel.WARNING] and "Connection refused" in notices[0].message
    chunks, notices = spoken(stage, "Hello there.")
    assert [c.voice for c in chunks] == [f"wyoming:127.0.0.1:{backend.port}"]
    assert [n.message for n in notices] == [f"tts backend {uri} is back"]
    chunks, notices = spoken(stage, "Hello again.", 2)
    assert notices == [] and [c.voice for c in chunks] == [f"wyoming:127.0.0.1:{backend.port}"]


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (b'{"type": "audio-chunk", "payload_length": 1000000000}\n', "event data and payload of 1000000000 bytes"),
        (
            b'{"type": "audio-start", "data": {"rate": 22050, "width": 2, "channels": 1}}\n' + b"x" * 20000,
            "event header longer than 16384 bytes",
        ),
        (b"[1, 2]\n", "broke the protocol: event header must be a JSON object"),
        (b'{"type": "error", "data": {"text": "no such voice"}}\n', "refused: no such voice"),
    ],
)
def test_a_backend_that_breaks_the_protocol_is_left_for_the_local_voice(store: Path, answer: bytes, said: str) -> None:
    """Each connection gets ``answer`` and is closed; the client reads no further than the bounds."""
    with socket.socket() as bad:
        bad.bind(("127.0.0.1", 0))
        bad.listen(4)
        bad.settimeout(30)

        def serve() -> None:
            conn, _ = bad.accept()  # only the warm-up word: the backend is then left alone for 30 s
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        stage, notices = speaker(f"wyoming://127.0.0.1:{bad.getsockname()[1]}", store)
        server.join(30)
        assert len(notices) == 1 and said in notices[0].message, notices
        chunks, later = spoken(stage, "Hello there.")
        assert later == [] and [c.voice for c in chunks] == [JOE]


def test_the_server_gives_another_pipeline_its_final_transcripts(backend: Server) -> None:
    """``translator wyoming`` as the ``asr.backend``: it names the transcript's language itself."""
    start, transcripts, notices = translate(f"wyoming://127.0.0.1:{backend.port}")
    assert start == [] and notices == []
    assert_right(transcripts)
    backend.wait_line(r"transcript \(en, [\d.]+ s of audio\): She had your", timeout=10)  # decoded there
    assert not backend.hits(r"backend"), backend.log(20)  # it used no backend of its own
