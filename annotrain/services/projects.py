"""Project use cases: create, list, change, delete; members; labeling config."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

from annotrain.domain.config import ProjectSchema, parse_labeling_config
from annotrain.domain.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from annotrain.domain.records import Project
from annotrain.domain.snapshot import LANGUAGES
from annotrain.domain.tasks import Member, Role
from annotrain.domain.training_plan import ModelSpec, implied_models
from annotrain.ports import MAX_PAGE_SIZE, Clock, ProjectStore, UserStore
from annotrain.services.access import (
    ANY_MEMBER,
    MANAGERS,
    Principal,
    authorize,
    authorize_member,
    find_member,
)

DESCRIPTION_KEY = "description"
LANGUAGE_KEY = "language"
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True, slots=True)
class ConfigReport:
    """A labeling config that passed, with what it implies.

    Attributes:
        models: The models the config implies.
        warnings: What is accepted but ignored (unknown tags…).
    """

    models: tuple[ModelSpec, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProjectWithRole:
    """A project as one reader sees it: with their own role in it.

    Attributes:
        project: The project.
        role: The reader's project role; None for a lab admin who is not a member
            (admins may do everything).
    """

    project: Project
    role: Role | None


@functools.lru_cache(maxsize=128)
def parsed_config(xml: str) -> ProjectSchema:
    """A labeling config parsed, once per text: every submit and import checks against it.

    Keyed by the text, not the project's revision, so renaming a project keeps it and
    a new config is parsed anew. ProjectSchema is frozen; callers never change it.

    Raises:
        LabelingConfigError: The config is not usable (not cached: parsed again next time).
    """
    return parse_labeling_config(xml)


def check_config(xml: str) -> tuple[ProjectSchema, ConfigReport]:
    """Parse a labeling config (LabelingConfigError listing every issue if unusable)."""
    schema = parsed_config(xml)
    report = ConfigReport(implied_models(schema), tuple(str(w) for w in schema.warnings))
    return schema, report


def description_of(project: Project) -> str:
    """The project's description (kept in its settings)."""
    value = project.settings.get(DESCRIPTION_KEY, "")
    return value if isinstance(value, str) else ""


def language_of(project: Project) -> str:
    """The project's language: it picks the tokenizer and encoder (``en`` unless set)."""
    value = project.settings.get(LANGUAGE_KEY, DEFAULT_LANGUAGE)
    return value if isinstance(value, str) else DEFAULT_LANGUAGE


def check_language(language: str) -> str:
    """Refuse a language the lab does not know.

    Raises:
        InvalidRequestError: On ``language``, listing those it knows.
    """
    if language not in LANGUAGES:
        raise InvalidRequestError(
            "language",
            f"{language!r} is not a language the lab knows; use one of: {', '.join(LANGUAGES)}",
        )
    return language


def create_project(
    store: ProjectStore,
    principal: Principal,
    clock: Clock,
    *,
    name: str,
    labeling_config: str,
    description: str = "",
    language: str = DEFAULT_LANGUAGE,
) -> Project:
    """Create a project whose creator becomes its Owner.

    Raises:
        LabelingConfigError: The config is not usable; nothing is stored.
        InvalidRequestError: A language the lab does not know; nothing is stored.
    """
    check_config(labeling_config)
    check_language(language)
    settings: dict[str, str] = {LANGUAGE_KEY: language}
    if description:
        settings[DESCRIPTION_KEY] = description
    project = store.create_project(
        Project(
            id=0,
            name=name,
            label_config=labeling_config,
            created_by=principal.name,
            created_at=clock.now(),
            settings=settings,
        )
    )
    try:
        store.put_member(project.id, Member(principal.name, Role.OWNER))
    except BaseException:
        # A project nobody owns would be visible to admins only: take it back.
        store.delete_project(project.id)
        raise
    return project


def list_projects(
    store: ProjectStore, principal: Principal, *, page: int, page_size: int
) -> tuple[list[ProjectWithRole], int]:
    """One page of the projects the principal may see (admins: all), and their total.

    Each comes with the principal's role in it. Walks every project, asking the
    store for the principal's memberships once per batch of projects (not once per
    project): fine for the hundreds of projects a lab holds; a per-user index
    belongs in the stores when that stops being true.
    """
    _check_paging(page, page_size)
    visible: list[Project] = []
    roles: dict[int, Role] = {}
    token: str | None = None
    while True:
        batch = store.list_projects(limit=MAX_PAGE_SIZE, token=token)
        if principal.is_admin:
            visible.extend(batch.items)
        else:
            mine = store.get_memberships(principal.name, [p.id for p in batch.items])
            roles.update((project_id, m.role) for project_id, m in mine.items())
            visible.extend(p for p in batch.items if p.id in mine)
        if batch.next_token is None:
            break
        token = batch.next_token
    start = (page - 1) * page_size
    shown = visible[start : start + page_size]
    if principal.is_admin and shown:
        # An admin sees every project; their role is only in those they are members of.
        mine = store.get_memberships(principal.name, [p.id for p in shown])
        roles = {project_id: m.role for project_id, m in mine.items()}
    return [ProjectWithRole(p, roles.get(p.id)) for p in shown], len(visible)


def _check_paging(page: int, page_size: int) -> None:
    if page < 1:
        raise InvalidRequestError("page", "must be 1 or more")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidRequestError("page_size", f"must be 1 to {MAX_PAGE_SIZE}")


def get_project(store: ProjectStore, principal: Principal, project_id: int) -> Project:
    """A project any member (or an admin) may read."""
    return authorize(store, principal, project_id, ANY_MEMBER, "reading the project")


def read_project(store: ProjectStore, principal: Principal, project_id: int) -> ProjectWithRole:
    """A project any member (or an admin) may read, with the reader's role in it."""
    project, member = authorize_member(
        store, principal, project_id, ANY_MEMBER, "reading the project"
    )
    return ProjectWithRole(project, None if member is None else member.role)


def update_project(
    store: ProjectStore,
    principal: Principal,
    project_id: int,
    *,
    name: str | None = None,
    description: str | None = None,
    language: str | None = None,
) -> ProjectWithRole:
    """Rename a project, change its description or language (Owner, Manager, admin).

    Returns:
        The project as stored after, with the caller's role in it.
    """
    project, member = authorize_member(
        store, principal, project_id, MANAGERS, "changing the project"
    )
    settings = dict(project.settings)
    if description is not None:
        settings[DESCRIPTION_KEY] = description
    if language is not None:
        settings[LANGUAGE_KEY] = check_language(language)
    changed = replace(project, name=project.name if name is None else name, settings=settings)
    return ProjectWithRole(store.update_project(changed), None if member is None else member.role)


def delete_project(store: ProjectStore, principal: Principal, project_id: int) -> None:
    """Delete a project with its tasks (its Owner or an admin)."""
    authorize(store, principal, project_id, frozenset({Role.OWNER}), "deleting the project")
    store.delete_project(project_id)


def set_config(
    store: ProjectStore, principal: Principal, project_id: int, labeling_config: str
) -> tuple[Project, ConfigReport]:
    """Replace a project's labeling config after checking it (Owner, Manager, admin)."""
    project = authorize(store, principal, project_id, MANAGERS, "changing the labeling config")
    _, report = check_config(labeling_config)
    return store.update_project(replace(project, label_config=labeling_config)), report


def list_members(store: ProjectStore, principal: Principal, project_id: int) -> list[Member]:
    """Every member of a project (any member, or an admin, may look)."""
    authorize(store, principal, project_id, ANY_MEMBER, "listing members")
    return _members(store, project_id)


def _members(store: ProjectStore, project_id: int) -> list[Member]:
    members: list[Member] = []
    token: str | None = None
    while True:
        page = store.list_members(project_id, limit=MAX_PAGE_SIZE, token=token)
        members.extend(page.items)
        if page.next_token is None:
            return members
        token = page.next_token


def put_member(
    store: ProjectStore,
    users: UserStore | None,
    principal: Principal,
    project_id: int,
    member: Member,
) -> Member:
    """Add a member or change one's role and priority (Owner, Manager, admin).

    Only Owners and admins may grant the Owner role or change an Owner. A project
    never loses its last Owner: demoting them is refused.

    Args:
        users: Where users are kept, to refuse unknown names; None where users
            live elsewhere (Cognito, serverless).

    Raises:
        InvalidRequestError: An unknown user (field ``user``), or the last Owner
            demoted (field ``role``).
    """
    previous = _authorize_member_change(store, principal, project_id, member.user, member.role)
    if users is not None:
        try:
            users.get_user(member.user)
        except NotFoundError:
            raise InvalidRequestError("user", f"no user is called {member.user!r}") from None
    _keep_an_owner(
        store, project_id, previous, member.role, lambda: store.put_member(project_id, member)
    )
    return member


def remove_member(store: ProjectStore, principal: Principal, project_id: int, user: str) -> None:
    """Remove a member (Owner, Manager, admin; only Owners and admins remove an Owner).

    Removing someone who is not a member does nothing.

    Raises:
        InvalidRequestError: The member is the project's last Owner (field ``member``).
    """
    previous = _authorize_member_change(store, principal, project_id, user, None)
    _keep_an_owner(store, project_id, previous, None, lambda: store.remove_member(project_id, user))


def _keep_an_owner(
    store: ProjectStore,
    project_id: int,
    previous: Member | None,
    role: Role | None,
    change: Callable[[], None],
) -> None:
    """Make a membership change unless it leaves the project without an Owner.

    Checked before the change, and again after it: two Owners demoting each other
    at the same moment could each see the other still there. Whoever finds no
    Owner left afterwards puts their member back, so the project keeps one.
    """
    if previous is None or previous.role is not Role.OWNER or role is Role.OWNER:
        change()
        return
    if not _other_owners(store, project_id, previous.user):
        raise _last_owner(previous.user, role)
    change()
    if not any(m.role is Role.OWNER for m in _members(store, project_id)):
        store.put_member(project_id, previous)
        raise _last_owner(previous.user, role)


def _other_owners(store: ProjectStore, project_id: int, user: str) -> list[Member]:
    return [m for m in _members(store, project_id) if m.role is Role.OWNER and m.user != user]


def _last_owner(user: str, role: Role | None) -> InvalidRequestError:
    doing = "removing them" if role is None else f"making them {role.value}"
    return InvalidRequestError(
        "member" if role is None else "role",
        f"{user!r} is the project's last Owner: first make another member Owner "
        f'(PUT …/members {{"user": "…", "role": "Owner"}}), then try {doing} again',
    )


def _authorize_member_change(
    store: ProjectStore, principal: Principal, project_id: int, user: str, role: Role | None
) -> Member | None:
    """Check the caller may make the change; returns the user's membership as it is."""
    authorize(store, principal, project_id, MANAGERS, "changing members")
    current = find_member(store, project_id, user)
    if principal.is_admin:
        return current
    caller = find_member(store, project_id, principal.name)
    touches_owner = role == Role.OWNER or (current is not None and current.role == Role.OWNER)
    if touches_owner and (caller is None or caller.role != Role.OWNER):
        raise PermissionDeniedError(
            "granting, changing or removing the Owner role", "Owners and admins"
        )
    return current
