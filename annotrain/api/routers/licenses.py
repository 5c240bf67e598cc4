"""``/api/v1/licenses``: admins list, import and delete licenses; 501 until issue 8.

The admin check comes first, so the role matrix holds now. Everyone sees the
license summary on ``GET /api/v1/system``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from annotrain.api.deps import CurrentUser
from annotrain.api.errors import error_responses
from annotrain.api.job_schemas import not_implemented_until
from annotrain.services import licenses

router = APIRouter(
    prefix="/licenses", tags=["licenses"], responses=error_responses(401, 403, 422, 503)
)

LicenseId = Annotated[str, Path(min_length=1, max_length=200, description="the license's id")]
NOT_IMPLEMENTED = not_implemented_until("issue 8")


@router.get("", responses=NOT_IMPLEMENTED)
def list_licenses(user: CurrentUser) -> None:
    """List the imported licenses (admins; 501 until issue 8)."""
    licenses.list_licenses(user)


@router.post("", status_code=status.HTTP_201_CREATED, responses=NOT_IMPLEMENTED)
def import_license(user: CurrentUser) -> None:
    """Import a license document (admins; 501 until issue 8)."""
    licenses.import_license(user)


@router.delete("/{license_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_IMPLEMENTED)
def delete_license(license_id: LicenseId, user: CurrentUser) -> None:
    """Delete a license (admins; 501 until issue 8)."""
    licenses.delete_license(user, license_id)
