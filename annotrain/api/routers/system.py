"""``/api/v1/system``: what the lab is and what it runs on."""

from __future__ import annotations

from fastapi import APIRouter

from annotrain import __version__
from annotrain.api.deps import AppSettings, CurrentUser
from annotrain.api.errors import error_responses
from annotrain.api.schemas import SystemOut
from annotrain.services.system import GPU_AVAILABLE, NO_GPU, gpu_available

router = APIRouter(prefix="/system", tags=["system"], responses=error_responses(401, 503))


@router.get("")
def read_system(user: CurrentUser, settings: AppSettings) -> SystemOut:
    """Version, mode, GPU availability and license summary."""
    gpu = gpu_available()
    return SystemOut(
        version=__version__,
        mode=settings.mode.value,
        gpu_available=gpu,
        gpu=GPU_AVAILABLE if gpu else NO_GPU,
        # Licenses land with their own issue; until then there is none to show.
        license="none yet",
        cost_banner=None,
    )
