"""Licenses: admin-only routes that land with issue 8.

They are lab-wide, so only admins reach them; they then answer
:class:`~annotrain.domain.errors.NotImplementedYetError`. Everyone sees the
license summary on ``GET /api/v1/system``.
"""

from __future__ import annotations

from annotrain.domain.errors import NotImplementedYetError
from annotrain.services.access import Principal, require_admin

LICENSING_ISSUE = "issue 8 (Marketplace AMI, pay-as-you-go licensing, metering, backup and restore)"


def list_licenses(principal: Principal) -> None:
    """The imported licenses (not implemented yet)."""
    require_admin(principal, "listing licenses")
    raise NotImplementedYetError("listing licenses", LICENSING_ISSUE)


def import_license(principal: Principal) -> None:
    """Import a license document (not implemented yet)."""
    require_admin(principal, "importing a license")
    raise NotImplementedYetError("importing a license", LICENSING_ISSUE)


def delete_license(principal: Principal, license_id: str) -> None:
    """Delete a license (not implemented yet)."""
    require_admin(principal, "deleting a license")
    raise NotImplementedYetError("deleting a license", LICENSING_ISSUE)
