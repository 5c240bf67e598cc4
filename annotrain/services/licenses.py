"""Licenses: judging the stored ones, the routes' use cases, PAYG generation and renewal,
and the admission of runs (scope and server limits).

Who may sign what (see docs/licensing.md for the trust model): FLOATING and TRIAL
licenses are signed by the vendor, whose public keys ship with the code; a PAYG
license is generated on its Marketplace instance and signed by that instance's own
key, which never leaves the data folder.

A lab that is not a Marketplace AMI and has no license stored runs under the
single-node default: every scope, no server limit from a license. Once a license
is stored, only licenses in force count. An AMI lab has no default.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from annotrain.domain.errors import AnnotrainError
from annotrain.domain.licenses import (
    Grant,
    License,
    LicenseError,
    LicenseScopeError,
    LicenseType,
    Scope,
    ServerClass,
    ServerLimitError,
    ServerLimits,
    Signature,
    SignatureCheck,
    TrustedKeys,
    Verdict,
    grant_from,
    judge,
    payg_license,
    read_document,
    render_document,
    renewal_due,
    required_scope,
    server_class,
    signed_message,
    verify,
    why_missing,
)
from annotrain.domain.records import JobKind, LicenseRecord, Run, RunStatus
from annotrain.domain.training_plan import ModelKind
from annotrain.ports import (
    MAX_PAGE_SIZE,
    Clock,
    LicenseSigner,
    LicenseStore,
    RunStore,
    ServerStore,
    UsageMeter,
)
from annotrain.services.access import Principal, require_admin
from annotrain.services.run_lifecycle import mark_finished


class AmiModeError(AnnotrainError):
    """A license change refused because this lab is a Marketplace AMI instance (HTTP 409)."""

    def __init__(self, action: str) -> None:
        super().__init__(
            f"{action} is not possible on an AWS Marketplace instance: it runs on the "
            "pay-as-you-go (PAYG) license generated for this instance, which AWS bills by "
            "the hour and which is renewed automatically; no other license is used here"
        )


class LicenseRecords(LicenseStore, RunStore, ServerStore, UsageMeter, Protocol):
    """What licensing reads and writes: licenses, and runs to count and refuse."""


class Licensing:
    """How this lab judges licenses: the keys it trusts and the mode it runs in.

    Args:
        check: The Ed25519 verification (``ed25519_check``).
        vendor_keys: Vendor key id → raw public key (FLOATING, TRIAL).
        instance_key: Reads (key id, raw public key) of this instance's key, None when
            there is none; read on each judgement, so a key made after the app
            started (first boot) is seen.
        instance_id: The instance this lab runs on ("" when not an instance).
        ami: A Marketplace AMI lab: no default license, no import or delete.
    """

    def __init__(
        self,
        *,
        check: SignatureCheck,
        vendor_keys: Mapping[str, bytes],
        instance_key: Callable[[], tuple[str, bytes] | None],
        instance_id: str = "",
        ami: bool = False,
    ) -> None:
        self._check = check
        self._vendor = dict(vendor_keys)
        self._instance_key = instance_key
        self.instance_id = instance_id
        self.ami = ami

    def trusted_keys(self) -> TrustedKeys:
        """The keys trusted now."""
        return TrustedKeys(self._vendor, self._instance_key(), self.instance_id)

    def verify(self, document: str | bytes, now: datetime) -> License:
        """The license, if it is in force now (LicenseError otherwise)."""
        return verify(document, self.trusted_keys(), self._check, now)

    def verdicts(self, store: LicenseStore, now: datetime) -> list[Verdict]:
        """A verdict on every stored license, by id."""
        return self.judge(_all_licenses(store), now)

    def judge(self, records: Sequence[LicenseRecord], now: datetime) -> list[Verdict]:
        """A verdict on each of these records, in their order."""
        return judge(((r.id, r.document) for r in records), self.trusted_keys(), self._check, now)

    def grant(self, store: LicenseStore, now: datetime) -> Grant:
        """What the licenses in force allow now."""
        return grant_from(self.verdicts(store, now), default_allowed=not self.ami)


# --- the routes -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LicenseEntry:
    """A stored license as the license page shows it.

    Attributes:
        id: Its id.
        license: Its content, when it parsed.
        imported_at: When it was stored.
        in_force: Whether it is valid now.
        problem: Why not.
    """

    id: str
    license: License | None
    imported_at: datetime
    in_force: bool
    problem: str | None


@dataclass(frozen=True, slots=True)
class LicenseListing:
    """The license page: every stored license, and what they allow together."""

    items: list[LicenseEntry]
    grant: Grant


def list_licenses(
    store: LicenseStore, licensing: Licensing, principal: Principal, clock: Clock
) -> LicenseListing:
    """Every stored license with its verdict (admins)."""
    require_admin(principal, "listing licenses")
    now = clock.now()
    records = _all_licenses(store)
    verdicts = licensing.judge(records, now)
    items = [
        LicenseEntry(r.id, v.license, r.imported_at, v.in_force, v.problem)
        for r, v in zip(records, verdicts, strict=True)
    ]
    return LicenseListing(items, grant_from(verdicts, default_allowed=not licensing.ami))


def import_license(
    store: LicenseStore,
    licensing: Licensing,
    principal: Principal,
    clock: Clock,
    document: str,
) -> License:
    """Verify a FLOATING or TRIAL license and store it (admins; refused on an AMI).

    Raises:
        PermissionDeniedError: Not an admin.
        AmiModeError: On a Marketplace instance.
        LicenseError: The document is not valid now (why, and the date when expired);
            a PAYG license (those are generated on their instance). Nothing is stored.
    """
    require_admin(principal, "importing a license")
    if licensing.ami:
        raise AmiModeError("importing a license")
    now = clock.now()
    lic = licensing.verify(document, now)
    if lic.type is LicenseType.PAYG:
        raise LicenseError(
            "a PAYG license is generated on its Marketplace instance and cannot be imported"
        )
    store.put_license(LicenseRecord(lic.id, document.strip(), now))
    return lic


def delete_license(
    store: LicenseStore, licensing: Licensing, principal: Principal, license_id: str
) -> None:
    """Delete a license (admins; refused on an AMI; deleting an absent one does nothing)."""
    require_admin(principal, "deleting a license")
    if licensing.ami:
        raise AmiModeError("deleting a license")
    store.delete_license(license_id)


# --- PAYG on a Marketplace instance ----------------------------------------------------


def generate_payg_license(
    store: LicenseStore,
    signer: LicenseSigner,
    clock: Clock,
    *,
    instance_id: str,
    product_code: str,
    limits: ServerLimits,
    validity: timedelta,
) -> License:
    """Generate, sign and store the PAYG license bound to this instance.

    PAYG licenses of other instances (a restored backup's) are removed: on an
    instance only its own PAYG license exists. The new one is valid from now, so a
    current one it replaces leaves no gap.

    Args:
        store: Where licenses are kept.
        signer: This instance's key (``Ed25519KeyFile(settings.license_key_path)
            .load_or_create()``).
        clock: Now.
        instance_id: ``i-…`` from the instance identity document (IMDSv2).
        product_code: The Marketplace product code the instance was launched from.
        limits: Training and pre-annotation servers at once.
        validity: How long it is valid.

    Returns:
        The stored license.

    Raises:
        LicenseError: No product code (not a Marketplace launch), a bad instance id,
            validity or limit; nothing is stored.
    """
    lic = payg_license(
        instance_id=instance_id, product_code=product_code, issued_at=clock.now(),
        validity=validity, limits=limits,
    )  # fmt: skip
    signature_value = signer.sign(signed_message(lic))
    document = render_document(lic, Signature(signer.key_id, signature_value))
    store.put_license(LicenseRecord(lic.id, document, clock.now()))
    for record in _all_licenses(store):
        if record.id == lic.id:
            continue
        stored = _parsed(record)
        if (
            stored is not None
            and stored.type is LicenseType.PAYG
            and (stored.instance is None or stored.instance.instance_id != instance_id)
        ):
            store.delete_license(record.id)
    return lic


def renew_payg_license(
    store: LicenseStore,
    licensing: Licensing,
    signer: LicenseSigner,
    clock: Clock,
    *,
    limits: ServerLimits,
    validity: timedelta,
    renew_before: timedelta,
) -> License | None:
    """Generate the next PAYG license when the current one is near its end; else nothing.

    Idempotent: a timer may call it as often as it likes. A new license is made
    when no PAYG license of this instance is in force, when the one in force
    expires within ``renew_before``, or when the configured limits changed; it is
    valid from now, before the old one expires (no gap), and the older PAYG
    licenses of this instance are then removed. The product code is the latest
    stored PAYG license's.

    Args:
        store: Where licenses are kept.
        licensing: This lab's licensing (its ``instance_id`` is the instance's).
        signer: This instance's key.
        clock: Now.
        limits: The servers the license allows (from the settings).
        validity: How long a new license is valid.
        renew_before: Renew when the current one expires within this.

    Returns:
        The new license, or None when the current one is good for longer.

    Raises:
        LicenseError: No PAYG license of this instance is stored (its first boot has
            not generated one), so no product code is known.
    """
    now = clock.now()
    records = _all_licenses(store)
    mine: list[tuple[License, bool]] = []
    for verdict in licensing.judge(records, now):
        lic = verdict.license
        if (
            lic is not None
            and lic.type is LicenseType.PAYG
            and lic.instance is not None
            and lic.instance.instance_id == licensing.instance_id
        ):
            mine.append((lic, verdict.in_force))
    current = max((lic for lic, ok in mine if ok), key=lambda lic: lic.expires_at, default=None)
    if (
        current is not None
        and current.limits == limits
        and not renewal_due(current, now, renew_before)
    ):
        return None
    latest = max((lic for lic, _ in mine), key=lambda lic: lic.issued_at, default=None)
    if latest is None or latest.instance is None:
        raise LicenseError(
            "there is no PAYG license of this instance to renew: its first boot generates "
            "one (annotrain licenses generate-payg)",
            field="product_code",
        )
    new = generate_payg_license(
        store, signer, clock, instance_id=licensing.instance_id,
        product_code=latest.instance.product_code, limits=limits, validity=validity,
    )  # fmt: skip
    for old, _ in mine:
        if old.id != new.id:
            store.delete_license(old.id)
    return new


# --- admission of runs -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Admission:
    """A run cleared to be written: the scope it needs and the limits it counts against.

    Attributes:
        scope: The scope it needs.
        server_class: Training or pre-annotation.
        class_limit: Servers of its class at once (None: no limit).
        total_limit: Servers of any class at once (None: no limit).
        license_id: The license whose limits apply ("default" under the default).
    """

    scope: Scope
    server_class: ServerClass
    class_limit: int | None
    total_limit: int | None
    license_id: str


def admit_run(
    store: LicenseRecords,
    licensing: Licensing,
    clock: Clock,
    kind: JobKind,
    *,
    model_kinds: Iterable[ModelKind] = (),
    action: str,
) -> Admission:
    """Check, before a run is written, that a license allows it and a server is free.

    Raises:
        LicenseScopeError: No license in force grants the scope (names it, and how
            to get one).
        ServerLimitError: The license's servers are all taken (names the holders).
    """
    scope = required_scope(kind, model_kinds)
    grant = licensing.grant(store, clock.now())
    if scope not in grant.scopes:
        raise LicenseScopeError(scope, action, why_missing(grant, scope))
    class_limit, total_limit, license_id = grant.limit_for(scope, server_class(kind))
    admission = Admission(scope, server_class(kind), class_limit, total_limit, license_id)
    _check_limits(admission, active_runs(store), exclude=None)
    return admission


def confirm_admission(store: LicenseRecords, admission: Admission, run: Run, clock: Clock) -> None:
    """After the run is written: re-count, and refuse it if others got in first.

    Two starts at once may both pass :func:`admit_run`. Each then counts the
    active runs again with its own written; runs rank by (created_at, id), and a
    run that ranks past a limit is marked failed with the reason and refused, so
    the two agree on which one stays. (Runs whose clocks read before their
    write landed late can still slip past by one: the window is the time between
    reading the clock and the write.)

    Raises:
        ServerLimitError: This run lost; it is stored as failed with the reason.
    """
    if admission.class_limit is None and admission.total_limit is None:
        return
    ahead = [r for r in active_runs(store) if (r.created_at, r.id) < (run.created_at, run.id)]
    try:
        _check_limits(admission, ahead, exclude=run.id)
    except ServerLimitError as exc:
        mark_finished(store, run.id, RunStatus.FAILED, at=clock.now(), reason=f"refused: {exc}")
        raise


def runner_limits(grant: Grant) -> dict[JobKind, int]:
    """Jobs of each kind a local runner runs at once under ``grant``: its server limits
    (1 where the license sets none, as the runner does by default)."""
    training = grant.limit_for(Scope.TRAINING, ServerClass.TRAINING)[0]
    other = grant.limit_for(Scope.INFERENCE, ServerClass.PREANNOTATION)[0]
    return {
        JobKind.TRAIN: max(1, training or 1),
        JobKind.PREANNOTATE: max(1, other or 1),
        JobKind.OCR: max(1, other or 1),
    }


def active_runs(store: RunStore) -> list[Run]:
    """Runs that hold or wait for a server: queued and running, oldest first."""
    runs: list[Run] = []
    for status in (RunStatus.QUEUED, RunStatus.RUNNING):
        token: str | None = None
        while True:
            page = store.list_runs_by_status(status, limit=MAX_PAGE_SIZE, token=token)
            runs.extend(page.items)
            if (token := page.next_token) is None:
                break
    return sorted(runs, key=lambda r: (r.created_at, r.id))


def _check_limits(admission: Admission, active: Sequence[Run], *, exclude: str | None) -> None:
    others = [r for r in active if r.id != exclude]
    same = [r for r in others if server_class(r.kind) is admission.server_class]
    what = f"{admission.server_class.value} server(s)"
    if admission.class_limit is not None and len(same) >= admission.class_limit:
        raise ServerLimitError(
            what, admission.class_limit, [r.id for r in same], admission.license_id
        )
    if admission.total_limit is not None and len(others) >= admission.total_limit:
        raise ServerLimitError(
            "server(s)", admission.total_limit, [r.id for r in others], admission.license_id
        )


# --- the cost banner's cached state ---------------------------------------------------


class GrantCache:
    """The grant, kept for a while: what every response's cost banner header reads.

    Read again after ``ttl_seconds``, at the earliest expiry of a license in force,
    or after :meth:`invalidate` (the license routes call it on every change).

    Args:
        load: Reads the grant from the store.
        ttl_seconds: How long a read is kept.
        clock: Now, to stop at expiries.
    """

    def __init__(self, load: Callable[[], Grant], ttl_seconds: float, clock: Clock) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._grant: Grant | None = None
        self._until = 0.0
        self._until_time: datetime | None = None

    def get(self) -> Grant:
        """The grant, read again when stale."""
        with self._lock:
            grant, until, until_time = self._grant, self._until, self._until_time
        if (
            grant is not None
            and time.monotonic() < until
            and (until_time is None or self._clock.now() < until_time)
        ):
            return grant
        grant = self._load()
        expiries = [lic.expires_at for lic in grant.licenses]
        with self._lock:
            self._grant = grant
            self._until = time.monotonic() + self._ttl
            self._until_time = min(expiries) if expiries else None
        return grant

    def fresh(self) -> bool:
        """Whether :meth:`get` answers without reading the store."""
        with self._lock:
            return (
                self._grant is not None
                and time.monotonic() < self._until
                and (self._until_time is None or self._clock.now() < self._until_time)
            )

    def invalidate(self) -> None:
        """Forget the grant: the next :meth:`get` reads the store."""
        with self._lock:
            self._grant = None


# --- helpers ---------------------------------------------------------------------------


def _all_licenses(store: LicenseStore) -> list[LicenseRecord]:
    records: list[LicenseRecord] = []
    token: str | None = None
    while True:
        page = store.list_licenses(limit=MAX_PAGE_SIZE, token=token)
        records.extend(page.items)
        if (token := page.next_token) is None:
            return records


def _parsed(record: LicenseRecord) -> License | None:
    try:
        return read_document(record.document)[0]
    except LicenseError:
        return None
