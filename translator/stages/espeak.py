"""The espeak-ng voice: robotic, but installed everywhere and speaking about a hundred languages,
so the translator always has something to say when no Piper voice speaks the language."""

from __future__ import annotations

import functools
import io
import re
import subprocess
from collections.abc import Iterator

import numpy as np
import soundfile as sf

from translator.errors import ModelError
from translator.stages.sentences import split_sentences
from translator.text import one_line

ESPEAK = "espeak-ng"
ESPEAK_TIMEOUT = 10.0
"""Seconds one espeak-ng call may take: a sentence needs ~20 ms, so this only catches a hang."""
ESPEAK_WPM = 175
"""espeak-ng's own speaking rate (words per minute), which ``pace`` multiplies."""


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

    def _speak(self, sentence: str, pace: float = 1.0) -> tuple[np.ndarray, int]:
        rate = [] if pace == 1.0 else ["-s", str(round(ESPEAK_WPM * pace))]
        try:
            # Text goes through stdin so a sentence starting with "-" is never read as an option.
            proc = subprocess.run(
                [ESPEAK, "-v", self._espeak_voice, *rate, "--stdout"],
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
        return self.synthesize_at(text, 1.0)

    def synthesize_at(self, text: str, pace: float) -> Iterator[np.ndarray]:
        for sentence in split_sentences(text, self.language):
            audio, _ = self._speak(sentence, pace)
            if audio.size:
                yield audio

    def warm_up(self) -> None:
        for _ in self.synthesize("a"):
            pass
