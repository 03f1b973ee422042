"""Settings from a TOML file and ``--set`` overrides, over the defaults of :mod:`translator.config`.

Unknown keys, wrong types and values out of range (each section checks its own in
``__post_init__``) are errors that name the origin and the key, because a typo in a service's
config must not silently fall back to a default or surface later as a crash.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path
from typing import Any

from translator.config import Config
from translator.errors import ConfigError

# TOML spells the reserved word ``from``; the dataclass calls it ``source``.
_ALIASES = {("languages", "from"): "source", ("languages", "to"): "target"}
_TOML_KEYS = {(s, v): k for (s, k), v in _ALIASES.items()}


def _coerce(where: str, value: Any, kind: Any) -> Any:
    """Check a TOML (or --set) value against a field's annotated type."""
    origin = typing.get_origin(kind)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        kind_name = "a list of strings"
        raise ConfigError(f"{where}: expected {kind_name}, got {value!r}")
    raise ConfigError(f"{where}: expected {getattr(kind, '__name__', kind)}, got {value!r}")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def merge(config: Config, data: dict[str, Any], origin: str) -> Config:
    """Return ``config`` updated from a nested dict, naming ``origin`` and the key in errors."""
    sections = _field_types(Config)
    updates: dict[str, Any] = {}
    for section, values in data.items():
        if section not in sections:
            raise ConfigError(f"{origin}: unknown section [{section}]; known: {', '.join(sections)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table of settings")
        cls = sections[section]
        kinds = _field_types(cls)
        changes = {}
        for key, value in values.items():
            name = _ALIASES.get((section, key), key)
            if name not in kinds:
                known = ", ".join(_TOML_KEYS.get((section, k), k) for k in kinds)
                retired = getattr(cls, "retired", {}).get(key)
                hint = f" ({key} was {retired})" if retired else ""
                raise ConfigError(f"{origin}: unknown key {section}.{key}{hint}; known keys in [{section}]: {known}")
            changes[name] = _coerce(f"{origin}: {section}.{key}", value, kinds[name])
        try:
            updates[section] = dataclasses.replace(getattr(config, section), **changes)
        except ValueError as e:  # the section's own check; its message starts with the field name
            field_name, _, rest = str(e).partition(":")
            key = _TOML_KEYS.get((section, field_name), field_name)
            raise ConfigError(f"{origin}: {section}.{key}:{rest}") from None
    return dataclasses.replace(config, **updates)


def load(path: str | Path | None) -> Config:
    """Defaults, updated from ``path`` when given."""
    config = Config()
    if path is None:
        return config
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found; check the path, or write one with: translator config > config.toml"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config file ({e})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    return merge(config, data, str(path))


def parse_override(item: str) -> dict[str, Any]:
    """``section.key=value`` -> nested dict; the value is parsed as TOML, or taken as a string."""
    key, sep, raw = item.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not section or not name:
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set vad.endpoint=0.3")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return {section: {name: value}}


def apply_overrides(config: Config, items: list[str]) -> Config:
    """``--set`` items in order (a later one wins), applied together: a section is checked once
    with all of them, so ``--set vad.pause=0.5 --set vad.endpoint=0.6`` works in either order."""
    data: dict[str, dict[str, Any]] = {}
    for item in items:
        for section, values in parse_override(item).items():
            data.setdefault(section, {}).update(values)
    return merge(config, data, "--set") if data else config


def to_toml(config: Config) -> str:
    """The effective settings as TOML (``translator config``), so users can start from them."""
    lines = []
    for section in dataclasses.fields(config):
        lines.append(f"[{section.name}]")
        values = getattr(config, section.name)
        for f in dataclasses.fields(values):
            value = getattr(values, f.name)
            key = _TOML_KEYS.get((section.name, f.name), f.name)
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, tuple):
                text = "[" + ", ".join(_quote(v) for v in value) + "]"
            elif isinstance(value, str):
                text = _quote(value)
            else:
                text = repr(value)
            lines.append(f"{key} = {text}")
        lines.append("")
    return "\n".join(lines)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
