"""The faster-whisper internals the translator builds on, in one place.

faster-whisper's public API is ``WhisperModel.transcribe`` over a whole file; the streaming
recognizer needs the pieces below it (the language table, the encoder on a short window, language
detection on that encoder output, one decode with our own options, the Silero VAD session). They
are not a stable API, so every use goes through this module and ``pyproject.toml`` bounds the
faster-whisper version CI tests. faster-whisper is imported inside the functions: importing it
costs about a second (CTranslate2, tokenizers, onnxruntime), which commands that never recognise
speech (``translator config``, ``translator models``) should not pay.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

STOCK_WINDOW = 30.0
"""Seconds of audio Whisper's encoder was trained on; longer audio is cut into windows this long."""


@functools.cache
def language_codes() -> frozenset[str]:
    """Every language code Whisper knows."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES  # noqa: PLC0415 - faster-whisper takes a second to import: only on first use

    return frozenset(_LANGUAGE_CODES)


def load(path: str, *, compute_type: str, threads: int) -> WhisperModel:
    """A faster-whisper model from a CTranslate2 directory, on the CPU."""
    from faster_whisper import WhisperModel  # noqa: PLC0415 - faster-whisper takes a second to import: only on first use

    return WhisperModel(path, device="cpu", compute_type=compute_type, cpu_threads=threads)


def is_multilingual(model: WhisperModel) -> bool:
    """False for English-only (``.en``) models."""
    return bool(model.model.is_multilingual)


@functools.cache
def fallback_temperatures() -> tuple[float, ...]:
    """The temperatures ``transcribe`` retries a poor decode at, from its own signature."""
    from faster_whisper import WhisperModel  # noqa: PLC0415 - faster-whisper takes a second to import: only on first use

    return tuple(inspect.signature(WhisperModel.transcribe).parameters["temperature"].default)


@dataclass(frozen=True)
class Encoded:
    """Encoder output for one window (a ctranslate2.StorageView) and the audio seconds it covers."""

    output: Any
    seconds: float


def encode(model: WhisperModel, audio: Any, window: int | None) -> Encoded:
    """Encode at most one stock window of 16 kHz audio, padded with silence to ``window`` samples
    (clipped to the stock window), or to the stock 30 s window when ``window`` is None."""
    from faster_whisper.audio import pad_or_trim  # noqa: PLC0415 - faster-whisper takes a second to import: only on first use

    extract = model.feature_extractor
    if window is None:
        features = pad_or_trim(extract(audio)[:, : len(audio) // extract.hop_length])
    else:
        wanted = min(max(window, len(audio)), extract.nb_max_frames * extract.hop_length)
        features = extract(audio, padding=wanted - len(audio))[:, : wanted // extract.hop_length]
    return Encoded(model.encode(features), features.shape[-1] / extract.nb_max_frames * STOCK_WINDOW)


def detect_language(model: WhisperModel, encoded: Encoded) -> list[tuple[str, float]]:
    """(code, probability) for every language, most likely first."""
    return [(token[2:-2], prob) for token, prob in model.model.detect_language(encoded.output)[0]]


@dataclass(frozen=True)
class Decoded:
    """One decode of one window, and the scores faster-whisper computed for it."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    tokens: int
    window_seconds: float


def decode(
    model: WhisperModel,
    encoded: Encoded,
    *,
    language: str,
    task: str,
    prompt: str | None,
    token_cap: int | None,
    prefix: str | None = None,
    beam_size: int,
    log_prob_threshold: float,
    no_speech_threshold: float,
    compression_ratio_threshold: float,
    temperatures: tuple[float, ...],
) -> Decoded:
    """One decode without timestamps, ``language`` and ``task`` forced, at most ``token_cap`` new
    tokens (None = the model's limit); ``prompt`` is earlier text that conditions the decoder;
    ``prefix`` is the text of the window's first audio, forced as the start of the decode so the
    decoder continues after it (and returns only what follows). With more than one temperature,
    faster-whisper's fallback redoes a poor decode."""
    from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens  # noqa: PLC0415 - faster-whisper takes a second to import: only on first use

    tokenizer, sequence, max_new_tokens = _prompt(model, task, language, prompt, prefix, token_cap)
    options = TranscriptionOptions(
        beam_size=beam_size,
        best_of=5,
        patience=1.0,
        length_penalty=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        log_prob_threshold=log_prob_threshold,
        no_speech_threshold=no_speech_threshold,
        compression_ratio_threshold=compression_ratio_threshold,
        condition_on_previous_text=False,
        prompt_reset_on_temperature=0.5,
        temperatures=list(temperatures),
        initial_prompt=None,
        prefix=None,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        without_timestamps=True,
        max_initial_timestamp=1.0,
        word_timestamps=False,
        prepend_punctuations="",
        append_punctuations="",
        multilingual=False,
        max_new_tokens=max_new_tokens,
        clip_timestamps="0",
        hallucination_silence_threshold=None,
        hotwords=None,
    )
    result, avg_logprob, _temperature, compression_ratio = model.generate_with_fallback(
        encoded.output, sequence, tokenizer, options
    )
    tokens = result.sequences_ids[0]
    if prefix:  # CTranslate2 returns the forced prefix with the rest
        forced = sequence[sequence.index(tokenizer.no_timestamps) + 1 :]
        tokens = tokens[len(forced) :] if tokens[: len(forced)] == forced else tokens
    return Decoded(
        text=tokenizer.decode(tokens).strip(),
        avg_logprob=float(avg_logprob),
        no_speech_prob=float(result.no_speech_prob),
        compression_ratio=float(compression_ratio),
        tokens=len(tokens),
        window_seconds=encoded.seconds,
    )


def decode_both(
    model: WhisperModel, encoded: Encoded, *, language: str, prompt: str | None, token_cap: int | None, beam_size: int
) -> tuple[Decoded, Decoded]:
    """The translate and the transcribe decode of one window in one batched call at temperature 0
    (no fallback), as :func:`decode` would give them one after the other. The two run side by side
    through the decoder, which costs less than two calls (measured with base on a 5 s French
    sentence, beam 5, 2 threads: 1.7-2.4 s against 2.6 s)."""
    import ctranslate2  # noqa: PLC0415 - comes with faster-whisper: only on first use
    from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens  # noqa: PLC0415 - faster-whisper takes a second to import: only on first use

    prompts = [_prompt(model, task, language, prompt, None, token_cap) for task in ("translate", "transcribe")]
    output = np.array(encoded.output)
    results = model.model.generate(
        ctranslate2.StorageView.from_array(np.concatenate([output, output])),
        [sequence for _, sequence, _ in prompts],
        beam_size=beam_size,
        patience=1.0,
        max_length=max(len(sequence) + new for _, sequence, new in prompts),
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(prompts[0][0], [-1]),
    )
    decoded = []
    for (tokenizer, _, _), result in zip(prompts, results, strict=True):
        tokens = result.sequences_ids[0]
        text = tokenizer.decode(tokens).strip()
        decoded.append(
            Decoded(
                text=text,
                # faster-whisper's recovery of the mean log probability from the returned score
                avg_logprob=float(result.scores[0] * len(tokens) / (len(tokens) + 1)),
                no_speech_prob=float(result.no_speech_prob),
                compression_ratio=float(get_compression_ratio(text)),
                tokens=len(tokens),
                window_seconds=encoded.seconds,
            )
        )
    return decoded[0], decoded[1]


def _prompt(
    model: WhisperModel, task: str, language: str, prompt: str | None, prefix: str | None, token_cap: int | None
) -> tuple[Any, list[int], int]:
    """The tokenizer for ``task`` in ``language``, the decoder's prompt, and the new tokens allowed."""
    from faster_whisper.tokenizer import Tokenizer  # noqa: PLC0415 - faster-whisper takes a second to import: only on first use

    tokenizer = Tokenizer(model.hf_tokenizer, is_multilingual(model), task=task, language=language)
    previous = tokenizer.encode(" " + prompt.strip()) if prompt and prompt.strip() else []
    sequence = model.get_prompt(tokenizer, previous, without_timestamps=True, prefix=prefix)
    # CTranslate2 counts a forced prefix's tokens as generated ones: a cap of new tokens would
    # end inside the prefix (and return only part of it), so they are added to it.
    forced = len(sequence) - sequence.index(tokenizer.no_timestamps) - 1
    cap = model.max_length if token_cap is None else token_cap + forced
    return tokenizer, sequence, max(1, min(cap, model.max_length - len(sequence)))


def shortened(model: WhisperModel, decoded: Decoded, text: str) -> Decoded:
    """``decoded`` cut down to ``text`` (a part of it), its token count and compression ratio
    those of the part; the decoder's scores stay those of the whole decode."""
    from faster_whisper.transcribe import get_compression_ratio  # noqa: PLC0415 - faster-whisper takes a second to import: only on first use

    return replace(decoded, text=text, tokens=count_tokens(model, text), compression_ratio=float(get_compression_ratio(text)))


def count_tokens(model: WhisperModel, text: str) -> int:
    """Tokens of ``text`` as the decoder is given it after the task tokens (a forced prefix)."""
    return len(model.hf_tokenizer.encode(" " + text.strip(), add_special_tokens=False).ids)


def vad_model() -> Any:
    """faster-whisper's Silero VAD (v6, one onnxruntime session; loaded once per process): called
    on a whole recording it gives a speech probability per 512-sample frame."""
    from faster_whisper.vad import get_vad_model  # noqa: PLC0415 - faster-whisper takes a second to import: only on first use

    return get_vad_model()


def vad_session() -> Any:
    """The onnxruntime session of :func:`vad_model`: inputs ``input`` (context + frame), ``h`` and
    ``c`` (the recurrent state), outputs (probability, h, c)."""
    return vad_model().session
