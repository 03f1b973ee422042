"""The handle service: a ``transcript`` in -> ``handled`` with its translation.

Home Assistant calls a conversation agent with what its speech-to-text step heard; as one, the
translator answers with the translation, which the pipeline's text-to-speech step then speaks:
any speech-to-text -> translator -> any text-to-speech in the target language.
"""

from __future__ import annotations

import asyncio
import logging

from wyoming.asr import Transcript
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled

from translator.errors import TranslatorError
from translator.wyoming.engine import LocalEngine
from translator.wyoming.protocol import Send

log = logging.getLogger("translator.wyoming")


class HandleHandler:
    def __init__(self, engine: LocalEngine, send: Send, peer: str) -> None:
        self.engine = engine
        self.send = send
        self.peer = peer

    async def transcript(self, event: Event) -> None:
        transcript = Transcript.from_event(event)
        try:
            translation = await asyncio.to_thread(self.engine.translate, transcript.text, transcript.language)
        except TranslatorError as e:
            log.info("%s: not handled: %s", self.peer, e)
            await self.send(NotHandled(text=str(e), context=transcript.context).event())
            return
        if translation is not None and not translation.translated:
            reason = f"not translated into {translation.target_language}: the result still read as {translation.source_language}"
            log.info("%s: %s", self.peer, reason)
            await self.send(NotHandled(text=reason, context=transcript.context).event())
            return
        text = translation.text if translation is not None else ""
        log.info("%s: handled (%s): %s", self.peer, translation.route if translation else "empty", text)
        await self.send(Handled(text=text, context=transcript.context).event())
