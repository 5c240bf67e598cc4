"""Licenses for tests: a vendor key of the tests' own, documents signed with it, and the
single-node default licensing. The real vendor's private key is never here."""

from __future__ import annotations

from datetime import datetime, timedelta

from annotrain.adapters.ed25519 import Ed25519Signer, ed25519_check
from annotrain.domain.licenses import (
    ALL_SCOPES,
    License,
    LicenseType,
    Scope,
    ServerLimits,
    Signature,
    render_document,
    signed_message,
)
from annotrain.services.licenses import Licensing

INSTANCE_ID = "i-0123456789abcdef0"
PRODUCT_CODE = "prod-code-1234"


def single_node_licensing() -> Licensing:
    """A lab that trusts no vendor and has no instance key: the default applies."""
    return Licensing(check=ed25519_check, vendor_keys={}, instance_key=lambda: None)


def vendor_signer(key_id: str = "test-vendor-1") -> Ed25519Signer:
    """A vendor key made for the test."""
    return Ed25519Signer.generate(key_id)


def licensing_trusting(
    vendor: Ed25519Signer | None = None,
    *,
    instance: Ed25519Signer | None = None,
    instance_id: str = INSTANCE_ID,
    ami: bool = False,
) -> Licensing:
    """Licensing that trusts ``vendor``'s key and ``instance`` as this instance's key."""
    vendor_keys = {} if vendor is None else {vendor.key_id: vendor.public_key}
    instance_key = None if instance is None else (instance.key_id, instance.public_key)
    return Licensing(
        check=ed25519_check, vendor_keys=vendor_keys, instance_key=lambda: instance_key,
        instance_id=instance_id, ami=ami,
    )  # fmt: skip


def vendor_license(
    signer: Ed25519Signer,
    *,
    license_id: str = "lic-1",
    kind: LicenseType = LicenseType.FLOATING,
    scopes: frozenset[Scope] = ALL_SCOPES,
    issued_at: datetime,
    valid_for: timedelta = timedelta(days=30),
    limits: ServerLimits | None = None,
) -> str:
    """A document signed by ``signer``."""
    lic = License(
        license_id, kind, scopes, issued_at.replace(microsecond=0),
        (issued_at + valid_for).replace(microsecond=0), limits or ServerLimits(),
        None, "Example Hospital",
    )  # fmt: skip
    return render_document(lic, Signature(signer.key_id, signer.sign(signed_message(lic))))
