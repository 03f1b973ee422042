"""Usable cores from a cgroup CPU quota (v1 and v2) and the affinity: fake cgroup trees."""

from __future__ import annotations

import os
from pathlib import Path

from translator import cores


def _tree(tmp_path: Path, files: dict[str, str], proc: str) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    proc_cgroup = tmp_path / "proc-self-cgroup"
    proc_cgroup.write_text(proc)
    return root, proc_cgroup


def test_v2_quota_is_the_tightest_on_the_way_to_the_root(tmp_path: Path) -> None:
    root, proc = _tree(
        tmp_path,
        {"cpu.max": "max 100000", "box/cpu.max": "150000 100000", "box/app/cpu.max": "max 100000"},
        "0::/box/app\n",
    )
    assert cores.quota(root, proc) == 1.5


def test_v1_quota_reads_the_cpu_controller(tmp_path: Path) -> None:
    root, proc = _tree(
        tmp_path,
        {
            "cpu/cpu.cfs_quota_us": "-1",
            "cpu/cpu.cfs_period_us": "100000",
            "cpu/budget/cpu.cfs_quota_us": "4000",
            "cpu/budget/cpu.cfs_period_us": "10000",
        },
        "4:memory:/x\n1:cpu:/budget\n0::/\n",
    )
    assert cores.quota(root, proc) == 0.4


def test_no_quota_means_the_affinity(tmp_path: Path) -> None:
    root, proc = _tree(tmp_path, {"cpu.max": "max 100000"}, "0::/\n")
    assert cores.quota(root, proc) is None
    assert cores.usable(root, proc) == len(os.sched_getaffinity(0))
    missing = tmp_path / "none"
    assert cores.quota(missing, missing) is None  # not Linux, or no cgroup file system


def test_threads_never_exceed_the_budget() -> None:
    assert cores.threads(cores=0.4) == 1  # a Raspberry Pi 4's share of this machine: one thread
    assert cores.threads(cores=1.5) == 1  # a second thread would only wait on the quota
    assert cores.threads(cores=4.0) == 4
    assert cores.threads(3, cores=0.4) == 3  # an explicit setting wins
