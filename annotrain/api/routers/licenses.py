"""``/api/v1/licenses``: admins list, import and delete licenses.

On a Marketplace instance (``ANNOTRAIN_AMI``) only its PAYG license exists: import
and delete answer 409 ``ami_mode``, saying why. Everyone sees the license summary
on ``GET /api/v1/system``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from annotrain.api.deps import CurrentUser, Grants, LicensingPolicy, Now, Store
from annotrain.api.errors import error_responses
from annotrain.api.license_schemas import (
    LicenseImport,
    LicenseList,
    LicenseOut,
    license_list,
    license_out,
)
from annotrain.services import licenses

router = APIRouter(
    prefix="/licenses", tags=["licenses"], responses=error_responses(401, 403, 404, 409, 422, 503)
)

LicenseId = Annotated[str, Path(min_length=1, max_length=200, description="the license's id")]


@router.get("")
def list_licenses(
    user: CurrentUser, store: Store, licensing: LicensingPolicy, clock: Now
) -> LicenseList:
    """List the stored licenses, each with whether it is in force and why not (admins)."""
    listing = licenses.list_licenses(store, licensing, user, clock)
    return license_list(listing, ami=licensing.ami)


@router.post("", status_code=status.HTTP_201_CREATED)
def import_license(
    body: LicenseImport,
    user: CurrentUser,
    store: Store,
    licensing: LicensingPolicy,
    clock: Now,
    grants: Grants,
) -> LicenseOut:
    """Import a FLOATING or TRIAL license: verified first, stored only if in force (admins)."""
    lic = licenses.import_license(store, licensing, user, clock, body.document)
    grants.invalidate()
    return license_out(lic, license_id=lic.id, imported_at=clock.now(), in_force=True, problem=None)


@router.delete("/{license_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_license(
    license_id: LicenseId,
    user: CurrentUser,
    store: Store,
    licensing: LicensingPolicy,
    grants: Grants,
) -> None:
    """Delete a license (admins; refused on a Marketplace instance)."""
    licenses.delete_license(store, licensing, user, license_id)
    grants.invalidate()
