"""What the system page says: version, mode, GPU, license."""

from __future__ import annotations

import functools
import importlib
import importlib.util

GPU_AVAILABLE = "GPU Resource Available"
NO_GPU = "no GPU"


@functools.cache
def gpu_available() -> bool:
    """Whether this process can use a CUDA GPU (torch installed and seeing one).

    The API itself never needs torch; without it (the Lambda functions, a CPU
    install) the answer is no.
    """
    if importlib.util.find_spec("torch") is None:
        return False
    torch = importlib.import_module("torch")
    return bool(torch.cuda.is_available())
