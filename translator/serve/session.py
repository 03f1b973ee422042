"""What the service runs besides its main loop: model loading and one live session.

Both run on threads of their own so the main loop (signals, STATUS, the watchdog) never waits on
them: :class:`Task` loads the models for a config (reusing what a reload can keep, see
:func:`load_for`); :class:`Running` is one :class:`~translator.live.LiveSession` with its
:class:`~translator.serve.health.Health` observer and the thread consuming its events.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from translator import config as cfg
from translator.events import Event
from translator.serve.health import Health
from translator.transcript import UtteranceRecord

if TYPE_CHECKING:
    from translator.assemble import Engines
    from translator.live import LiveSession


class Task:
    """A function run on a background thread; ``done`` once it returned or raised."""

    def __init__(self, name: str, fn: Callable[[], Any], wake: Callable[[], None]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._fn, self._wake = fn, wake
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except BaseException as e:  # noqa: BLE001 - handed to the main loop
            self.error = e
        finally:
            self.done.set()
            self._wake()


def _model_settings(config: cfg.Config) -> tuple[Any, ...]:
    """What :func:`~translator.assemble.load_engines` reads: a change here means loading models."""
    return (config.languages, config.asr, config.mt, config.tts, config.models)


def load_for(config: cfg.Config, previous: Engines | None = None) -> tuple[Engines, str]:
    """Engines for ``config``, reusing what ``previous`` (Engines) already holds; and what was done."""
    from translator.assemble import load_engines  # noqa: PLC0415 - heavy: CTranslate2, faster-whisper, Piper

    if previous is None:
        return load_engines(config, speak=True), "loaded"
    if _model_settings(config) == _model_settings(previous.config):
        return dataclasses.replace(previous, config=config), "models unchanged"
    # load_engines keeps the loaded speech model when it is the one the new [asr] and [models]
    # settings name (only decoding knobs changed); it tells by the recognizer it returns.
    engines = load_engines(config, speak=True, recognizer=previous.recognizer)
    if engines.recognizer is previous.recognizer:
        return engines, "speech model kept, translation and voices reloaded"
    return engines, "all models reloaded"


class Running:
    """One LiveSession, its health, and the thread consuming its events.

    ``on_event`` and ``on_record`` run on that thread, ``wake`` after each (see
    :class:`~translator.live.EventThread`); the time ``on_event`` takes is probed like a stage's.
    """

    def __init__(
        self,
        session: LiveSession,
        *,
        on_event: Callable[[Event], None],
        on_record: Callable[[UtteranceRecord], None],
        wake: Callable[[], None],
    ) -> None:
        from translator.live import EventThread  # noqa: PLC0415 - loads the pipeline's modules

        self.session = session
        self.health = Health()
        session.pipeline.observe(self.health)
        self.stop_requested = False
        self._on_event = on_event
        self.events = EventThread(session, on_event=self._probed, on_record=on_record, wake=wake)
        self.done = self.events.done
        self.events.start()

    @property
    def error(self) -> BaseException | None:
        return self.events.error

    def _probed(self, event: Event) -> None:
        self.health.consumer.start()
        try:
            self._on_event(event)
        finally:
            self.health.consumer.done()

    def stop(self) -> None:
        if not self.stop_requested:
            self.stop_requested = True
            self.session.stop()

    def problem(self, now: float, stall: float, audio_timeout: float) -> str | None:
        """Why the pipeline is not healthy, or None (:meth:`Health.problem`)."""
        listening = self.session.microphone.connected and not self.stop_requested
        return self.health.problem(now, stall=stall, audio_timeout=audio_timeout, listening=listening)
