"""The servers page: the jobs running now, and stopping one.

Admins see every running job; other users see the jobs of the projects they are
members of. Stopping a job takes an admin, or the Owner or a Manager of its
project; to anyone outside the project the job does not exist (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from annotrain.domain.errors import JobRunnerUnavailableError, NotFoundError
from annotrain.domain.licenses import Scope, ServerClass, server_class
from annotrain.domain.records import Run, Server
from annotrain.ports import (
    MAX_PAGE_SIZE,
    Clock,
    JobRunner,
    LicenseStore,
    ProjectStore,
    RunStore,
    ServerStore,
)
from annotrain.services.access import MANAGERS, Principal, authorize, find_member
from annotrain.services.licenses import Licensing, active_runs

_CLASS_SCOPE = {ServerClass.TRAINING: Scope.TRAINING, ServerClass.PREANNOTATION: Scope.INFERENCE}


class ServerRecords(ProjectStore, RunStore, ServerStore, Protocol):
    """What the servers page reads: projects (for roles), runs and server records."""


class CapacityRecords(ServerRecords, LicenseStore, Protocol):
    """What the servers page's capacity reads: also the licenses."""


@dataclass(frozen=True, slots=True)
class Capacity:
    """Who holds the servers a license allows, per class.

    Attributes:
        server_class: Training or pre-annotation servers.
        limit: How many at once (None: no limit from the license).
        total_limit: Servers of every class together (a FLOATING license: 1).
        license_id: The license the limits come from ("default" under the default;
            "" when no license grants the class).
        in_use: Runs holding or waiting for one (queued or running).
        held_by: The ids of those runs the caller may see.
    """

    server_class: ServerClass
    limit: int | None
    total_limit: int | None
    license_id: str
    in_use: int
    held_by: list[str]


def server_capacity(
    store: CapacityRecords, licensing: Licensing, clock: Clock, principal: Principal
) -> list[Capacity]:
    """Per class: the limit the licenses in force set, and the runs that hold it."""
    grant = licensing.grant(store, clock.now())
    active = active_runs(store)
    member_of: dict[int, bool] = {}
    capacity: list[Capacity] = []
    for cls in ServerClass:
        limit, total, license_id = grant.limit_for(_CLASS_SCOPE[cls], cls)
        holders = [r for r in active if server_class(r.kind) is cls]
        visible = []
        for run in holders:
            if not principal.is_admin and run.project_id not in member_of:
                member_of[run.project_id] = _is_member(store, run.project_id, principal)
            if principal.is_admin or member_of[run.project_id]:
                visible.append(run.id)
        capacity.append(Capacity(cls, limit, total, license_id, len(holders), visible))
    return capacity


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
