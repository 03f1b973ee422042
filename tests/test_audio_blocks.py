"""Blocks and what is built from them: cutting, pacing, silence, sample conversion and the sinks."""

from __future__ import annotations

import time
import wave
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import clip

from translator.audio.blocks import FILE_BLOCK_SECONDS, LIVE_BLOCK_SECONDS, Blocker, block_size
from translator.audio.files import FileSource
from translator.audio.samples import StreamResampler, resample, to_mono_float32
from translator.audio.sinks import MemorySink, WavSink
from translator.audio.sources import PacedSource, silence_source, with_trailing_silence
from translator.errors import OutputError
from translator.events import SAMPLE_RATE

SR = SAMPLE_RATE
BLOCK = round(FILE_BLOCK_SECONDS * SR)


# --- cutting into blocks ------------------------------------------------------------------------


def test_blocker_cuts_pieces_of_any_length_on_the_audio_clock() -> None:
    size = block_size(LIVE_BLOCK_SECONDS)
    assert size == 2048  # four 512-sample VAD frames
    x = np.arange(5000, dtype=np.float32)
    blocker = Blocker(size)
    out = [b for piece, wall in ((x[:700], 1.0), (x[700:4500], 2.0), (x[4500:], 3.0)) for b in blocker.add(piece, wall)]
    assert [(b.start * SR, len(b.samples), b.wall) for b in out] == [(0, size, 2.0), (size, size, 2.0)]
    (rest,) = blocker.flush(4.0)
    assert (rest.start * SR, len(rest.samples), rest.wall) == (2 * size, 5000 - 2 * size, 4.0)
    np.testing.assert_array_equal(np.concatenate([b.samples for b in [*out, rest]]), x)
    assert list(blocker.flush()) == []
    blocker.skip(300)  # audio that never came: the next block starts after it
    (after,) = blocker.add(np.zeros(size, np.float32))
    assert after.start * SR == 5000 + 300
    with pytest.raises(ValueError):
        block_size(0)


def test_stream_resampler_has_no_edges_between_pieces() -> None:
    x = tone(300, 1.0, 44100)
    to_16k = StreamResampler(44100)
    pieces = [to_16k(x[i : i + 1000]) for i in range(0, len(x), 1000)]
    streamed = np.concatenate([*pieces, to_16k.tail()])
    assert len(streamed) == SR
    np.testing.assert_allclose(streamed, resample(x, 44100, SR), atol=1e-3)
    same = StreamResampler(SR)
    assert same(x) is x and len(same.tail()) == 0


# --- pacing and silence -------------------------------------------------------------------------


def test_paced_source_releases_blocks_on_the_clock(corpus: Path) -> None:
    blocks = list(FileSource(clip("zh/firered_IT0011W0001.wav").path))  # 1.99 s
    speed = 10.0
    started = time.monotonic()
    paced = list(PacedSource(blocks, speed=speed))
    assert len(paced) == len(blocks)
    for original, out in zip(blocks, paced, strict=True):
        assert out.samples is original.samples and out.start == original.start
        assert out.wall >= started + out.end / speed
    walls = [b.wall for b in paced]
    assert walls == sorted(walls)


def test_paced_source_rejects_a_non_positive_speed() -> None:
    with pytest.raises(ValueError):
        PacedSource([], speed=0)


def test_silence_source_is_exact_and_contiguous() -> None:
    blocks = list(silence_source(1.0, start=2.5))
    check_blocks_from = blocks[0].start
    assert check_blocks_from == 2.5
    assert sum(len(b.samples) for b in blocks) == SR
    assert all(len(b.samples) == BLOCK for b in blocks[:-1])
    for a, b in pairwise(blocks):
        assert b.start == pytest.approx(a.end, abs=1e-9)
    assert not any(b.samples.any() for b in blocks)


def test_trailing_silence_continues_the_audio_clock(corpus: Path) -> None:
    source = FileSource(clip("zh/uberi_chinese.16k.wav").path)
    blocks = list(with_trailing_silence(source, 0.8))
    speech_blocks = list(source)
    assert len(blocks) > len(speech_blocks)
    for a, b in pairwise(blocks):
        assert b.start == pytest.approx(a.end, abs=1e-9)
    assert blocks[-1].end == pytest.approx(speech_blocks[-1].end + 0.8, abs=1 / SR)
    assert not any(b.samples.any() for b in blocks[len(speech_blocks) :])


def test_trailing_silence_after_nothing_starts_at_zero() -> None:
    blocks = list(with_trailing_silence([], 0.5))
    assert blocks[0].start == 0.0 and blocks[-1].end == pytest.approx(0.5)


# --- sinks --------------------------------------------------------------------------------------


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate)).astype(np.float32)


def dominant_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


def test_wav_sink_round_trip_resamples_other_rates(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    with WavSink(path, SR) as sink:
        sink.write(tone(440, 1.0, 22050), 22050)
        sink.write(tone(1000, 0.5, SR), SR)
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype, info.format) == (SR, 1, "PCM_16", "WAV")
    audio, _ = sf.read(path, dtype="float32")
    assert len(audio) == SR + SR // 2
    assert dominant_frequency(audio[:SR], SR) == pytest.approx(440, abs=2)
    assert np.abs(audio[2000:14000]).max() == pytest.approx(0.5, abs=0.01)
    np.testing.assert_allclose(audio[SR:], tone(1000, 0.5, SR), atol=1 / 32768)


def test_wav_sink_file_is_complete_after_every_write(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    sink = WavSink(path, 22050)
    sink.write(tone(300, 0.5, 22050), 22050)
    with wave.open(str(path)) as w:  # a strict reader: trusts the header, does not repair it
        assert w.getnframes() == 11025
    sink.write(tone(300, 0.25, 22050), 22050)
    with wave.open(str(path)) as w:
        assert w.getnframes() == 11025 + 5512
    sink.close()
    sink.close()  # idempotent


def test_wav_sink_closes_on_error(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    with pytest.raises(RuntimeError, match="later step"), WavSink(path, SR) as sink:
        sink.write(tone(440, 0.25, SR), SR)
        raise RuntimeError("a later step failed")
    assert sf.info(path).frames == SR // 4


def test_wav_sink_in_missing_folder_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "out.wav"
    with pytest.raises(OutputError) as err:
        WavSink(path, SR)
    assert str(path) in str(err.value) and "No such file or directory" in str(err.value)


def test_memory_sink_collects_at_one_rate() -> None:
    sink = MemorySink()
    sink.write(tone(440, 0.5, 22050), 22050)
    sink.write(np.full((100, 2), 16384, dtype=np.int16), 22050)
    sink.write(tone(440, 0.5, SR), SR)
    sink.close()
    assert sink.sample_rate == 22050 and sink.closed
    assert len(sink.audio) == 11025 + 100 + 11025
    np.testing.assert_allclose(sink.audio[11025:11125], 0.5)
    assert MemorySink(SR).audio.shape == (0,)


# --- helpers ------------------------------------------------------------------------------------


def test_to_mono_float32_scales_integers_and_averages_channels() -> None:
    stereo = np.array([[32767, -32768], [16384, 16384], [0, -16384]], dtype=np.int16)
    np.testing.assert_allclose(to_mono_float32(stereo), [-0.5 / 32768, 0.5, -0.25])
    np.testing.assert_allclose(to_mono_float32(np.array([0, 128, 255], dtype=np.uint8)), [-1.0, 0.0, 127 / 128])
    np.testing.assert_allclose(to_mono_float32(np.array([2**31 - 1, -(2**31)], dtype=np.int32)), [1.0, -1.0])
    floats = np.array([0.5, np.nan, np.inf, -3.0], dtype=np.float64)
    out = to_mono_float32(floats)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [0.5, 0.0, 1.0, -1.0])
    assert np.isnan(floats[1]), "the caller's array was modified"
    with pytest.raises(ValueError):
        to_mono_float32(np.zeros((2, 2, 2)))


def test_resample_lengths_and_passthrough() -> None:
    x = tone(200, 1.0, 44100)
    assert len(resample(x, 44100, SR)) == SR
    assert resample(x, 44100, 44100) is x
    assert resample(np.zeros((882, 2), np.float32), 44100, 22050).shape == (441, 2)
