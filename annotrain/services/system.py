"""What the system page says: version, mode, GPU, license.

The GPU is looked for without torch (the API process never imports it): the
NVIDIA driver lists its GPUs under ``/proc/driver/nvidia/gpus``, and
``nvidia-smi -L`` lists those it can use; either one seeing a GPU is enough. The
answer is cached per probe, and the probe is injectable (``create_app(gpu_probe=…)``)
so tests decide it.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

GPU_AVAILABLE = "GPU Resource Available"
NO_GPU = "no GPU"
#: How long ``nvidia-smi -L`` may take before the answer is no.
NVIDIA_SMI_TIMEOUT_S = 5.0

GpuProbe = Callable[[], bool]


class NvidiaGpuProbe:
    """Whether this machine has a usable NVIDIA GPU; asked once, then remembered.

    Args:
        proc_dir: Where the driver lists its GPUs.
        nvidia_smi: The ``nvidia-smi`` command (None: found on PATH when asked).
        timeout_s: How long ``nvidia-smi`` may take.
    """

    def __init__(
        self,
        proc_dir: Path = Path("/proc/driver/nvidia/gpus"),
        nvidia_smi: str | None = None,
        timeout_s: float = NVIDIA_SMI_TIMEOUT_S,
    ) -> None:
        self._proc_dir = proc_dir
        self._nvidia_smi = nvidia_smi
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._answer: bool | None = None

    def __call__(self) -> bool:
        """True when the driver lists a GPU or ``nvidia-smi -L`` names one."""
        with self._lock:
            if self._answer is None:
                self._answer = self._look()
            return self._answer

    def _driver_lists_one(self) -> bool:
        try:
            return any(self._proc_dir.iterdir())
        except OSError:  # no driver loaded here; nvidia-smi may still see one (containers)
            return False

    def _look(self) -> bool:
        if self._driver_lists_one():
            return True
        command = self._nvidia_smi or shutil.which("nvidia-smi")
        if command is None:
            return False
        try:
            # A fixed command, no shell; the path comes from PATH or the composition root.
            listing = subprocess.run(  # noqa: S603
                [command, "-L"],
                capture_output=True,
                text=True,
                timeout=self._timeout_s,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return listing.returncode == 0 and any(
            line.startswith("GPU ") for line in listing.stdout.splitlines()
        )


def gpu_usable(probe: GpuProbe, use_gpu: bool) -> bool:
    """Whether jobs may use a GPU: one is there and ``useGPU`` is on."""
    return use_gpu and probe()


def gpu_text(usable: bool) -> str:
    """What the system page says of the GPU."""
    return GPU_AVAILABLE if usable else NO_GPU
