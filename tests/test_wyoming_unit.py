"""The Wyoming server's systemd unit: valid, the service unit's sandbox, the network narrowed to loopback."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, skip_or_fail

from translator.serve import install

UNIT = REPO / "translator" / "wyoming" / "translator-wyoming.service"
SERVICE_UNIT = REPO / "translator" / "serve" / "translator.service"
MAX_EXPOSURE = 2.5
"""translator.service's bound: the open (loopback) network must not cost the sandbox more."""
AUDIO_OR_NETWORK = re.compile(
    r"^(PrivateNetwork|IPAddressDeny|IPAddressAllow|RestrictAddressFamilies|DeviceAllow|SupplementaryGroups)="
)


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        skip_or_fail("systemd-analyze not installed (apt-get install systemd)")
    assert tool is not None
    return tool


def _testable(tmp_path: Path) -> Path:
    unit = tmp_path / UNIT.name
    unit.write_text(install.render_unit(UNIT.read_text(), [sys.executable, "-m", "translator.cli"]))
    return unit


def _sandbox(text: str) -> list[str]:
    """The unit's lines after its "# Sandbox" comment, up to [Install]."""
    block = text.split("# Sandbox", 1)[1].split("[Install]", 1)[0]
    return [line for line in block.splitlines()[1:] if line and not line.startswith("#")]


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = _testable(tmp_path)
    r = subprocess.run([_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (r.stdout + r.stderr).splitlines() if UNIT.name in line]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr
    assert "ExecStart=" + sys.executable + " -m translator.cli wyoming --config /etc/translator/config.toml" in unit.read_text()


def test_the_unit_keeps_the_service_sandbox_and_allows_loopback_only(tmp_path: Path) -> None:
    text = UNIT.read_text()
    kept = [line for line in _sandbox(SERVICE_UNIT.read_text()) if not AUDIO_OR_NETWORK.match(line)]
    missing = [line for line in kept if line not in text.splitlines()]
    assert not missing, missing
    for line in (
        "IPAddressDeny=any",
        "IPAddressAllow=localhost",
        "PrivateDevices=yes",
        "Type=notify",
        "RestartPreventExitStatus=78",
    ):
        assert re.search(rf"(?m)^{re.escape(line)}$", text), line
    assert not re.search(r"(?m)^(DeviceAllow|SupplementaryGroups)=", text)  # it opens no audio device
    r = subprocess.run(
        [_analyze(), "security", "--offline=yes", "--no-pager", str(_testable(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(rf"Overall exposure level for {re.escape(UNIT.name)}: ([0-9.]+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert float(m[1]) <= MAX_EXPOSURE, r.stdout


def test_service_install_puts_both_units_in_place() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "translator.cli", "service", "install", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    assert "/etc/systemd/system/translator.service" in r.stdout
    assert "/etc/systemd/system/translator-wyoming.service" in r.stdout
