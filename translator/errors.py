"""User-facing errors.

Every problem a user can cause or fix (a bad file, a missing model, a wrong option) is raised as a
subclass of :class:`TranslatorError`. The CLI turns these into a one-line message and an exit
code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno


class TranslatorError(Exception):
    """Base of every error that is the user's to fix; ``str(err)`` is the one-line message."""

    exit_code = 2


class InputError(TranslatorError):
    """An input file is missing, unreadable, corrupt, truncated or empty."""


class ModelError(TranslatorError):
    """A model is missing, incomplete or corrupt."""


class LanguageError(TranslatorError):
    """An unknown language code, or a pair no installed model can translate."""


class ConfigError(TranslatorError):
    """A config file or option is invalid; names the key (EX_CONFIG for services)."""

    exit_code = 78


class DeviceError(TranslatorError):
    """An audio device is missing or failed."""


class OutputError(TranslatorError):
    """An output file cannot be written."""


EXIT_CONFIG = ConfigError.exit_code
"""sysexits.h EX_CONFIG: the service unit has ``RestartPreventExitStatus=78``."""


def is_disk_full(error: OSError) -> bool:
    """The device or the user's quota is full, or the file hit its size limit."""
    return error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
