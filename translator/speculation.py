"""Speculation: how a stage emits work ahead of its confirmation (the stages' side of the protocol).

A stage may yield an event wrapped in :class:`Provisional` before it knows the event stands (the
recognizer does so at a short pause), and later :class:`Confirm` or :class:`Retract` the key. The
runner (:mod:`translator.pipeline`) holds what follows from a provisional event until it is
confirmed. Stages import this module, never the runner.
"""

from __future__ import annotations

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
