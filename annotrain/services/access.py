"""Who is asking, and what their project role lets them do.

Non-members of a project are told it does not exist (NotFoundError), exactly as
for a project that does not exist, so project ids and names do not leak. Members
whose role does not allow an action get PermissionDeniedError. Admins may do
everything everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from annotrain.domain.errors import NotFoundError, PermissionDeniedError
from annotrain.domain.records import Project, UserRole
from annotrain.domain.tasks import Member, Role
from annotrain.ports import MAX_PAGE_SIZE, ProjectStore

#: Members, config, deleting tasks, importing: what running a project takes.
MANAGERS = frozenset({Role.OWNER, Role.MANAGER})
#: Accepting or rejecting completions.
REVIEWERS = frozenset({Role.OWNER, Role.MANAGER, Role.REVIEWER})
#: Every project role: what reading a project takes.
ANY_MEMBER = frozenset(Role)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller.

    Attributes:
        name: The user name members and completions carry.
        is_admin: Lab-wide admin: sees and may change every project.
    """

    name: str
    is_admin: bool = False

    @property
    def lab_role(self) -> UserRole:
        """What the principal is across the lab: an admin, or a user whose project roles decide."""
        return UserRole.ADMIN if self.is_admin else UserRole.USER


def find_member(store: ProjectStore, project_id: int, user: str) -> Member | None:
    """The user's membership of a project, or None (NotFoundError if no project)."""
    token: str | None = None
    while True:
        page = store.list_members(project_id, limit=MAX_PAGE_SIZE, token=token)
        for member in page.items:
            if member.user == user:
                return member
        if page.next_token is None:
            return None
        token = page.next_token


def authorize(
    store: ProjectStore,
    principal: Principal,
    project_id: int,
    roles: frozenset[Role],
    action: str,
) -> Project:
    """The project, if the principal may do ``action`` on it.

    Raises:
        NotFoundError: No such project, or the principal is not a member of it.
        PermissionDeniedError: A member whose role is not among ``roles``.
    """
    project = store.get_project(project_id)
    if principal.is_admin:
        return project
    _check_role(find_member(store, project_id, principal.name), project_id, roles, action)
    return project


def authorize_member(
    store: ProjectStore,
    principal: Principal,
    project_id: int,
    roles: frozenset[Role],
    action: str,
) -> tuple[Project, Member | None]:
    """As :func:`authorize`, and the principal's own membership of the project.

    The membership is looked up for admins too: None for an admin who is not a member.

    Raises:
        NotFoundError: No such project, or the principal is not a member of it.
        PermissionDeniedError: A member whose role is not among ``roles``.
    """
    project = store.get_project(project_id)
    member = find_member(store, project_id, principal.name)
    if not principal.is_admin:
        _check_role(member, project_id, roles, action)
    return project, member


def _check_role(
    member: Member | None, project_id: int, roles: frozenset[Role], action: str
) -> None:
    if member is None:
        raise NotFoundError("project", project_id)
    if member.role not in roles:
        allowed = ", ".join(sorted(role.value for role in roles))
        raise PermissionDeniedError(action, f"project roles {allowed} and admins")


def require_admin(principal: Principal, action: str) -> None:
    """Let only lab admins do ``action`` (lab-wide things: licenses, backups).

    Raises:
        PermissionDeniedError: The principal is not an admin.
    """
    if not principal.is_admin:
        raise PermissionDeniedError(action, "admins")
