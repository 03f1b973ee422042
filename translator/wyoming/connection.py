"""One client connection: read events within the bounds, hand each to its service, answer.

Whatever a client does wrong costs only its own connection: a broken frame, an oversized event or
a stretch of ``idle_timeout`` with no event gets an ``error`` event (when the connection still
takes one), one log line, and the connection closed, its pipeline stopped. A well-formed request
that cannot be served (a model not offered, audio in a format not taken, too much audio) gets an
``error`` and the connection goes on (the rest of a refused stream is dropped). Unknown event types are dropped with a log line, as the protocol asks of
servers (newer clients send events older servers do not know, such as ``select-program``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Describe, SelectProgram
from wyoming.ping import Ping, Pong
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from translator.config import WyomingSettings
from translator.text import one_line
from translator.wyoming.asr import AsrHandler
from translator.wyoming.engine import LocalEngine
from translator.wyoming.handle import HandleHandler
from translator.wyoming.protocol import Limits, Malformed, ProtocolError, Refused, read_event, write_error, write_event
from translator.wyoming.tts import TtsHandler

log = logging.getLogger("translator.wyoming")

CLOSE_TIMEOUT = 2.0
"""Seconds to wait for a last ``error`` event to leave before the connection is dropped anyway."""


class Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        engine: LocalEngine,
        settings: WyomingSettings,
        info: Event,
        peer: str,
    ) -> None:
        self.reader, self.writer = reader, writer
        self.settings = settings
        self.limits = Limits(settings.max_header, settings.max_payload)
        self.info = info
        self.peer = peer
        self.asr = AsrHandler(engine, settings, self.send, peer)
        self.tts = TtsHandler(engine, self.send, peer)
        self.handle = HandleHandler(engine, self.send, peer)
        self._routes = {
            Transcribe.is_type: self.asr.transcribe,
            AudioStart.is_type: self.asr.audio_start,
            AudioChunk.is_type: self.asr.audio_chunk,
            AudioStop.is_type: self.asr.audio_stop,
            Synthesize.is_type: self.tts.synthesize,
            SynthesizeStart.is_type: self.tts.start,
            SynthesizeChunk.is_type: self.tts.chunk,
            SynthesizeStop.is_type: self.tts.stop,
            Transcript.is_type: self.handle.transcript,
        }

    async def send(self, event: Event) -> None:
        await write_event(self.writer, event)

    async def run(self) -> None:
        """Serve until the client leaves or breaks the rules; never raises for what a client does."""
        try:
            await self._serve()
        except ProtocolError as e:
            log.warning("%s: %s (%s); closing the connection", self.peer, e, e.code)
            await self._tell(str(e), e.code)
        except TimeoutError:
            what = "mid-utterance" if self.asr.pending else "between requests"
            log.warning("%s: idle for %g s %s; closing the connection", self.peer, self.settings.idle_timeout, what)
            await self._tell(f"no event for {self.settings.idle_timeout:g} s (wyoming.idle_timeout)", "timeout")
        except (ConnectionError, OSError) as e:
            log.warning("%s: connection lost%s: %s", self.peer, " mid-utterance" if self.asr.pending else "", one_line(e))
        except Exception as e:  # a failing model on one request: the server goes on
            log.error("%s: request failed: %s", self.peer, one_line(e), exc_info=True)
            await self._tell(f"request failed: {one_line(e)}", "failed")
        finally:
            await self.asr.close()
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), CLOSE_TIMEOUT)

    async def _serve(self) -> None:
        while True:
            event = await asyncio.wait_for(read_event(self.reader, self.limits), self.settings.idle_timeout)
            if event is None:
                if self.asr.pending:
                    log.warning("%s: disconnected mid-utterance; its stream is dropped", self.peer)
                return
            await self._dispatch(event)

    async def _dispatch(self, event: Event) -> None:
        if Describe.is_type(event.type):
            await self.send(self.info)
        elif Ping.is_type(event.type):
            await self.send(Pong(text=Ping.from_event(event).text).event())
        elif SelectProgram.is_type(event.type):
            pass  # one program per domain here: the selection changes nothing
        else:
            handler = next((h for is_type, h in self._routes.items() if is_type(event.type)), None)
            if handler is None:
                log.info("%s: dropped an event of unknown type %r", self.peer, event.type[:80])
                return
            try:
                await handler(event)
            except Refused as e:  # this request only: the connection goes on
                log.warning("%s: refused: %s (%s)", self.peer, e, e.code)
                await write_error(self.writer, str(e), e.code)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                # from_event on data without its required fields, or of the wrong types
                raise Malformed(f"{event.type} event with bad data ({type(e).__name__}: {one_line(e, 200)})") from None

    async def _tell(self, text: str, code: str) -> None:
        """A last ``error`` event, if the connection still takes one."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(write_error(self.writer, text, code), CLOSE_TIMEOUT)
