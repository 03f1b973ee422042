"""How many CPU cores this process may really use: its affinity and its cgroup's CPU quota.

``os.cpu_count()`` counts the machine, not what the process is given: a service under systemd's
``CPUQuota=``, a container, or a benchmark under a cgroup quota sees every core but may use a
fraction of them, and CTranslate2 asked for all of them then runs threads that wait on each other.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _ratio(quota: str | None, period: str | None) -> float | None:
    """Cores a quota grants; None when unlimited or unreadable."""
    try:
        q, p = int(quota or ""), int(period or "")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _tightest(base: Path, group: str, limit_at: Callable[[Path], float | None]) -> float | None:
    """The smallest limit from the process's cgroup folder up to ``base`` (a parent's quota binds
    its children too)."""
    limits = []
    path = base / group.lstrip("/")
    while True:
        limit = limit_at(path)
        if limit is not None:
            limits.append(limit)
        if path == base or base not in path.parents:
            break
        path = path.parent
    return min(limits) if limits else None


def _v2_at(path: Path) -> float | None:
    """``cpu.max``: "QUOTA PERIOD", or "max PERIOD" for none."""
    parts = (_read(path / "cpu.max") or "").split()
    return _ratio(parts[0], parts[1]) if len(parts) == 2 and parts[0] != "max" else None


def _v1_at(path: Path) -> float | None:
    """``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (a quota of -1 is none)."""
    return _ratio(_read(path / "cpu.cfs_quota_us"), _read(path / "cpu.cfs_period_us"))


def _v1_limit(root: Path, controllers: str, group: str) -> float | None:
    """The v1 cpu controller's quota, wherever the controller is mounted."""
    for mount in (controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu"):
        if (root / mount).is_dir():
            return _tightest(root / mount, group, _v1_at)
    return None


def quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """Cores the process's cgroup CPU quota grants (e.g. 0.4), or None when there is none."""
    text = _read(proc_cgroup)
    if not text:
        return None
    limits = []
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, group = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            limit = _tightest(root, group, _v2_at)
        elif "cpu" in controllers.split(","):
            limit = _v1_limit(root, controllers, group)
        else:
            continue
        if limit is not None:
            limits.append(limit)
    return min(limits) if limits else None


def usable(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float:
    """Cores this process may use: its affinity, capped by its cgroup quota."""
    cores = float(_affinity())
    limit = quota(root, proc_cgroup)
    return min(cores, limit) if limit is not None else cores


def threads(setting: int = 0, *, cores: float | None = None) -> int:
    """Threads for a compute library: ``setting`` when set, else one per usable core, rounded
    down (a thread more than the quota allows only waits), and at least one."""
    if setting > 0:
        return setting
    return max(1, math.floor((usable() if cores is None else cores) + 1e-9))
