"""Is the pipeline healthy? What the service's watchdog decision rests on.

:class:`Health` is a pipeline observer (``pipeline.observe``): it records when voice detection,
each stage and the audio sink last made progress and whether one is inside an item now, without
touching the pipeline's internals. The service asks :meth:`Health.problem` every tick and pings
systemd's watchdog only while there is none.
"""

from __future__ import annotations

import re
import time
from typing import Any


class Probe:
    """When a piece of the pipeline last made progress, and whether it is inside an item now."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.busy_since: float | None = None
        self.progress = time.monotonic()
        self.item: Any = None

    def start(self, item: Any = None) -> None:
        self.item = item
        self.progress = self.busy_since = time.monotonic()

    def step(self) -> None:
        self.progress = time.monotonic()

    def done(self) -> None:
        self.busy_since = None
        self.progress = time.monotonic()

    def stuck_for(self, now: float) -> float:
        """Seconds inside one item with no output, 0 when idle."""
        return now - self.progress if self.busy_since is not None else 0.0


class Health:
    """A pipeline observer: when each part last made progress, and whether it is inside an item.

    ``consumer`` is probed by the service around its own handling of each event: a journal or
    transcript write that blocks is a hang too.
    """

    NAMES = {"vad": "voice detection", "sink": "speaker"}

    def __init__(self) -> None:
        self.parts: dict[str, Probe] = {}
        self.consumer = Probe("event handling")
        self.last_block = time.monotonic()
        """When the last audio block reached voice detection."""
        self.blocks = 0

    def begin(self, part: str, item: Any) -> None:
        probe = self.parts.get(part)
        if probe is None:
            probe = self.parts.setdefault(part, Probe(self.NAMES.get(part, part)))
        if part == "vad":
            self.last_block = time.monotonic()
            self.blocks += 1
        probe.start(getattr(item, "utterance_id", None))

    def step(self, part: str, item: Any, start: float, end: float) -> None:
        self.parts[part].step()

    def end(self, part: str, item: Any) -> None:
        self.parts[part].done()

    def problem(self, now: float, *, stall: float, audio_timeout: float, listening: bool) -> str | None:
        """Why the pipeline is not healthy, or None.

        A part busy with one item for more than ``stall`` seconds without output is stuck; while
        ``listening`` (the microphone is connected and no stop was asked for), so is a microphone
        that delivered no block for ``audio_timeout``. A lost microphone is not a hang: it
        reconnects by itself, and a restart would not bring it back.
        """
        for probe in [*self.parts.values(), self.consumer]:
            if probe.stuck_for(now) > stall:
                item = f" on utterance {probe.item}" if probe.item is not None else ""
                return f"{probe.name} stuck{item} for {probe.stuck_for(now):.0f} s"
        if listening and now - self.last_block > audio_timeout:
            return f"no audio from the microphone for {now - self.last_block:.0f} s"
        return None


def same_problem(a: str | None, b: str | None) -> bool:
    """Whether two :meth:`Health.problem` answers are the same problem (only the seconds grew),
    so the journal says it once, not every tick."""

    def kind(text: str | None) -> str | None:
        return None if text is None else re.sub(r"\d+ s\b", "", text)

    return kind(a) == kind(b)
