"""``asr.backend``: a pipeline's final transcripts from a real Wyoming asr server on 127.0.0.1.

The backend is wyoming-faster-whisper from the package registry, run offline on the installed
tiny.en as its README says; the local model standing by is tiny.en too. A down backend is a closed
port, a slow one a socket that accepts and never answers, a broken one a socket that answers the
start-up request and then sends what is no Wyoming event.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import SPEECH, clip
from test_wyoming import Server, free_port, running

from translator.assemble import build_pipeline, load_engines
from translator.audio.files import FileSource
from translator.audio.sources import with_trailing_silence
from translator.bench.scoring import wer
from translator.config import AsrSettings, Config, LanguageSettings
from translator.events import Notice, NoticeLevel, Transcript
from translator.models.locate import resolve_asr
from translator.stages.recognizer import WhisperRecognizer
from translator.wyoming import backend as wyoming_backend
from translator.wyoming.remote_asr import RemoteRecognizer, WyomingAsrClient

CLIP = "en/LDC93S1.wav"
"""2.9 s, one sentence: one utterance, one request to the backend."""


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Iterator[Server]:
    port = free_port()
    data = tmp_path_factory.mktemp("wfw")
    s = Server(
        [sys.executable, "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{port}"]
        + ["--model", str(resolve_asr("tiny.en")), "--data-dir", str(data), "--local-files-only"]
        + ["--compute-type", "int8", "--cpu-threads", "1", "--language", "en"],
        port,
        env={"HF_HUB_OFFLINE": "1"},
    )
    with running(s, r"Ready", timeout=120):
        yield s


LOADED = 60.0
"""The backend timeout where the backend is meant to answer: these tests share the box with others,
and the peer's 30 s window on one thread took over 3 s (the setting's default) under load."""


def translate(uri: str, timeout: float = LOADED, name: str = CLIP) -> tuple[list[Notice], list[Transcript], list[Notice]]:
    """The notices of start-up, then the transcripts and notices of one run over a corpus clip."""
    config = Config(
        languages=LanguageSettings(source="en", target="en"),
        asr=AsrSettings(model="tiny.en", threads=1, backend=uri, backend_timeout=timeout),
    )
    engines = load_engines(config, speak=False)
    events = list(build_pipeline(engines, captions=False).run(with_trailing_silence(FileSource(SPEECH / name), 1.0)))
    return (
        engines.notices,
        [e for e in events if isinstance(e, Transcript)],
        [e for e in events if isinstance(e, Notice)],
    )


def assert_right(transcripts: list[Transcript], name: str = CLIP) -> None:
    text = " ".join(t.text for t in transcripts)
    assert wer(clip(name).transcript, text) <= 0.25, text
    assert {t.language for t in transcripts} == {"en"}


def test_wyoming_faster_whisper_gives_the_final_transcripts(peer: Server) -> None:
    before = time.monotonic()
    start, transcripts, notices = translate(f"wyoming://127.0.0.1:{peer.port}")
    assert start == [] and notices == []
    assert_right(transcripts)
    # the peer decoded it (it logs each transcript), not the local model under the backend's name
    peer.wait_line(r"greasy wash", timeout=10, after=before)


def test_a_down_backend_falls_back_to_the_local_model_said_once() -> None:
    uri = f"wyoming://127.0.0.1:{free_port()}"  # nothing listens there
    start, transcripts, notices = translate(uri)
    assert len(start) == 1 and start[0].level is NoticeLevel.WARNING
    assert uri in start[0].message and "local model tiny.en" in start[0].message
    assert notices == []  # said once: the run's utterances are recognised locally without a word more
    assert_right(transcripts)


def test_a_backend_that_never_answers_falls_back_within_the_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections are accepted by the kernel and never answered
        uri = f"wyoming://127.0.0.1:{silent.getsockname()[1]}"
        start, transcripts, notices = translate(uri, timeout=0.5)
    assert len(start) == 1 and "no whole answer within 0.5 s" in start[0].message
    assert notices == []
    assert_right(transcripts)


def test_a_backend_that_breaks_the_protocol_mid_run_is_said_by_the_stage() -> None:
    """The start-up request is answered right, the utterance's with no Wyoming event: the notice
    comes out of the pipeline, and the utterance is recognised locally all the same."""
    answers = [b'{"type": "transcript", "data": {"text": ""}}\n', b"[1, 2]\n"]
    with socket.socket() as bad:
        bad.bind(("127.0.0.1", 0))
        bad.listen(4)
        bad.settimeout(60)

        def serve() -> None:
            for answer in answers:
                conn, _ = bad.accept()
                with conn:
                    conn.settimeout(10)
                    heard = b""
                    while b"audio-stop" not in heard:
                        heard += conn.recv(1 << 20)
                    conn.sendall(answer)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        start, transcripts, notices = translate(f"wyoming://127.0.0.1:{bad.getsockname()[1]}")
        server.join(30)
    assert start == []
    assert len(notices) == 1 and "broke the protocol: event header must be a JSON object" in notices[0].message, notices
    assert_right(transcripts)


def clip_audio(name: str) -> np.ndarray:
    return np.concatenate([block.samples for block in FileSource(SPEECH / name)])


def test_captions_stay_with_the_local_model() -> None:
    """A caption (``retry`` False) is never sent: a backend that is down is not even noticed."""
    local = WhisperRecognizer(AsrSettings(model="tiny.en", threads=1))
    remote = RemoteRecognizer(WyomingAsrClient(f"wyoming://127.0.0.1:{free_port()}", 3.0), local)
    caption = remote.recognize(clip_audio(CLIP), language="en", retry=False)
    assert caption is not None and "greasy" in caption.text.lower()
    assert remote.take_notices() == []


def test_whisper_s_translate_task_runs_on_the_local_model_said_once(peer: Server) -> None:
    """The peer transcribes only: the route's translate task (de -> en, no text model) is local."""
    local = WhisperRecognizer(AsrSettings(model="base", threads=1))
    remote = RemoteRecognizer(WyomingAsrClient(f"wyoming://127.0.0.1:{peer.port}", 30.0), local)
    audio = clip_audio("de/picovoice_leopard_test_de.wav")
    for turn in range(2):
        recognition = remote.recognize(audio, language="de", task=lambda language: "translate")
        assert recognition is not None and recognition.task == "translate" and recognition.language == "de"
        # Whisper's English, and the words as spoken that only the local translate task decodes beside it
        assert "portal" in recognition.text.lower() and "Leichenhalle" in recognition.original, recognition
        notices = remote.take_notices()
        if turn == 0:
            assert len(notices) == 1 and "transcribes only" in notices[0].message and "de" in notices[0].message
        else:
            assert notices == []


def test_the_backend_is_used_again_once_it_is_back(peer: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wyoming_backend, "RETRY_AFTER", 0.0)
    connect = socket.create_connection
    refusals = iter([ConnectionRefusedError("Connection refused")])

    def down_once(*args: object, **kwargs: object) -> socket.socket:
        if (refusal := next(refusals, None)) is not None:
            raise refusal  # the backend restarting while the recognizer warms up
        return connect(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(wyoming_backend.socket, "create_connection", down_once)
    uri = f"wyoming://127.0.0.1:{peer.port}"
    before = time.monotonic()
    start, transcripts, notices = translate(uri)
    assert [n.level for n in start] == [NoticeLevel.WARNING] and "Connection refused" in start[0].message
    assert [n.message for n in notices] == [f"asr backend {uri} is back"]
    assert_right(transcripts)
    peer.wait_line(r"greasy wash", timeout=10, after=before)  # the peer decoded this run's utterance
