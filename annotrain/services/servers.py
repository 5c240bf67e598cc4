"""The servers page: the jobs running now, and stopping one.

Admins see every running job; other users see the jobs of the projects they are
members of. Stopping a job takes an admin, or the Owner or a Manager of its
project; to anyone outside the project the job does not exist (404).
"""

from __future__ import annotations

from typing import Protocol

from annotrain.domain.errors import JobRunnerUnavailableError, NotFoundError
from annotrain.domain.records import Run, Server
from annotrain.ports import MAX_PAGE_SIZE, JobRunner, ProjectStore, RunStore, ServerStore
from annotrain.services.access import MANAGERS, Principal, authorize, find_member


class ServerRecords(ProjectStore, RunStore, ServerStore, Protocol):
    """What the servers page reads: projects (for roles), runs and server records."""


def list_servers(store: ServerRecords, principal: Principal) -> list[Server]:
    """The running jobs the principal may see, oldest first.

    Args:
        store: Where server records and project members are kept.
        principal: Who asks: admins see all, others the jobs of their projects.
    """
    servers: list[Server] = []
    token: str | None = None
    while True:
        page = store.list_servers(limit=MAX_PAGE_SIZE, token=token)
        servers.extend(page.items)
        if page.next_token is None:
            break
        token = page.next_token
    if principal.is_admin:
        return servers
    member_of: dict[int, bool] = {}
    for server in servers:
        if server.project_id not in member_of:
            member_of[server.project_id] = _is_member(store, server.project_id, principal)
    return [s for s in servers if member_of[s.project_id]]


def stop_server(
    store: ServerRecords, runner: JobRunner | None, principal: Principal, run_id: str
) -> Run:
    """Stop a running (or queued) job through the runner; returns its run as stored after.

    Raises:
        NotFoundError: No such run, or the principal is not a member of its project.
        PermissionDeniedError: A member who is neither Owner nor Manager.
        JobRunnerUnavailableError: The app has no job runner (checked after the roles,
            so outsiders learn nothing from it).
    """
    run = store.get_run(run_id)
    try:
        authorize(store, principal, run.project_id, MANAGERS, "stopping a job")
    except NotFoundError:
        raise NotFoundError("server", run_id) from None
    if runner is None:
        raise JobRunnerUnavailableError("stop a job")
    runner.cancel(run_id)
    return store.get_run(run_id)


def _is_member(store: ProjectStore, project_id: int, principal: Principal) -> bool:
    try:
        return find_member(store, project_id, principal.name) is not None
    except NotFoundError:  # the project went while its job still runs
        return False
