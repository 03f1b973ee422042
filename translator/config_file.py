"""Setting a few keys in a TOML config file without losing its comments or its other keys.

The standard library reads TOML but does not write it, and a writer that parses and re-emits the
file would drop every comment of the service's documented config. So the file is edited as text,
for the plain layout translator config files have (``[section]`` headers, one ``key = value`` per
line): a key set in its section has that line replaced; a missing key goes after its commented-out
example (``# key = ...``) when the section has one, else at the end of the section; a missing
section is appended. The result is parsed and checked before anything is written: every value
reads back as set, every other setting is unchanged, and the settings load (``config_load.merge``);
a layout this cannot edit safely (a dotted key, an inline table) is an error naming the keys to set
by hand. The file is replaced in one rename, keeping its mode.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from translator import config as cfg
from translator import config_load
from translator.errors import ConfigError

Updates = dict[str, dict[str, Any]]
"""Section -> key -> value, TOML names (``languages.from``)."""

_HEADER = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")


def toml_value(value: object) -> str:
    """A bool, number or string as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot write {value!r} as a TOML value here")


def _section_span(lines: list[str], section: str) -> tuple[int, int] | None:
    """Indices of the section's header line and of the line after its last line."""
    start = None
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if m is None:
            continue
        if start is not None:
            return start, i
        if m.group(1).strip() == section:
            start = i
    return (start, len(lines)) if start is not None else None


def _set_key(lines: list[str], span: tuple[int, int], key: str, text: str) -> None:
    start, end = span
    assignment = re.compile(rf"^\s*{re.escape(key)}\s*=")
    example = re.compile(rf"^\s*#\s*{re.escape(key)}\s*=")
    for i in range(start + 1, end):
        if assignment.match(lines[i]):
            lines[i] = text
            return
    at = next((i + 1 for i in range(start + 1, end) if example.match(lines[i])), None)
    if at is None:
        at = end
        while at > start + 1 and not lines[at - 1].strip():
            at -= 1  # before the blank lines that separate it from the next section
    lines.insert(at, text)


def updated_text(text: str, updates: Updates) -> str:
    """``text`` with ``updates`` set (see the module docstring for where)."""
    lines = text.splitlines()
    for section, values in updates.items():
        span = _section_span(lines, section)
        if span is None:
            if lines and lines[-1].strip():
                lines.append("")
            lines.append(f"[{section}]")
            span = (len(lines) - 1, len(lines))
        for key, value in values.items():
            _set_key(lines, span, key, f"{key} = {toml_value(value)}")
            span = _section_span(lines, section) or span
    return "\n".join(lines) + "\n"


def _check(where: Path, before: str, after: str, updates: Updates) -> None:
    """The edit did what was asked and nothing else, and the settings load."""
    by_hand = ", ".join(f"{s}.{k} = {toml_value(v)}" for s, vals in updates.items() for k, v in vals.items())
    try:
        old, new = tomllib.loads(before), tomllib.loads(after)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: cannot update this file safely ({e}); set by hand: {by_hand}") from None
    expected = {s: dict(v) if isinstance(v, dict) else v for s, v in old.items()}
    for section, values in updates.items():
        expected.setdefault(section, {}).update(values)
    if new != expected:
        raise ConfigError(f"{where}: cannot update this file's layout safely; set by hand: {by_hand}")
    config_load.merge(cfg.Config(), new, str(where))


def update_file(path: str | Path, updates: Updates) -> bool:
    """Set ``updates`` in the TOML file at ``path`` (created when missing); False when it already
    had them. Raises ConfigError when the file cannot be read, edited safely or written."""
    path = Path(path)
    try:
        before = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the config file ({e})") from None
    after = updated_text(before, updates)
    _check(path, before, after, updates)
    if after == before:
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(after, encoding="utf-8")
        if path.exists():
            tmp.chmod(path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write the config file ({e})") from None
    return True
