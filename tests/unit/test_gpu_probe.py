"""The GPU probe: the driver's list or ``nvidia-smi -L``, without torch, asked once."""

from __future__ import annotations

import stat
from pathlib import Path

from annotrain.services.system import NvidiaGpuProbe, gpu_text, gpu_usable


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "nvidia-smi"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_a_gpu_listed_by_the_driver_is_found(tmp_path: Path) -> None:
    (tmp_path / "gpus" / "0000:00:1e.0").mkdir(parents=True)
    probe = NvidiaGpuProbe(tmp_path / "gpus", nvidia_smi=_script(tmp_path, "exit 9"))
    assert probe() is True


def test_nvidia_smi_naming_a_gpu_is_enough(tmp_path: Path) -> None:
    smi = _script(tmp_path, 'echo "GPU 0: Tesla T4 (UUID: GPU-1234)"')
    assert NvidiaGpuProbe(tmp_path / "none", nvidia_smi=smi)() is True


def test_no_driver_and_a_failing_or_silent_nvidia_smi_mean_no_gpu(tmp_path: Path) -> None:
    failing = _script(tmp_path, "echo 'NVIDIA-SMI has failed' >&2; exit 9")
    assert NvidiaGpuProbe(tmp_path / "none", nvidia_smi=failing)() is False
    missing = str(tmp_path / "not-installed")
    assert NvidiaGpuProbe(tmp_path / "none", nvidia_smi=missing)() is False


def test_a_hanging_nvidia_smi_times_out_as_no_gpu(tmp_path: Path) -> None:
    smi = _script(tmp_path, "sleep 5")
    assert NvidiaGpuProbe(tmp_path / "none", nvidia_smi=smi, timeout_s=0.2)() is False


def test_the_answer_is_asked_once(tmp_path: Path) -> None:
    gpus = tmp_path / "gpus"
    gpus.mkdir()
    probe = NvidiaGpuProbe(gpus, nvidia_smi=str(tmp_path / "absent"))
    assert probe() is False
    (gpus / "0000:00:1e.0").mkdir()
    assert probe() is False


def test_the_page_says_gpu_resource_available_only_with_use_gpu_on() -> None:
    assert gpu_text(gpu_usable(lambda: True, use_gpu=True)) == "GPU Resource Available"
    assert gpu_text(gpu_usable(lambda: True, use_gpu=False)) == "no GPU"
    assert gpu_text(gpu_usable(lambda: False, use_gpu=True)) == "no GPU"
