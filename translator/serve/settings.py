"""The service's config file, read and checked up front, with the file's line in every error.

A service that starts with a wrong setting must say which line to fix and exit with EX_CONFIG
(the unit's ``RestartPreventExitStatus=78`` then keeps systemd from restart-looping), instead of
failing minutes later while the models load.
"""

from __future__ import annotations

import re
from pathlib import Path

from translator import config as cfg
from translator import config_load, languages
from translator.errors import ConfigError, LanguageError

_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")


def key_line(path: Path, section: str, key: str | None) -> int | None:
    """The line number of ``[section]`` (or of ``key`` in it) in a TOML file, for error messages."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    current = ""
    for n, line in enumerate(lines, 1):
        m = _HEADER.match(line)
        if m:
            current = m[1]
            if key is None and current == section:
                return n
            continue
        if key is not None and current == section and re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return n
    return None


def with_line(error: ConfigError, path: Path) -> ConfigError:
    """Add ``line N`` to a config error about ``path`` that names a key: ``PATH: section.key: ...``,
    ``PATH: unknown key section.key; ...``, ``PATH: unknown section [s]; ...``, ``PATH: [s] must
    be ...``. An error that already names its line (tomllib's "at line N, column M") is kept."""
    message = str(error)
    prefix = f"{path}: "
    if not message.startswith(prefix) or re.search(r"\bline \d", message):
        return error
    rest = message[len(prefix) :]
    m = re.match(r"(?:unknown key )?([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\b", rest)
    n = None
    if m:
        n = key_line(path, m[1], m[2])
    else:
        m = re.match(r"unknown section \[([^\]]+)\]|\[([^\]]+)\] must be", rest)
        if m:
            n = key_line(path, m[1] or m[2], None)
    return ConfigError(f"{path} line {n}: {rest}") if n else error


def read_config(path: str, overrides: list[str]) -> cfg.Config:
    """Load and check the service's config; every problem is a ConfigError naming the key (and the
    line when it can be found), so the service exits with EX_CONFIG instead of restart-looping."""
    p = Path(path)
    try:
        config = config_load.apply_overrides(config_load.load(p), overrides)
    except ConfigError as e:
        raise with_line(e, p) from None
    try:
        languages.from_config(config)
    except (ConfigError, LanguageError) as e:  # "languages.KEY: ...": the file's line for KEY is added
        raise with_line(ConfigError(f"{p}: {e}"), p) from None
    return config


def describe_languages(config: cfg.Config) -> str:
    """What the service translates, for the journal: ``en → es``, ``conversation en ⇄ es``."""
    return languages.from_config(config).describe()
