"""Config: defaults, TOML file, --set overrides, and errors that name the key."""

from __future__ import annotations

import pytest

from translator import config as cfg
from translator import config_load
from translator.errors import ConfigError


def test_defaults_round_trip_through_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(config_load.to_toml(cfg.Config()))
    assert config_load.load(path) == cfg.Config()


def test_file_values_and_from_alias(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[languages]\nfrom = "de"\nto = "es"\n[vad]\nendpoint = 1\n[mt]\nmodels = ["/m/a"]\n')
    c = config_load.load(path)
    assert (c.languages.source, c.languages.target) == ("de", "es")
    assert c.vad.endpoint == 1.0 and isinstance(c.vad.endpoint, float)
    assert c.mt.models == ("/m/a",)
    assert c.vad.pause == cfg.VadSettings().pause


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[vad]\nendpont = 0.3\n", "vad.endpont"),
        ('[vad]\nendpoint = "fast"\n', "vad.endpoint"),
        ("[asr]\nthreads = 1.5\n", "asr.threads"),
        ("[tts]\nenabled = 1\n", "tts.enabled"),
        ("[nope]\nx = 1\n", "[nope]"),
        ("[vad\n", "invalid TOML"),
        ("[mt]\nmodels = [1]\n", "mt.models"),
    ],
)
def test_errors_name_the_key(tmp_path, text, needle):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config_load.load(path)
    assert needle in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config_load.load(tmp_path / "absent.toml")


def test_overrides_parse_toml_values_or_strings():
    c = config_load.apply_overrides(cfg.Config(), ["vad.endpoint=0.3", "asr.model=tiny.en", "tts.enabled=false"])
    assert c.vad.endpoint == 0.3 and c.asr.model == "tiny.en" and c.tts.enabled is False
    with pytest.raises(ConfigError, match="section.key=value"):
        config_load.apply_overrides(c, ["endpoint=0.3"])
    with pytest.raises(ConfigError, match="asr.modle"):
        config_load.apply_overrides(c, ["asr.modle=x"])


def test_unknown_language_key_lists_the_toml_names(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[languages]\nform = "de"\n')
    with pytest.raises(ConfigError, match=r"known keys in \[languages\]: from, to, pair, allowed, switch_evidence$"):
        config_load.load(path)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[vad]\nendpoint = 0.05\n", "vad.endpoint: must be >= pause (0.1 s), got 0.05"),
        ("[vad]\npause = 0.5\n", "vad.endpoint: must be >= pause (0.5 s), got 0.4"),
        ("[vad]\nthreshold = 1.5\n", "vad.threshold: must be between 0 and 1"),
        ("[vad]\nneg_threshold = 0.7\n", "vad.neg_threshold:"),
        ("[asr]\nbeam_size = 0\n", "asr.beam_size: must be at least 1"),
        ('[asr]\ncompute_type = "int3"\n', "asr.compute_type:"),
        ("[asr]\nwindow_margin = 31.0\n", "asr.window_margin:"),
        ('[asr]\nmodel = " "\n', "asr.model:"),
        ("[mt]\nthreads = -1\n", "mt.threads:"),
        ("[audio]\nturn_gap = -0.5\n", "audio.turn_gap:"),
        ('[wyoming]\nuri = "http://127.0.0.1:80"\n', "wyoming.uri: give tcp://HOST:PORT, unix://PATH or stdio://"),
        ("[wyoming]\nidle_timeout = 0\n", "wyoming.idle_timeout:"),
        ("[wyoming]\nmax_payload = 10\n", "wyoming.max_payload:"),
        ('[tts]\nbackend = "tcp://127.0.0.1:10200"\n', "tts.backend: must be wyoming://HOST:PORT, or empty"),
        ('[tts]\nbackend = "wyoming://box"\n', "tts.backend: must be wyoming://HOST:PORT"),
        ('[tts]\nbackend = "wyoming://box:0"\n', "tts.backend: must be wyoming://HOST:PORT"),
        ("[tts]\nbackend_timeout = 0\n", "tts.backend_timeout: must be > 0 s"),
        ('[asr]\nbackend = "tcp://127.0.0.1:10300"\n', "asr.backend: must be wyoming://HOST:PORT, or empty"),
        ("[asr]\nbackend_timeout = -1\n", "asr.backend_timeout: must be > 0 s"),
    ],
)
def test_each_section_checks_its_values_and_errors_name_the_key(tmp_path, text, needle):
    """A section's own check (``__post_init__``) comes out as ``ORIGIN: section.key: message``,
    the form the service finds the line of."""
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config_load.load(path)
    assert str(err.value).startswith(f"{path}: {needle}"), str(err.value)
    assert "\n" not in str(err.value)


def test_settings_check_themselves_when_built_in_code():
    with pytest.raises(ValueError, match=r"^endpoint: "):
        cfg.VadSettings(pause=0.5, endpoint=0.4)
    with pytest.raises(ValueError, match=r"^min_window: "):
        cfg.AsrSettings(min_window=-1.0)
    assert cfg.AsrSettings(window_margin=-1.0).window_margin == -1.0  # negative = the stock window


def test_overrides_are_checked_together_whatever_their_order():
    for items in (["vad.pause=0.5", "vad.endpoint=0.6"], ["vad.endpoint=0.6", "vad.pause=0.5"]):
        c = config_load.apply_overrides(cfg.Config(), items)
        assert (c.vad.pause, c.vad.endpoint) == (0.5, 0.6)
    assert config_load.apply_overrides(cfg.Config(), ["vad.endpoint=0.6", "vad.endpoint=0.7"]).vad.endpoint == 0.7
    with pytest.raises(ConfigError, match=r"^--set: vad\.endpoint: must be >= pause"):
        config_load.apply_overrides(cfg.Config(), ["vad.endpoint=0.05"])


def test_model_fields_are_what_loading_reads():
    base = cfg.AsrSettings()
    assert cfg.AsrSettings(beam_size=5, window_margin=-1.0).model_fields == base.model_fields
    assert cfg.AsrSettings(threads=2).model_fields != base.model_fields


@pytest.mark.parametrize(
    ("uri", "address"),
    [
        ("wyoming://127.0.0.1:10200", ("127.0.0.1", 10200)),
        ("wyoming://[::1]:10200", ("::1", 10200)),
        ("wyoming://pi5.lan:1", ("pi5.lan", 1)),
    ],
)
def test_a_wyoming_backend_is_a_host_and_a_port(uri, address):
    assert cfg.wyoming_address(uri, "backend") == address
    assert cfg.TtsSettings(backend=uri).backend == uri
