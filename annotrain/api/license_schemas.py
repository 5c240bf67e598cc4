"""The license routes' bodies, kept apart from the domain and mapped explicitly."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from annotrain.domain.licenses import MAX_DOCUMENT_BYTES, Grant, License
from annotrain.services.licenses import LicenseEntry, LicenseListing


class LicenseImport(BaseModel):
    """A license document, exactly as issued."""

    model_config = ConfigDict(extra="forbid")

    document: str = Field(
        min_length=2,
        max_length=MAX_DOCUMENT_BYTES,
        description='the signed document: {"license": {…}, "signature": {…}} as JSON text',
    )


class LimitsOut(BaseModel):
    """Servers at once; null: no limit from the license."""

    training_servers: int | None
    preannotation_servers: int | None
    servers: int | None


class LicenseOut(BaseModel):
    """A license and whether it is in force."""

    id: str
    type: str | None = Field(description="PAYG, FLOATING or TRIAL; null when unreadable")
    scopes: list[str]
    issued_at: datetime | None
    expires_at: datetime | None
    limits: LimitsOut | None = Field(description="as enforced (FLOATING: one server at a time)")
    instance_id: str | None = Field(description="PAYG: the instance it is bound to")
    licensee: str
    imported_at: datetime | None
    in_force: bool
    problem: str | None = Field(description="why it is not in force")


class LicenseList(BaseModel):
    """Every stored license, and what those in force allow together."""

    items: list[LicenseOut]
    default: bool = Field(description="no license stored: the single-node default applies")
    scopes: list[str]
    cost_banner: str | None
    ami: bool = Field(description="a Marketplace instance: only its PAYG license, no changes")


def license_out(
    lic: License | None,
    *,
    license_id: str,
    imported_at: datetime | None,
    in_force: bool,
    problem: str | None,
) -> LicenseOut:
    """A license as the API shows it."""
    limits = None if lic is None else lic.effective_limits
    return LicenseOut(
        id=license_id,
        type=None if lic is None else lic.type.value,
        scopes=[] if lic is None else sorted(s.value for s in lic.scopes),
        issued_at=None if lic is None else lic.issued_at,
        expires_at=None if lic is None else lic.expires_at,
        limits=None if limits is None else LimitsOut(**limits.to_json()),
        instance_id=None if lic is None or lic.instance is None else lic.instance.instance_id,
        licensee="" if lic is None else lic.licensee,
        imported_at=imported_at,
        in_force=in_force,
        problem=problem,
    )


def entry_out(entry: LicenseEntry) -> LicenseOut:
    """A stored license with its verdict."""
    return license_out(
        entry.license, license_id=entry.id, imported_at=entry.imported_at,
        in_force=entry.in_force, problem=entry.problem,
    )  # fmt: skip


def license_list(listing: LicenseListing, *, ami: bool) -> LicenseList:
    """The license page."""
    grant: Grant = listing.grant
    return LicenseList(
        items=[entry_out(e) for e in listing.items],
        default=grant.default,
        scopes=sorted(s.value for s in grant.scopes),
        cost_banner=grant.cost_banner,
        ami=ami,
    )
