"""The installed package behaves like the checkout: build a wheel, install it (with the bundled
model packages) into a clean virtual environment, and run the commands a new user runs first.

The catalog, the systemd unit and the example config are package data; before they were, a wheel
install failed ``models list`` and ``service install --dry-run``. Slow (a fresh venv installs every
dependency from the package registry, cached by pip after the first run), so it runs once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from conftest import REPO, SPEECH

GERMAN = "Guten Morgen. Wo ist der Bahnhof? Ich möchte eine Fahrkarte nach Berlin kaufen."
"""The README's quick start speaks this with espeak-ng."""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a fresh venv holding only the wheel and what it depends on."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    # A copy of the tracked files only: a build from the work tree must not pick up caches or
    # egg-info, and must not write into the checkout.
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, src / name)
    dist = root / "dist"
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(src)], timeout=600)
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bin_dir = env_dir / "bin"
    run([str(bin_dir / "python"), "-m", "pip", "install", "-q", f"{wheels[0]}[models]"], timeout=1500)
    return bin_dir


def run(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    assert r.returncode == 0, f"{cmd[:4]} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


def user_env(tmp: Path, bin_dir: Path) -> dict[str, str]:
    """A user with no checkout: own data dir, the venv first on PATH, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRANSLATOR_CATALOG", "TRANSLATOR_MODELS")}
    env.update(PATH=f"{bin_dir}:{env.get('PATH', '')}", XDG_DATA_HOME=str(tmp / "data"), HOME=str(tmp), COLUMNS="200")
    return env


def test_wheel_install_runs_the_first_commands(installed: Path, tmp_path: Path) -> None:
    env = user_env(tmp_path, installed)
    translator = str(installed / "translator")
    where = run(
        [str(installed / "python"), "-c", "import translator; print(translator.__file__)"], timeout=60, env=env, cwd=tmp_path
    )
    assert "site-packages" in where and str(REPO) not in where, where

    listing = run([translator, "models", "list"], timeout=120, env=env, cwd=tmp_path)
    assert "faster-whisper-tiny.en" in listing and "en_US-joe-medium" in listing, listing

    unit = run([translator, "service", "install", "--dry-run"], timeout=120, env=env, cwd=tmp_path)
    assert "/etc/systemd/system/translator.service" in unit and "/etc/translator/config.toml" in unit, unit

    german = tmp_path / "de.wav"
    subprocess.run(["espeak-ng", "-v", "de", "-s", "150", "-w", str(german), GERMAN], check=True, timeout=60)
    out = run(
        [
            translator,
            "translate",
            str(german),
            "--from",
            "de",
            "--to",
            "en",
            "-o",
            str(tmp_path / "de.en.wav"),
            "--jsonl",
            str(tmp_path / "de.en.jsonl"),
        ],
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert "de → en" in out, out
    assert (tmp_path / "de.en.wav").stat().st_size > 10_000
    assert "Berlin" in (tmp_path / "de.en.jsonl").read_text(encoding="utf-8")

    run(
        [
            translator,
            "bench",
            "--asr",
            "tiny.en",
            "--corpus",
            str(SPEECH.parent),
            "--clips",
            "en/jfk*",
            "--json",
            str(tmp_path / "bench.json"),
        ],
        timeout=900,
        env=env,
        cwd=tmp_path,
    )
    report = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    assert [c["file"] for c in report["clips"]] == ["en/jfk.flac"], report["clips"]
    assert "fellow americans" in report["clips"][0]["hypothesis"].lower()
    assert report["summary"]["latency"]["speech_to_speech"]["n"] >= 1
