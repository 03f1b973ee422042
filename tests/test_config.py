"""Config: defaults, TOML file, --set overrides, and errors that name the key."""

from __future__ import annotations

import pytest

from translator import config as cfg
from translator.errors import ConfigError


def test_defaults_round_trip_through_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml(cfg.Config()))
    assert cfg.load(path) == cfg.Config()


def test_file_values_and_from_alias(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[languages]\nfrom = "de"\nto = "es"\n[vad]\nendpoint = 1\n[mt]\nmodels = ["/m/a"]\n')
    c = cfg.load(path)
    assert (c.languages.source, c.languages.target) == ("de", "es")
    assert c.vad.endpoint == 1.0 and isinstance(c.vad.endpoint, float)
    assert c.mt.models == ("/m/a",)
    assert c.vad.pause == cfg.VadSettings().pause


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[vad]\nendpont = 0.3\n', "vad.endpont"),
        ('[vad]\nendpoint = "fast"\n', "vad.endpoint"),
        ('[asr]\nthreads = 1.5\n', "asr.threads"),
        ('[tts]\nenabled = 1\n', "tts.enabled"),
        ('[nope]\nx = 1\n', "[nope]"),
        ('[vad\n', "invalid TOML"),
        ('[mt]\nmodels = [1]\n', "mt.models"),
    ],
)
def test_errors_name_the_key(tmp_path, text, needle):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        cfg.load(path)
    assert needle in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        cfg.load(tmp_path / "absent.toml")


def test_overrides_parse_toml_values_or_strings():
    c = cfg.apply_overrides(cfg.Config(), ["vad.endpoint=0.3", "asr.model=tiny.en", "tts.enabled=false"])
    assert c.vad.endpoint == 0.3 and c.asr.model == "tiny.en" and c.tts.enabled is False
    with pytest.raises(ConfigError, match="section.key=value"):
        cfg.apply_overrides(c, ["endpoint=0.3"])
    with pytest.raises(ConfigError, match="asr.modle"):
        cfg.apply_overrides(c, ["asr.modle=x"])


def test_unknown_language_key_lists_the_toml_names(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[languages]\nform = "de"\n')
    with pytest.raises(ConfigError, match=r"known keys in \[languages\]: from, to, pair$"):
        cfg.load(path)
