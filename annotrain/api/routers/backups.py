"""``/api/v1/backups``: admins list and make backups; 501 until issue 8.

The admin check comes first, so the role matrix holds now.
"""

from __future__ import annotations

from fastapi import APIRouter, status

from annotrain.api.deps import CurrentUser
from annotrain.api.errors import error_responses
from annotrain.api.job_schemas import not_implemented_until
from annotrain.services import licenses

router = APIRouter(prefix="/backups", tags=["backups"], responses=error_responses(401, 403, 503))

NOT_IMPLEMENTED = not_implemented_until("issue 8")


@router.get("", responses=NOT_IMPLEMENTED)
def list_backups(user: CurrentUser) -> None:
    """List the lab's backups (admins; 501 until issue 8)."""
    licenses.list_backups(user)


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=NOT_IMPLEMENTED)
def start_backup(user: CurrentUser) -> None:
    """Back the lab up (admins; 501 until issue 8)."""
    licenses.start_backup(user)
