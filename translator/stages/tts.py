"""Speech synthesis: Piper voices, an espeak-ng fallback, and the speaker stage.

Speech is produced one sentence at a time so the first sentence can be played while the rest is
still being synthesised: with Piper the first audio of a short sentence is ready in ~100 ms,
whereas a whole paragraph would take several times that, and nothing is heard before it is done.
"""

from __future__ import annotations

import functools
import io
import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import onnxruntime
import soundfile as sf
from piper import PiperConfig, PiperVoice, SynthesisConfig

from translator import cores
from translator.errors import ModelError
from translator.events import Notice, NoticeLevel, SpeechChunk, SpeechDone, StageFailed, Translation
from translator.models.locate import VoiceFiles, resolve_voice, voice_for_language
from translator.stages.sentences import split_sentences
from translator.text import one_line

ESPEAK = "espeak-ng"
ESPEAK_TIMEOUT = 10.0
"""Seconds one espeak-ng call may take: a sentence needs ~20 ms, so this only catches a hang."""


class Voice(Protocol):
    """What the speaker stage needs from a voice, so Piper, espeak-ng and test fakes are interchangeable."""

    name: str
    language: str
    sample_rate: int

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """float32 mono chunks in [-1, 1], one per sentence, each yielded as soon as it is ready."""
        ...

    def warm_up(self) -> None:
        """Pay the first-call costs now, so the first utterance is as fast as the next ones."""
        ...


@runtime_checkable
class NoticingVoice(Protocol):
    """A voice with something to say about itself as it runs (a remote backend lost or back)."""

    def take_notices(self) -> list[Notice]:
        """The notices since the last call."""
        ...


def _voice_notices(voice: Voice) -> list[Notice]:
    return voice.take_notices() if isinstance(voice, NoticingVoice) else []


FIRST_CHUNK_MIN_WORDS = 10
"""A first sentence this long is spoken in two parts, cut at its first clause break."""

_CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+|(?<=[，；：、])")


def speech_chunks(text: str, language: str = "") -> list[str]:
    """What to synthesise, in order: the sentences, the first one cut at a clause break when long.

    Nothing is heard until the first chunk is synthesised, so a short first chunk is heard sooner
    (a comma is a pause in speech anyway). Later sentences are synthesised while earlier ones play.
    """
    chunks = split_sentences(text, language)
    if chunks and len(chunks[0].split()) >= FIRST_CHUNK_MIN_WORDS:
        first = chunks[0]
        for m in _CLAUSE_BREAK.finditer(first):
            head, tail = first[: m.start()].strip(), first[m.end() :].strip()
            if len(head.split()) >= 3 and len(tail.split()) >= 3:
                chunks[0:1] = [head, tail]
                break
    return chunks


# --- Piper --------------------------------------------------------------------------------------


class PiperSpeakerVoice:
    """A Piper voice (ONNX model + JSON config).

    ``length_scale`` sets the speaking rate: below 1 is faster, above 1 slower; None keeps the
    voice's own setting. The ONNX session runs one thread per usable core (:mod:`translator.cores`),
    not onnxruntime's own choice of one per physical core, which under a CPU quota (a service's
    ``CPUQuota=``, a container) starts threads the quota cannot run.
    """

    def __init__(self, files: VoiceFiles, *, length_scale: float | None = None) -> None:
        self.name = files.name
        self.language = files.language
        self._files = files
        self._piper = _load_piper(files)
        self.sample_rate: int = self._piper.config.sample_rate
        self._config = SynthesisConfig(length_scale=length_scale)

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        # Piper phonemises the whole text up front (fast), then runs the model one sentence per
        # step of its generator; passing chunks straight through keeps that laziness.
        for chunk in self._piper.synthesize(text, self._config):
            yield chunk.audio_float_array

    def warm_up(self) -> None:
        """Also the check that the ONNX file is a Piper voice: any ONNX model loads, few run."""
        try:
            for _ in self.synthesize("OK."):
                pass
        except Exception as e:  # onnxruntime's error classes derive from Exception only
            raise ModelError(
                f"{self._files.model}: the model does not run as a Piper voice ({one_line(e)}); reinstall the voice"
            ) from e


def _load_piper(files: VoiceFiles) -> PiperVoice:
    """Load a voice, turning every failure into a ModelError that names the file at fault."""
    try:
        with open(files.config, encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cores.threads()
        options.inter_op_num_threads = 1
        # What PiperVoice.load does, with session options (it takes none).
        session = onnxruntime.InferenceSession(str(files.model), sess_options=options, providers=["CPUExecutionProvider"])
        return PiperVoice(session=session, config=config)
    except OSError as e:
        raise ModelError(
            f"{e.filename or files.model}: cannot read the Piper voice ({e.strerror or one_line(e)}); check the file"
        ) from e
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        # JSON syntax, missing keys or a wrong shape: Piper reads the config before the model.
        raise ModelError(
            f"{files.config}: invalid Piper voice config ({type(e).__name__}: {one_line(e)}); reinstall the voice"
        ) from e
    except Exception as e:  # onnxruntime's own error classes derive from Exception only
        raise ModelError(f"{files.model}: not a valid Piper ONNX model ({one_line(e)}); reinstall the voice") from e


# --- espeak-ng ----------------------------------------------------------------------------------


@functools.cache
def _espeak_voice_table() -> dict[str, str]:
    """Language code -> espeak-ng voice, from ``espeak-ng --voices`` (empty if it is missing).

    A voice speaks its own code and the codes in its "Other Languages" column with a priority
    (lower is better), e.g. ``cmn ... (zh-cmn 5)(zh 5)`` gives zh -> cmn, ``nb ... (no 5)`` gives
    no -> nb. MBROLA voices are skipped: they need separately installed voice data.
    """
    try:
        listing = subprocess.run([ESPEAK, "--voices"], capture_output=True, check=True, timeout=ESPEAK_TIMEOUT).stdout.decode(
            "utf-8", "replace"
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    best: dict[str, tuple[int, str]] = {}
    for line in listing.splitlines()[1:]:
        fields = line.split(None, 5)
        if len(fields) < 5 or fields[4].startswith("mb/"):
            continue
        voice = fields[1]
        others = re.findall(r"\((\S+) (\d+)\)", fields[5]) if len(fields) > 5 else []
        for code, priority in [(voice, 0)] + [(c, int(p)) for c, p in others]:
            if code not in best or priority < best[code][0]:
                best[code] = (priority, voice)
    return {code: voice for code, (_, voice) in best.items()}


def espeak_voice_for(language: str) -> str | None:
    """The espeak-ng voice that speaks ``language``, or None (also when espeak-ng is missing)."""
    return _espeak_voice_table().get(language.lower())


class EspeakVoice:
    """The robotic but always-available fallback: one ``espeak-ng`` process per sentence.

    A process per sentence (~20 ms each) keeps sentence-by-sentence streaming without a
    long-lived child to babysit. The constructor synthesises a probe word, which both proves the
    voice works and tells the sample rate.
    """

    def __init__(self, language: str, *, timeout: float = ESPEAK_TIMEOUT) -> None:
        espeak_voice = espeak_voice_for(language)
        if espeak_voice is None:
            raise ModelError(f"espeak-ng has no voice for {language!r} (or is not installed: apt install espeak-ng)")
        self.name = f"espeak-ng:{espeak_voice}"
        self.language = language
        self._espeak_voice = espeak_voice
        self._timeout = timeout
        self.sample_rate: int = self._speak("a")[1]

    def _speak(self, sentence: str) -> tuple[np.ndarray, int]:
        try:
            # Text goes through stdin so a sentence starting with "-" is never read as an option.
            proc = subprocess.run(
                [ESPEAK, "-v", self._espeak_voice, "--stdout"],
                input=sentence.encode("utf-8"),
                capture_output=True,
                check=True,
                timeout=self._timeout,
            )
            audio, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
        except subprocess.TimeoutExpired as e:
            raise ModelError(f"espeak-ng took over {self._timeout:g} s for one sentence; check the system load") from e
        except subprocess.CalledProcessError as e:
            stderr = e.stderr.decode("utf-8", "replace") if e.stderr else f"exit code {e.returncode}"
            raise ModelError(f"espeak-ng failed for voice {self._espeak_voice}: {' '.join(stderr.split())}") from e
        except OSError as e:
            raise ModelError(f"cannot run espeak-ng ({e.strerror}); install it with: apt install espeak-ng") from e
        except sf.LibsndfileError as e:
            raise ModelError(f"espeak-ng produced no readable audio for voice {self._espeak_voice} ({one_line(e)})") from e
        return audio.mean(axis=1, dtype=np.float32), rate

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        for sentence in split_sentences(text, self.language):
            audio, _ = self._speak(sentence)
            if audio.size:
                yield audio

    def warm_up(self) -> None:
        for _ in self.synthesize("a"):
            pass


# --- choosing a voice ---------------------------------------------------------------------------

_loaded: dict[str, Voice] = {}
_loaded_lock = threading.Lock()


def _cached(key: str, load: Callable[[], Voice]) -> Voice:
    """Load each voice once per process: conversation mode asks for two languages over and over.

    The lock is held during the load (~0.4 s for Piper) so two threads never load the same
    138 MB model twice.
    """
    with _loaded_lock:
        voice = _loaded.get(key)
        if voice is None:
            voice = _loaded[key] = load()
        return voice


def _piper_voice(files: VoiceFiles) -> Voice:
    return _cached(f"piper:{Path(files.model).resolve()}", lambda: PiperSpeakerVoice(files))


def _text_only(language: str) -> Notice:
    return Notice(
        f"no voice for {language}: text only. Install one with: translator models install piper-{language}",
        time.monotonic(),
        NoticeLevel.WARNING,
    )


def choose_voice(
    language: str,
    *,
    voice: str | None = None,
    allow_fallback: bool = True,
    store: Path | None = None,
) -> tuple[Voice | None, Notice | None]:
    """The voice to speak ``language`` with, and what the user should be told about the choice.

    Order: the explicit ``voice`` (name or .onnx path; a ModelError if it is missing or broken,
    since the user asked for it), the installed Piper voice for the language, espeak-ng, nothing.
    A broken installed Piper voice also raises rather than silently falling back to espeak-ng.
    """
    if voice is not None:
        files = resolve_voice(voice, store=store)
        notice = None
        if files.language != language:
            notice = Notice(f"voice {files.name} speaks {files.language}, not {language}", time.monotonic(), NoticeLevel.WARNING)
        return _piper_voice(files), notice
    installed = voice_for_language(language, store=store)
    if installed is not None:
        return _piper_voice(installed), None
    if allow_fallback:
        try:
            fallback = _cached(f"espeak:{language}", lambda: EspeakVoice(language))
        except ModelError:
            return None, _text_only(language)
        return fallback, Notice(
            f"no Piper voice for {language} installed; speaking with espeak-ng (robotic). "
            f"Install one with: translator models install piper-{language}",
            time.monotonic(),
            NoticeLevel.WARNING,
        )
    return None, _text_only(language)


# --- the stage ----------------------------------------------------------------------------------

VoiceProvider = Callable[[str], "Voice | None | tuple[Voice | None, Notice | None]"]
"""Language -> voice: a bare voice (or None), or a ``(voice, notice)`` pair like :func:`choose_voice`."""

TtsOutput = SpeechChunk | SpeechDone | Notice | StageFailed


class SpeakerStage:
    """Translation in, speech chunks out, one sentence at a time.

    ``voices`` is a :data:`VoiceProvider` (default :func:`choose_voice`) or a mapping from
    language to voice; it is asked once per language and its notice is passed on once. The
    silence an output device needs before speech (``[audio] lead_in``) is the speaker sink's.
    """

    def __init__(self, voices: VoiceProvider | Mapping[str, Voice] = choose_voice) -> None:
        if isinstance(voices, Mapping):
            table = voices
            self._provider: VoiceProvider = lambda lang: (table.get(lang), None if lang in table else _text_only(lang))
        else:
            self._provider = voices
        self._voices: dict[str, Voice | None] = {}

    def _resolve(self, language: str) -> tuple[Voice | None, Notice | None]:
        """The voice for ``language``, plus the provider's notice the first time only."""
        if language in self._voices:
            return self._voices[language], None
        choice = self._provider(language)
        voice, notice = choice if isinstance(choice, tuple) else (choice, None)
        if voice is not None:
            voice.warm_up()
        self._voices[language] = voice
        return voice, notice

    def prepare(self, languages: Iterable[str]) -> list[Notice]:
        """Load and warm up the voices at start-up, before reporting ready.

        Errors (a broken voice file) are raised here so the app fails at start-up naming the
        file; the notices returned are not repeated by :meth:`feed`.
        """
        notices: list[Notice] = []
        for lang in languages:
            voice, notice = self._resolve(lang)
            notices.extend([notice] if notice is not None else [])
            notices.extend(_voice_notices(voice) if voice is not None else [])
        return notices

    def feed(self, t: Translation) -> Iterator[TtsOutput]:
        """Speech for one translation: SpeechChunks as each sentence is ready, then SpeechDone.

        A failing voice costs this utterance only: a StageFailed (or, when the voice cannot be
        loaded, one error Notice for the language) and the SpeechDone that closes it.

        What is not a translation (``t.translated`` False) is silence and no Notice: its own line in
        every front end already says "not translated", and a listener is better served by nothing
        than by the source language read out in the target's voice.
        """
        text = t.text.strip()
        if not text or not t.translated:
            yield SpeechDone(t.utterance_id, t.t_end_wall, time.monotonic(), "")
            return
        try:
            voice, notice = self._resolve(t.target_language)
        except Exception as e:  # noqa: BLE001 - a voice that cannot load silences its language, not the stage
            self._voices[t.target_language] = None
            voice, notice = None, Notice(one_line(e), time.monotonic(), NoticeLevel.ERROR)
        if notice is not None:
            yield notice
        if voice is None:
            yield SpeechDone(t.utterance_id, t.t_end_wall, time.monotonic(), "")
            return

        chunks = self._sentences(voice, text, t.target_language)
        index = 0
        while True:
            # next() outside the yield so only synthesis errors are caught, not the consumer's.
            try:
                sentence, samples = next(chunks)
            except StopIteration:
                break
            except Exception as e:  # noqa: BLE001 - an onnxruntime or espeak failure must not stop the stage
                yield StageFailed(
                    "tts", t.utterance_id, f"speech synthesis with {voice.name} failed: {one_line(e)}", time.monotonic()
                )
                break
            yield from _voice_notices(voice)
            ready = time.monotonic()
            yield SpeechChunk(t.utterance_id, samples, voice.sample_rate, index, sentence, t.t_end_wall, ready, voice.name)
            index += 1
        yield from _voice_notices(voice)
        yield SpeechDone(t.utterance_id, t.t_end_wall, time.monotonic(), voice.name)

    @staticmethod
    def _sentences(voice: Voice, text: str, language: str) -> Iterator[tuple[str, np.ndarray]]:
        """Split here rather than in the voice, so each chunk knows the words it speaks."""
        for chunk in speech_chunks(text, language):
            for samples in voice.synthesize(chunk):
                yield chunk, samples
