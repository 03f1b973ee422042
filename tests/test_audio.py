"""Audio files: every corpus clip and format decodes to 16 kHz mono blocks, bad files fail clearly."""

from __future__ import annotations

import math
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SPEECH, clip, load_clips, skip_or_fail

from translator.audio.blocks import FILE_BLOCK_SECONDS
from translator.audio.files import FileSource
from translator.audio.samples import resample
from translator.errors import InputError
from translator.events import SAMPLE_RATE, AudioBlock

SR = SAMPLE_RATE
BLOCK = round(FILE_BLOCK_SECONDS * SR)


def decode(source: FileSource) -> tuple[list[AudioBlock], np.ndarray]:
    blocks = list(source)
    return blocks, np.concatenate([b.samples for b in blocks])


def check_blocks(blocks: list[AudioBlock], block_size: int = BLOCK) -> None:
    """Fixed-size 16 kHz mono float32 blocks in [-1, 1], back to back on the audio clock."""
    assert blocks, "no blocks"
    expected_start = 0.0
    for i, b in enumerate(blocks):
        assert b.samples.dtype == np.float32 and b.samples.ndim == 1
        if i < len(blocks) - 1:
            assert len(b.samples) == block_size
        else:
            assert 0 < len(b.samples) <= block_size
        assert b.start == pytest.approx(expected_start, abs=1e-9)
        assert np.abs(b.samples).max() <= 1.0
        expected_start = b.end
    walls = [b.wall for b in blocks]
    assert walls == sorted(walls)


def best_lag_correlation(x: np.ndarray, ref: np.ndarray, max_lag: int = 64) -> tuple[int, float]:
    """The shift of ``x`` against ``ref`` (within ±max_lag samples) that correlates best, and that correlation."""
    best = (0, -1.0)
    for lag in range(-max_lag, max_lag + 1):
        a = x[max(lag, 0) :]
        b = ref[max(-lag, 0) :]
        n = min(len(a), len(b))
        r = float(np.corrcoef(a[:n], b[:n])[0, 1])
        if r > best[1]:
            best = (lag, r)
    return best


def corpus_clip(name: str) -> np.ndarray:
    samples, sr = sf.read(clip(name).path, dtype="float32")
    assert sr == SR and samples.ndim == 1
    return samples


# --- corpus -------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", load_clips(), ids=lambda c: str(c.path.relative_to(SPEECH)))
def test_every_corpus_clip_decodes_to_16k_mono_of_the_right_length(corpus: Path, c) -> None:
    source = FileSource(c.path)
    assert source.source_rate == c.sample_rate
    assert source.duration == pytest.approx(c.seconds, abs=0.02)
    blocks, audio = decode(source)
    check_blocks(blocks)
    assert len(audio) / SR == pytest.approx(c.seconds, abs=0.02)
    assert source.warning is None
    assert np.sqrt(np.mean(audio**2)) > 0.003, "decoded to near silence"


def test_stereo_24bit_flac_header_facts(corpus: Path) -> None:
    source = FileSource(clip("en/jfk.flac").path)
    assert (source.source_rate, source.channels) == (44100, 2)
    assert source.path == clip("en/jfk.flac").path


@pytest.mark.parametrize(
    "original, sox_copy",
    [
        ("en/jfk.flac", "en/jfk.16k.wav"),
        ("fr/uberi_french.aiff", "fr/uberi_french.16k.wav"),
        ("zh/uberi_chinese.flac", "zh/uberi_chinese.16k.wav"),
    ],
)
def test_streamed_resampling_matches_sox(corpus: Path, original: str, sox_copy: str) -> None:
    _, ours = decode(FileSource(clip(original).path))
    ref = corpus_clip(sox_copy)
    assert abs(len(ours) - len(ref)) <= 2
    lag, r = best_lag_correlation(ours, ref)
    assert abs(lag) <= 2, f"our stream is shifted by {lag} samples against sox"
    assert r > 0.99


def test_block_size_is_configurable(corpus: Path) -> None:
    source = FileSource(clip("en/LDC93S1.wav").path, block_seconds=0.1)
    blocks, audio = decode(source)
    check_blocks(blocks, block_size=1600)
    np.testing.assert_array_equal(audio, np.clip(corpus_clip("en/LDC93S1.wav"), -1, 1))


def test_a_source_can_be_iterated_twice(corpus: Path) -> None:
    source = FileSource(clip("zh/uberi_chinese.flac").path)
    np.testing.assert_array_equal(decode(source)[1], decode(source)[1])


# --- formats ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return corpus_clip("en/LDC93S1.wav")


@pytest.mark.parametrize(
    "name, fmt, subtype",
    [
        ("x.ogg", "OGG", "VORBIS"),
        ("x.mp3", "MP3", "MPEG_LAYER_III"),
        ("x.opus", "OGG", "OPUS"),
        ("x.wav", "WAV", "PCM_U8"),
        ("x.wav", "WAV", "PCM_24"),
        ("x.wav", "WAV", "PCM_32"),
        ("x.aiff", "AIFF", "PCM_16"),
        ("x.flac", "FLAC", "PCM_16"),
    ],
)
def test_formats_decode_to_the_right_duration(tmp_path: Path, speech: np.ndarray, name: str, fmt: str, subtype: str) -> None:
    path = tmp_path / name
    rate = 48000 if subtype == "OPUS" else 44100
    sf.write(path, resample(speech, SR, rate), rate, format=fmt, subtype=subtype)
    blocks, audio = decode(FileSource(path))
    check_blocks(blocks)
    assert len(audio) / SR == pytest.approx(len(speech) / SR, abs=0.02)
    _, r = best_lag_correlation(audio, speech, max_lag=400)
    assert r > 0.9


def test_8khz_six_channel_wav_is_downmixed_by_averaging(tmp_path: Path, speech: np.ndarray) -> None:
    path = tmp_path / "surround.wav"
    narrow = resample(speech, SR, 8000)
    gains = np.array([1.0, 0.5, 0.25, 0.0, 0.5, 0.75], dtype=np.float32)  # mean 0.5
    sf.write(path, narrow[:, None] * gains, 8000, subtype="PCM_16")
    source = FileSource(path)
    assert (source.source_rate, source.channels) == (8000, 6)
    _, audio = decode(source)
    assert len(audio) / SR == pytest.approx(len(speech) / SR, abs=0.02)
    expected = 0.5 * resample(narrow, 8000, SR)
    n = min(len(audio), len(expected))
    np.testing.assert_allclose(audio[:n], expected[:n], atol=2e-3)


def test_float_wav_beyond_full_scale_is_clipped(tmp_path: Path, speech: np.ndarray) -> None:
    path = tmp_path / "loud.wav"
    loud = speech * (4.0 / np.abs(speech).max())
    loud[100] = np.nan
    sf.write(path, loud, SR, subtype="FLOAT")
    _, audio = decode(FileSource(path))
    assert len(audio) == len(speech)
    assert np.isfinite(audio).all()
    assert audio.max() == 1.0 and audio.min() == -1.0
    np.testing.assert_array_equal(audio, np.clip(np.nan_to_num(loud), -1, 1))


def test_m4a_falls_back_to_pyav(tmp_path: Path, speech: np.ndarray) -> None:
    try:
        import av
    except ImportError:
        skip_or_fail("PyAV is not installed (pip install 'offline-speech-translator[av]')")
    path = tmp_path / "phone.m4a"
    rate = 44100
    stereo = np.ascontiguousarray(np.stack([resample(speech, SR, rate)] * 2))
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate, layout="stereo")
        for i in range(0, stereo.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, i : i + 1024]), format="fltp", layout="stereo")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(sf.LibsndfileError):
        sf.info(path)
    source = FileSource(path)
    assert (source.source_rate, source.channels) == (rate, 2)
    blocks, audio = decode(source)
    check_blocks(blocks)
    assert len(audio) / SR == pytest.approx(len(speech) / SR, abs=0.05)  # AAC pads up to a frame
    _, r = best_lag_correlation(audio, speech, max_lag=800)
    assert r > 0.9


def test_long_file_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    rate, minutes = 48000, 20
    t = np.arange(rate * 60) / rate
    rng = np.random.default_rng(0)
    minute = np.stack(
        [0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t)), 0.3 * np.sin(2 * np.pi * 660 * t)], axis=1
    )
    minute_i16 = (minute * 32767).astype(np.int16)
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", rate, 2, subtype="PCM_16") as f:
        for _ in range(minutes):
            f.write(minute_i16)
    decoded_mb = minutes * 60 * SR * 4 / 1e6  # 76.8 MB even after downmixing and resampling

    tracemalloc.start()
    try:
        source = FileSource(path)
        count = samples = 0
        last_end = 0.0
        for block in source:
            count += 1
            samples += len(block.samples)
            last_end = block.end
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert source.duration == minutes * 60
    assert samples == minutes * 60 * SR
    assert count == math.ceil(samples / BLOCK)
    assert last_end == pytest.approx(minutes * 60)
    assert source.warning is None
    assert peak / 1e6 < 20 < decoded_mb, f"peak {peak / 1e6:.1f} MB while decoding"


# --- bad files ----------------------------------------------------------------------------------


def open_error(path: Path) -> str:
    with pytest.raises(InputError) as err:
        FileSource(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    assert open_error(tmp_path / "talk.wav") == f"{tmp_path / 'talk.wav'}: file not found"
    assert "file not found" in open_error(tmp_path / "no-such-dir" / "talk.wav")


def test_directory(tmp_path: Path) -> None:
    assert "is a directory" in open_error(tmp_path)


def test_path_through_a_regular_file_fails_even_as_root(tmp_path: Path) -> None:
    # chmod 000 does not stop root, but no one can open a file "inside" a regular file.
    (tmp_path / "notes.txt").write_text("hello")
    assert "Not a directory" in open_error(tmp_path / "notes.txt" / "talk.wav")


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    assert "not a regular file" in open_error(fifo)


def test_text_file_renamed_wav(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_text("this is not audio\n" * 100)
    message = open_error(path)
    assert "not a readable audio file (" in message and "convert it to WAV/FLAC/OGG/MP3" in message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"")
    assert "no audio in file" in open_error(path)


def test_zero_length_wav(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    assert sf.info(path).frames == 0
    assert open_error(path) == f"{path}: no audio in file (0 samples); check the recording"


def test_wav_cut_off_after_its_header(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(clip("en/LDC93S1.wav").path.read_bytes()[:44])
    assert "no audio could be decoded (the file is damaged or cut off)" in open_error(path)


def test_truncated_wav_yields_what_is_there_and_warns(tmp_path: Path, speech: np.ndarray) -> None:
    data = clip("en/LDC93S1.wav").path.read_bytes()
    path = tmp_path / "cut.wav"
    kept_frames = 20800
    path.write_bytes(data[: 44 + 2 * kept_frames + 1])  # the header is 44 bytes; keep a stray odd byte
    source = FileSource(path)
    assert source.duration == pytest.approx(len(speech) / SR, abs=0.01)
    blocks, audio = decode(source)
    check_blocks(blocks)
    np.testing.assert_array_equal(audio, speech[:kept_frames])
    assert source.warning is not None and source.warning.startswith("truncated after 1.3 s of 2.9 s")


def test_flac_broken_mid_stream_yields_the_decodable_part(tmp_path: Path) -> None:
    original = clip("en/jfk.flac").path
    path = tmp_path / "cut.flac"
    path.write_bytes(original.read_bytes()[: original.stat().st_size // 2])
    source = FileSource(path)
    assert source.duration == pytest.approx(11.0)
    blocks, audio = decode(source)
    check_blocks(blocks)
    assert 4.0 < len(audio) / SR < 7.0
    assert source.warning is not None and source.warning.startswith("truncated after")
    _, full = decode(FileSource(original))
    # Up to the last few ms (the resampler's tail sees the cut), it is the same audio.
    n = len(audio) - 200
    np.testing.assert_allclose(audio[:n], full[:n], atol=1e-5)


def test_file_that_breaks_before_any_audio(tmp_path: Path) -> None:
    original = clip("en/jfk.flac").path.read_bytes()
    path = tmp_path / "garbled.flac"
    # Keep the header (STREAMINFO and metadata), garble every audio frame.
    header_end = original.find(b"\xff\xf8")
    assert header_end > 0
    garbage = np.random.default_rng(1).integers(0, 256, len(original) - header_end, dtype=np.uint8).tobytes()
    path.write_bytes(original[:header_end] + garbage.replace(b"\xff", b"\x00"))
    message = open_error(path)
    assert "not a readable audio file" in message or "no audio could be decoded" in message
