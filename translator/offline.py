"""The offline guarantee: while translating, nothing may reach the network.

The translator only ever loads models from local paths (:mod:`translator.models.locate`), so no library
has a reason to connect anywhere; :func:`enforce_offline` makes sure none tries anyway (a hub
library asking for an update, a tokenizer fetching a file, telemetry). ``load_engines`` calls it
before loading any model. ``tests/test_offline.py`` runs the whole file pipeline under a socket
guard that fails on any non-loopback connection.

Downloading is ``translator models install``, a separate command that never runs during
translation, and refuses to run while :func:`is_offline` says the switch is on.
"""

from __future__ import annotations

import os
import sys
from typing import Any

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",  # huggingface_hub (faster-whisper imports it): no hub requests at all
    "TRANSFORMERS_OFFLINE": "1",  # transformers (only with the [convert] extra)
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "DO_NOT_TRACK": "1",
}
"""Environment switches honoured by the libraries the translator (or its extras) may import."""


def enforce_offline() -> None:
    """Switch every library we use to offline mode, for this process and its children.

    Idempotent and cheap. Also patches ``huggingface_hub.constants`` when it is already imported,
    because it reads ``HF_HUB_OFFLINE`` only once, at import.
    """
    os.environ.update(OFFLINE_ENV)
    constants: Any = sys.modules.get("huggingface_hub.constants")  # huggingface_hub's, if imported
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
        if hasattr(constants, "HF_HUB_DISABLE_TELEMETRY"):
            constants.HF_HUB_DISABLE_TELEMETRY = True


def is_offline() -> bool:
    """True when :func:`enforce_offline` or the user's environment switched the hub off.

    The environment is read now, not at import: ``HF_HUB_OFFLINE=1 translator models install``
    and a process that called :func:`enforce_offline` both count; so does huggingface_hub's own
    flag when something set it after reading the environment.
    """
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    if flag.strip().upper() in ("1", "ON", "YES", "TRUE"):
        return True
    constants = sys.modules.get("huggingface_hub.constants")
    return bool(constants is not None and constants.HF_HUB_OFFLINE)
