"""``/api/v1/servers``: the jobs running now, and stopping one.

Admins see every job, others the jobs of their projects; stopping one takes an
admin or the Owner or a Manager of its project. Stopping needs the app's job
runner; without one it answers 503.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from annotrain.api.deps import CurrentUser, LicensingPolicy, Now, Runner, Store
from annotrain.api.errors import error_responses
from annotrain.api.job_schemas import (
    CapacityOut,
    ServerList,
    ServerStopOut,
    server_out,
    server_stop_out,
)
from annotrain.services import servers

router = APIRouter(
    prefix="/servers", tags=["servers"], responses=error_responses(401, 403, 404, 422, 503)
)

RunId = Annotated[str, Path(min_length=1, max_length=128, description="the job's run id")]


@router.get("")
def list_servers(
    user: CurrentUser, store: Store, licensing: LicensingPolicy, clock: Now
) -> ServerList:
    """List the running jobs you may see (kind, project, who, since, GPU or CPU) and who
    holds the servers the license allows."""
    capacity = [
        CapacityOut(
            server_class=c.server_class.value, limit=c.limit, total_limit=c.total_limit,
            license_id=c.license_id, in_use=c.in_use, held_by=c.held_by,
        )
        for c in servers.server_capacity(store, licensing, clock, user)
    ]  # fmt: skip
    return ServerList(
        items=[server_out(s) for s in servers.list_servers(store, user)], capacity=capacity
    )


@router.post("/{run_id}/stop", status_code=status.HTTP_202_ACCEPTED)
def stop_server(run_id: RunId, user: CurrentUser, store: Store, runner: Runner) -> ServerStopOut:
    """Stop a job: its run is cancelled at once, its process stopped soon after."""
    return server_stop_out(servers.stop_server(store, runner, user, run_id))
