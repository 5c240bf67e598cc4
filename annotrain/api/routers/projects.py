"""``/api/v1/projects``: create, list, read, change, delete; the labeling config.

Reading a project takes any project role (or admin); changing it or its config
Owner or Manager; deleting it Owner. Callers who are not members are answered
404, as for a project that does not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from annotrain.api.deps import CurrentUser, Now, ProjectId, Store
from annotrain.api.errors import error_responses
from annotrain.api.schemas import (
    ConfigOut,
    ConfigUpdate,
    ProjectCreate,
    ProjectOut,
    ProjectPage,
    ProjectUpdate,
    config_out,
    project_out,
)
from annotrain.domain.tasks import Role
from annotrain.ports import MAX_PAGE_SIZE
from annotrain.services import projects

router = APIRouter(prefix="/projects", tags=["projects"], responses=error_responses(401, 422, 503))
#: A project's own routes: its members' roles decide, outsiders are told it does not exist.
IN_PROJECT = error_responses(403, 404)
#: Changing a project: it may have changed since it was read.
CHANGING = error_responses(403, 404, 409, 413)


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(413))
def create_project(body: ProjectCreate, user: CurrentUser, store: Store, clock: Now) -> ProjectOut:
    """Create a project; its creator becomes its Owner."""
    project = projects.create_project(
        store,
        user,
        clock,
        name=body.name,
        labeling_config=body.labeling_config,
        description=body.description,
        language=body.language,
    )
    return project_out(project, Role.OWNER)  # its creator is made its Owner


@router.post("/check-config", responses=error_responses(413))
def check_config(body: ConfigUpdate, user: CurrentUser) -> ConfigOut:
    """Check a labeling config without storing it; returns the models it implies."""
    del user  # any signed-in user may check a config: nothing is read or written
    _, report = projects.check_config(body.labeling_config)
    return config_out(body.labeling_config, report)


@router.get("")
def list_projects(
    user: CurrentUser,
    store: Store,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> ProjectPage:
    """List the projects you are a member of (admins: all), oldest first, with your role."""
    items, total = projects.list_projects(store, user, page=page, page_size=page_size)
    return ProjectPage(
        items=[project_out(p.project, p.role) for p in items],
        total=total,
        page=page,
        page_size=page_size,
    )


@router.get("/{project_id}", responses=IN_PROJECT)
def read_project(project_id: ProjectId, user: CurrentUser, store: Store) -> ProjectOut:
    """Read a project, with your role in it."""
    seen = projects.read_project(store, user, project_id)
    return project_out(seen.project, seen.role)


@router.patch("/{project_id}", responses=CHANGING)
def update_project(
    project_id: ProjectId, body: ProjectUpdate, user: CurrentUser, store: Store
) -> ProjectOut:
    """Rename a project or change its description."""
    changed = projects.update_project(
        store,
        user,
        project_id,
        name=body.name,
        description=body.description,
        language=body.language,
    )
    return project_out(changed.project, changed.role)


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT, responses=IN_PROJECT)
def delete_project(project_id: ProjectId, user: CurrentUser, store: Store) -> Response:
    """Delete a project with its members and tasks."""
    projects.delete_project(store, user, project_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{project_id}/config", responses=IN_PROJECT)
def read_config(project_id: ProjectId, user: CurrentUser, store: Store) -> ConfigOut:
    """Read a project's labeling config and the models it implies."""
    project = projects.get_project(store, user, project_id)
    _, report = projects.check_config(project.label_config)
    return config_out(project.label_config, report)


@router.put("/{project_id}/config", responses=CHANGING)
def replace_config(
    project_id: ProjectId, body: ConfigUpdate, user: CurrentUser, store: Store
) -> ConfigOut:
    """Check and replace a project's labeling config; returns the models it implies."""
    project, report = projects.set_config(store, user, project_id, body.labeling_config)
    return config_out(project.label_config, report)
