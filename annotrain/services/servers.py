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
from annotrain.services.access import MANAGERS, Principal, authorize
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
    member_of = (
        None
        if principal.is_admin
        else store.get_memberships(principal.name, {r.project_id for r in active})
    )
    capacity: list[Capacity] = []
    for cls in ServerClass:
        limit, total, license_id = grant.limit_for(_CLASS_SCOPE[cls], cls)
        holders = [r for r in active if server_class(r.kind) is cls]
        visible = [r.id for r in holders if member_of is None or r.project_id in member_of]
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
    # One store call for every project with a running job; a project that went while
    # its job still runs has no members left, so its job is not shown.
    member_of = store.get_memberships(principal.name, {s.project_id for s in servers})
    return [s for s in servers if s.project_id in member_of]


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
