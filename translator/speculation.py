"""Speculation: how a stage emits work ahead of its confirmation (the stages' side of the protocol).

A stage may yield an event wrapped in :class:`Provisional` before it knows the event stands (the
recognizer does so at a short pause), and later :class:`Confirm` or :class:`Retract` the key. The
runner (:mod:`translator.pipeline`) holds what follows from a provisional event until it is
confirmed (its bookkeeping, :class:`Decisions`, is here too). Stages import this module, never
the runner.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, eq=False)
class Provisional:
    """An event computed ahead of its confirmation; ``key`` names the speculation."""

    key: Hashable
    event: Any


@dataclass(frozen=True)
class Confirm:
    """The speculation ``key`` stands: release what it produced."""

    key: Hashable


@dataclass(frozen=True)
class Retract:
    """The speculation ``key`` is void: drop what it produced and stop working on it."""

    key: Hashable


PENDING, CONFIRMED, RETRACTED = "pending", "confirmed", "retracted"
KEEP_DECISIONS = 1024
"""Decisions remembered per run: speculations are decided within an utterance, so a few suffice."""


class Decisions:
    """What became of each speculation, in the order a thread learned it (one per thread, plus a
    shared one the stages read to stop work on a retracted speculation early)."""

    def __init__(self) -> None:
        self._state: OrderedDict[Hashable, str] = OrderedDict()
        self._held: dict[Hashable, list[Any]] = {}
        self._lock = threading.Lock()

    def state(self, key: Hashable) -> str:
        with self._lock:
            return self._state.get(key, PENDING)

    def decide(self, decision: Confirm | Retract) -> list[Any]:
        """Record ``decision``; return what was held for its key (to release, or to drop)."""
        with self._lock:
            self._state[decision.key] = CONFIRMED if isinstance(decision, Confirm) else RETRACTED
            while len(self._state) > KEEP_DECISIONS:
                old, _ = self._state.popitem(last=False)
                self._held.pop(old, None)
            return self._held.pop(decision.key, [])

    def admit(self, item: Provisional) -> Any | None:
        """The inner event if its speculation is confirmed; None when it is held or dropped."""
        with self._lock:
            state = self._state.get(item.key, PENDING)
            if state == PENDING:
                self._held.setdefault(item.key, []).append(item.event)
            return item.event if state == CONFIRMED else None
