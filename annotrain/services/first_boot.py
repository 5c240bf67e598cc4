"""First boot of a Marketplace instance: a PAYG license for it, its admin, its timers.

``annotrain first-boot`` (the ``annotrain-first-boot.service`` oneshot, before the
API) calls :func:`run_first_boot`, which:

1. reads who the instance is (IMDSv2: instance id, region, account, product codes);
2. does nothing more when first boot already ran on this instance (a marker in the
   data folder holds a hash of the instance id: a second boot does nothing, and a
   lab restored from another instance's backup is provisioned for this one);
3. refuses, without generating anything, unless the Marketplace product code
   configured for this AMI is among the instance's product codes (an instance that
   was not launched from the Marketplace listing gets no PAYG license);
4. asks the injected license service for a PAYG license bound to the instance;
5. creates the admin whose first API token is the instance id, when the lab has no
   users yet (the token is stored hashed like every token, and never printed or
   logged: whoever can see the instance in the EC2 console can sign in, which is
   the Marketplace convention for a first password);
6. enables the license renewal and metering timers;
7. writes the marker, atomically.

Every step is idempotent, so a first boot cut short is simply run again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from annotrain.domain.errors import AnnotrainError
from annotrain.domain.records import ApiToken, User, UserRole
from annotrain.ports import Clock, InstanceIdentity, InstanceMetadata, UserStore
from annotrain.services.users import FIRST_ADMIN, hash_token

__all__ = [
    "FIRST_BOOT_MARKER",
    "TIMERS_ENABLED_AT_FIRST_BOOT",
    "FirstBootOutcome",
    "FirstBootResult",
    "InstanceIdentity",
    "InstanceMetadata",
    "NotAMarketplaceLaunchError",
    "PaygLicenseProvisioner",
    "PaygLicenseRequest",
    "run_first_boot",
]

#: The marker, in the data folder: first boot ran on the instance whose id hashes to it.
FIRST_BOOT_MARKER = "first-boot.json"
#: The timers a Marketplace instance runs (installed, not enabled, by install.sh).
TIMERS_ENABLED_AT_FIRST_BOOT = ("annotrain-license-renew.timer", "annotrain-metering.timer")
_MARKER_FORMAT = "annotrain-first-boot/1"


@dataclass(frozen=True, slots=True)
class PaygLicenseRequest:
    """What a PAYG license is generated for.

    Attributes:
        instance_id: The instance the license is bound to.
        product_code: The Marketplace product code the launch carries (checked).
        region: The instance's region.
        account_id: The customer's account.
    """

    instance_id: str
    product_code: str
    region: str
    account_id: str


class PaygLicenseProvisioner(Protocol):
    """The license service's side of first boot."""

    def __call__(self, request: PaygLicenseRequest) -> str:
        """Generate, sign and store a PAYG license bound to ``request.instance_id``.

        Must be idempotent for one instance (first boot is retried after a crash):
        a valid PAYG license already stored for the same instance may be returned.

        Returns:
            The stored license's id.

        Raises:
            AnnotrainError: The license could not be generated or stored; the
                message says why.
        """
        ...


class NotAMarketplaceLaunchError(AnnotrainError):
    """The instance lacks the configured product code: no PAYG license is generated."""


class FirstBootOutcome(StrEnum):
    """How first boot ended."""

    PROVISIONED = "provisioned"
    ALREADY_DONE = "already_done"


@dataclass(frozen=True, slots=True)
class FirstBootResult:
    """What first boot did.

    Attributes:
        outcome: Provisioned now, or done on an earlier boot of this instance.
        license_id: The PAYG license generated (None when already done).
        admin_created: Whether the admin with the instance-id token was created.
        notes: Lines for the journal (never the instance id).
    """

    outcome: FirstBootOutcome
    license_id: str | None = None
    admin_created: bool = False
    notes: list[str] = field(default_factory=list)


def run_first_boot(
    *,
    metadata: InstanceMetadata,
    users: UserStore,
    clock: Clock,
    provision_license: PaygLicenseProvisioner,
    enable_units: Callable[[Sequence[str]], None],
    data_dir: Path,
    product_code: str,
) -> FirstBootResult:
    """Provision this instance once: PAYG license, admin, timers, marker.

    Args:
        metadata: Reads the instance identity (IMDSv2).
        users: Where the admin is created.
        clock: Stamps the admin and the marker.
        provision_license: The license service's PAYG generator.
        enable_units: Enables and starts systemd units (``systemctl enable --now``).
        data_dir: The lab's data folder, where the marker is kept.
        product_code: The Marketplace product code this AMI is listed under.

    Raises:
        NotAMarketplaceLaunchError: No product code is configured, or the instance
            does not carry it; nothing was generated or created.
        AnnotrainError: IMDS, the license service or the store failed (the step
            that failed is in the message); run again once it is fixed.
    """
    identity = metadata.identity()
    marker = data_dir / FIRST_BOOT_MARKER
    instance_hash = _instance_hash(identity.instance_id)
    if _marked_instance(marker) == instance_hash:
        return FirstBootResult(
            FirstBootOutcome.ALREADY_DONE,
            notes=[f"first boot already ran on this instance ({marker}); nothing to do"],
        )
    code = _check_product_code(identity, product_code)
    license_id = provision_license(
        PaygLicenseRequest(identity.instance_id, code, identity.region, identity.account_id)
    )
    notes = [f"generated and stored the PAYG license {license_id} bound to this instance"]
    admin_created = _create_admin(users, identity.instance_id, clock)
    if admin_created:
        notes.append(
            f"created the admin {FIRST_ADMIN!r}; its first API token is this instance's id "
            "(EC2 console, or IMDS); replace it after signing in"
        )
    else:
        notes.append("the lab has users already (restored?): no admin created, tokens unchanged")
    enable_units(TIMERS_ENABLED_AT_FIRST_BOOT)
    notes.append("enabled " + ", ".join(TIMERS_ENABLED_AT_FIRST_BOOT))
    _write_marker(marker, instance_hash, license_id, clock)
    return FirstBootResult(FirstBootOutcome.PROVISIONED, license_id, admin_created, notes)


def _instance_hash(instance_id: str) -> str:
    # The marker is no second copy of the admin's first token.
    return "sha256:" + hashlib.sha256(instance_id.encode("utf-8")).hexdigest()


def _check_product_code(identity: InstanceIdentity, configured: str) -> str:
    if not configured:
        raise NotAMarketplaceLaunchError(
            "no Marketplace product code is configured for this AMI: set "
            "ANNOTRAIN_MARKETPLACE_PRODUCT_CODE in /etc/annotrain/annotrain.env; no PAYG "
            "license was generated"
        )
    if not identity.product_codes:
        raise NotAMarketplaceLaunchError(
            "this instance has no AWS Marketplace product code (it was not launched from the "
            "Marketplace listing): refusing to generate a PAYG license. Launch the AMI from "
            "its AWS Marketplace listing, or import a license as an admin."
        )
    if configured not in identity.product_codes:
        raise NotAMarketplaceLaunchError(
            f"this instance's Marketplace product code(s) {', '.join(identity.product_codes)} "
            f"are not this AMI's ({configured}): refusing to generate a PAYG license"
        )
    return configured


def _create_admin(users: UserStore, instance_id: str, clock: Clock) -> bool:
    if users.list_users(limit=1).items:
        return False
    now = clock.now()
    user = users.create_user(User(name=FIRST_ADMIN, role=UserRole.ADMIN, created_at=now))
    users.add_token(ApiToken(hash_token(instance_id), user.name, now, "first boot: instance id"))
    return True


def _marked_instance(marker: Path) -> str | None:
    """The instance hash the marker names, None without a marker."""
    try:
        text = marker.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        content = json.loads(text)
        if content.get("format") != _MARKER_FORMAT:
            raise ValueError(f"format is not {_MARKER_FORMAT!r}")
        value = content["instance"]
        if not isinstance(value, str):
            raise TypeError("'instance' is not a string")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AnnotrainError(
            f"{marker}: not a first-boot marker ({exc}); delete it to run first boot again"
        ) from None
    return value


def _write_marker(marker: Path, instance_hash: str, license_id: str, clock: Clock) -> None:
    content = {
        "format": _MARKER_FORMAT,
        "instance": instance_hash,
        "license_id": license_id,
        "completed_at": clock.now().isoformat(),
    }
    marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=marker.parent, prefix=f".{marker.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, marker)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
