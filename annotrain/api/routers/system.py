"""``/api/v1/system``: who is asking, what the lab is, what it runs on, and its license."""

from __future__ import annotations

from fastapi import APIRouter

from annotrain import __version__
from annotrain.api.deps import AppSettings, CurrentUser, GpuCheck, Grants
from annotrain.api.errors import error_responses
from annotrain.api.schemas import SystemOut, user_out
from annotrain.services.system import gpu_text, gpu_usable

router = APIRouter(prefix="/system", tags=["system"], responses=error_responses(401, 503))


@router.get("")
def read_system(
    user: CurrentUser, settings: AppSettings, gpu_probe: GpuCheck, grants: Grants
) -> SystemOut:
    """You (name, lab role); version, mode, GPU ("GPU Resource Available" or "no GPU"), license."""
    usable = gpu_usable(gpu_probe, settings.use_gpu)
    grant = grants.get()
    return SystemOut(
        user=user_out(user),
        version=__version__,
        mode=settings.mode.value,
        gpu_available=usable,
        gpu=gpu_text(usable),
        use_gpu=settings.use_gpu,
        license=grant.summary(),
        license_scopes=sorted(s.value for s in grant.scopes),
        cost_banner=grant.cost_banner,
    )
