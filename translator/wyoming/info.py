"""The ``info`` answer to ``describe``: what this server offers, built once from the loaded engine.

- **asr**: the speech model (its name as the config gives it), and a ``translate:LANG`` model per
  language a route can reach (the transcript is then the translation);
- **tts**: the installed Piper voices;
- **handle**: ``translate:LANG`` for the configured target (a transcript in, its translation out).
"""

from __future__ import annotations

from wyoming.info import AsrModel, AsrProgram, Attribution, HandleModel, HandleProgram, Info, TtsProgram, TtsVoice

from translator import __version__
from translator.wyoming.engine import TRANSLATE, LocalEngine

NAME = "offline-speech-translator"
ATTRIBUTION = Attribution(name=NAME, url="")
"""Models and voices are the user's own files (no download): no address to credit."""


def build_info(engine: LocalEngine, *, transcript_streaming: bool) -> Info:
    heard = engine.heard
    asr_models = [
        AsrModel(
            name=engine.model_name,
            attribution=ATTRIBUTION,
            installed=True,
            description=f"Whisper {engine.model_name}: the words as spoken",
            version=None,
            languages=heard,
        )
    ] + [
        AsrModel(
            name=TRANSLATE + target,
            attribution=ATTRIBUTION,
            installed=True,
            description=f"Whisper {engine.model_name}, translated into {target}",
            version=None,
            languages=heard,
        )
        for target in engine.targets
    ]
    asr = AsrProgram(
        name=NAME,
        attribution=ATTRIBUTION,
        installed=True,
        description="Offline speech recognition and translation (streaming: the transcript is ready at audio-stop)",
        version=__version__,
        models=asr_models,
        supports_transcript_streaming=transcript_streaming,
    )
    voices = [
        TtsVoice(
            name=v.name,
            attribution=ATTRIBUTION,
            installed=True,
            description=f"Piper {v.name}",
            version=None,
            languages=[v.language],
        )
        for v in engine.voices()
    ]
    tts = TtsProgram(
        name=NAME,
        attribution=ATTRIBUTION,
        installed=True,
        description="Piper voices, sentence by sentence",
        version=__version__,
        voices=voices,
        supports_synthesize_streaming=True,
    )
    target = engine.base.target
    handle = HandleProgram(
        name=NAME,
        attribution=ATTRIBUTION,
        installed=True,
        description=f"Translates what was said into {target}",
        version=__version__,
        models=[
            HandleModel(
                name=TRANSLATE + target,
                attribution=ATTRIBUTION,
                installed=True,
                description=f"translation into {target}",
                version=None,
                languages=heard,
            )
        ],
    )
    return Info(asr=[asr], tts=[tts] if voices else [], handle=[handle])
