"""``/api/v1/projects/{id}/members``: who works on a project, in which role.

Any member (or admin) may list them; Owners and Managers (and admins) change
them; only Owners and admins grant, change or remove the Owner role, and a project
never loses its last Owner.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from annotrain.api.deps import AppSettings, CurrentUser, ProjectId, Store
from annotrain.api.errors import error_responses
from annotrain.api.schemas import MemberList, MemberOut, MemberPut, member_out
from annotrain.domain.tasks import Member
from annotrain.services import projects
from annotrain.settings import Mode

router = APIRouter(
    prefix="/projects/{project_id}/members",
    tags=["members"],
    responses=error_responses(401, 403, 404, 422, 503),
)


@router.get("")
def list_members(project_id: ProjectId, user: CurrentUser, store: Store) -> MemberList:
    """List a project's members."""
    return MemberList(items=[member_out(m) for m in projects.list_members(store, user, project_id)])


@router.put("", responses=error_responses(413))
def put_member(
    project_id: ProjectId, body: MemberPut, user: CurrentUser, store: Store, settings: AppSettings
) -> MemberOut:
    """Add a member or change a member's role and priority (never the last Owner's role)."""
    # On a single node users live in the store, so unknown names are refused;
    # serverless, they live in Cognito.
    users = store if settings.mode == Mode.SINGLE_NODE else None
    member = Member(body.user, body.role, body.priority)
    return member_out(projects.put_member(store, users, user, project_id, member))


@router.delete("/{member}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(409))
def remove_member(project_id: ProjectId, member: str, user: CurrentUser, store: Store) -> Response:
    """Remove a member from a project (never its last Owner)."""
    projects.remove_member(store, user, project_id, member)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
