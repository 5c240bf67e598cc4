"""License documents: their format, the canonical bytes that are signed, and the rules.

A license document is JSON of two parts::

    {"license": {"format": 1, "id": "…", "type": "PAYG"|"FLOATING"|"TRIAL",
                 "scopes": ["training", "inference", "ocr:training", "ocr:inference"],
                 "issued_at": "2026-01-01T00:00:00Z", "expires_at": "2026-02-01T00:00:00Z",
                 "limits": {"training_servers": 2, "preannotation_servers": 2, "servers": null},
                 "instance": {"instance_id": "i-…", "product_code": "…"} | null,
                 "licensee": "…"},
     "signature": {"algorithm": "Ed25519", "key_id": "…", "value": "<base64, 64 bytes>"}}

The signature is Ed25519 over ``SIGNED_PREFIX`` + the canonical JSON of the
``license`` part (keys sorted, no spaces, UTF-8). A document is accepted only in
its canonical form (the whole document encoded the same way; surrounding
whitespace aside), so any changed byte either breaks the JSON, the canonical form,
the payload (and with it the signature) or the signature itself.

Verifying the signature takes cryptography, which the domain does not import: the
rules here take a :class:`SignatureCheck` (the ``Ed25519Verifier`` adapter).
Everything else — which key may sign which type, validity window, instance
binding, scopes and server limits — is decided here. See docs/licensing.md for the
trust model.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from annotrain.domain.errors import AnnotrainError
from annotrain.domain.records import JobKind
from annotrain.domain.training_plan import ModelKind

FORMAT_VERSION = 1
SIGNED_PREFIX = b"annotrain-license-v1\n"
ALGORITHM = "Ed25519"
#: Clocks differ a little between the machine that issues and the one that checks.
CLOCK_SKEW = timedelta(minutes=5)
#: The largest document accepted (a license is well under 2 KiB).
MAX_DOCUMENT_BYTES = 16 * 1024
#: Key ids of instance keys start so; vendor key ids must not.
INSTANCE_KEY_PREFIX = "instance-"

#: The vendor's public keys (key id → raw 32-byte Ed25519 key, base64), trusted to
#: sign FLOATING and TRIAL licenses. The release adds the vendor's key here; its
#: private half is never in this repository. More keys can be trusted through
#: ``ANNOTRAIN_VENDOR_PUBLIC_KEYS`` (a staging issuer, tests).
VENDOR_PUBLIC_KEYS: Mapping[str, str] = {}

#: What the cost banner says, word for word, whenever a PAYG license is in force.
COST_BANNER = "Continuous Server Usage Incurs Costs! Please check the deployed server."


class LicenseType(StrEnum):
    """Who issued a license, and how it is paid."""

    PAYG = "PAYG"  # generated on a Marketplace instance, bound to it; AWS bills by the hour
    FLOATING = "FLOATING"  # issued by the vendor; one server at a time
    TRIAL = "TRIAL"  # issued by the vendor; limited in time


class Scope(StrEnum):
    """What a license allows."""

    TRAINING = "training"
    INFERENCE = "inference"
    OCR_TRAINING = "ocr:training"
    OCR_INFERENCE = "ocr:inference"


ALL_SCOPES = frozenset(Scope)


class LicenseError(AnnotrainError):
    """A license document that cannot be used; says why and what to do (HTTP 422)."""

    def __init__(self, message: str, *, field: str = "document") -> None:
        self.field = field
        super().__init__(message)


class LicenseScopeError(AnnotrainError):
    """No license in force allows what was asked (HTTP 403); names the scope and the fix."""

    def __init__(self, scope: Scope, action: str, why: str) -> None:
        self.scope = scope
        super().__init__(
            f"{action} needs a license with the {scope.value!r} scope: {why}. Import a "
            f"license that grants {scope.value!r} (POST /api/v1/licenses, admins), or ask "
            "your vendor for one"
        )


class ServerLimitError(AnnotrainError):
    """Starting one more server would go past the license's limit (HTTP 409)."""

    def __init__(self, what: str, limit: int, holders: Sequence[str], license_id: str) -> None:
        self.limit = limit
        self.holders = tuple(holders)
        held = ", ".join(self.holders) if self.holders else "none"
        super().__init__(
            f"license {license_id!r} allows {limit} {what} at a time and they are all taken "
            f"(by run(s): {held}); wait for one to end, or stop one "
            "(POST /api/v1/servers/{run_id}/stop)"
        )


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """How many servers may run at once; None means no limit from the license.

    Attributes:
        training_servers: Training jobs, queued or running.
        preannotation_servers: Pre-annotation (and OCR) jobs, queued or running.
        servers: All of them together (a FLOATING license: 1).
    """

    training_servers: int | None = None
    preannotation_servers: int | None = None
    servers: int | None = None

    def to_json(self) -> dict[str, int | None]:
        """The limits as the document holds them."""
        return {
            "training_servers": self.training_servers,
            "preannotation_servers": self.preannotation_servers,
            "servers": self.servers,
        }


@dataclass(frozen=True, slots=True)
class InstanceBinding:
    """The EC2 instance a PAYG license belongs to.

    Attributes:
        instance_id: ``i-…`` from the instance identity document.
        product_code: The Marketplace product code the instance was launched from.
    """

    instance_id: str
    product_code: str


@dataclass(frozen=True, slots=True)
class License:
    """The content of a license document (what the signature covers).

    Attributes:
        id: Unique; what the routes name it by.
        type: PAYG, FLOATING or TRIAL.
        scopes: What it allows.
        issued_at: Valid from (not before, give or take CLOCK_SKEW).
        expires_at: Valid until (exclusive).
        limits: Servers at once.
        instance: The instance a PAYG license is bound to (None for the others).
        licensee: Who it was issued to (for people).
    """

    id: str
    type: LicenseType
    scopes: frozenset[Scope]
    issued_at: datetime
    expires_at: datetime
    limits: ServerLimits = field(default_factory=ServerLimits)
    instance: InstanceBinding | None = None
    licensee: str = ""

    def to_json(self) -> dict[str, Any]:
        """The ``license`` part of the document."""
        return {
            "format": FORMAT_VERSION,
            "id": self.id,
            "type": self.type.value,
            "scopes": sorted(s.value for s in self.scopes),
            "issued_at": _time_text(self.issued_at),
            "expires_at": _time_text(self.expires_at),
            "limits": self.limits.to_json(),
            "instance": None
            if self.instance is None
            else {
                "instance_id": self.instance.instance_id,
                "product_code": self.instance.product_code,
            },
            "licensee": self.licensee,
        }

    @property
    def effective_limits(self) -> ServerLimits:
        """The limits as enforced: a FLOATING license runs one server at a time."""
        if self.type is LicenseType.FLOATING:
            return ServerLimits(
                _min(self.limits.training_servers, 1), _min(self.limits.preannotation_servers, 1), 1
            )
        return self.limits


@dataclass(frozen=True, slots=True)
class Signature:
    """Who signed, and the signature.

    Attributes:
        key_id: Which key (a vendor key id, or ``instance-<fingerprint>``).
        value: The 64 signature bytes.
    """

    key_id: str
    value: bytes


#: ``check(public_key, message, signature) -> bool``: an Ed25519 verification.
SignatureCheck = Callable[[bytes, bytes, bytes], bool]


@dataclass(frozen=True, slots=True)
class TrustedKeys:
    """The public keys a lab trusts, and for what.

    Attributes:
        vendor: Vendor key id → raw public key: may sign FLOATING and TRIAL.
        instance: This instance's own key (id, raw public key): may sign PAYG, and
            only licenses bound to ``instance_id``; None where there is none.
        instance_id: The instance this lab runs on ("" when unknown: no PAYG is valid).
    """

    vendor: Mapping[str, bytes] = field(default_factory=dict)
    instance: tuple[str, bytes] | None = None
    instance_id: str = ""


def instance_key_id(public_key: bytes) -> str:
    """The key id of an instance key: ``instance-`` and 16 hex digits of its SHA-256."""
    return INSTANCE_KEY_PREFIX + hashlib.sha256(public_key).hexdigest()[:16]


def signed_message(lic: License) -> bytes:
    """The bytes the signature covers."""
    return SIGNED_PREFIX + _canonical(lic.to_json())


def render_document(lic: License, signature: Signature) -> str:
    """The document, in the canonical form :func:`read_document` accepts."""
    return _canonical(
        {
            "license": lic.to_json(),
            "signature": {
                "algorithm": ALGORITHM,
                "key_id": signature.key_id,
                "value": base64.b64encode(signature.value).decode("ascii"),
            },
        }
    ).decode("utf-8")


def read_document(document: str | bytes) -> tuple[License, Signature]:
    """Parse a document; checks its shape and canonical form, not its signature.

    Raises:
        LicenseError: What is wrong, and where.
    """
    if isinstance(document, bytes):
        if len(document) > MAX_DOCUMENT_BYTES:
            raise LicenseError(f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            document = document.decode("utf-8")
        except UnicodeDecodeError:
            raise LicenseError(
                "the document is not UTF-8 text: import the file as issued"
            ) from None
    text = document.strip()
    if len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise LicenseError(f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise LicenseError("the document is not JSON: import the file as issued") from None
    if not isinstance(value, dict) or set(value) != {"license", "signature"}:
        raise LicenseError('the document must be {"license": {…}, "signature": {…}}')
    lic = _license_from(value["license"])
    signature = _signature_from(value["signature"])
    if render_document(lic, signature) != text:
        raise LicenseError(
            "the document was changed after it was signed (it is not in the form it was "
            "issued in): import the file as issued"
        )
    return lic, signature


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the rules say of one stored document.

    Attributes:
        license_id: The record's id.
        license: The parsed license, when it parsed.
        problem: Why it is not in force; None when it is.
    """

    license_id: str
    license: License | None
    problem: str | None = None

    @property
    def in_force(self) -> bool:
        """Valid now: signature, signer, binding and dates all hold."""
        return self.problem is None and self.license is not None


def verify(
    document: str | bytes, keys: TrustedKeys, check: SignatureCheck, now: datetime
) -> License:
    """The license, if it is in force now.

    Raises:
        LicenseError: Unparseable or changed, signed by a key not trusted for its
            type, bound to another instance, not valid yet, or expired (with the date).
    """
    lic, signature = read_document(document)
    check_signature(lic, signature, keys, check)
    check_dates(lic, now)
    return lic


def check_signature(
    lic: License, signature: Signature, keys: TrustedKeys, check: SignatureCheck
) -> None:
    """Refuse a license whose signer may not sign its type, or whose signature fails.

    Raises:
        LicenseError: Naming the reason.
    """
    if lic.type is LicenseType.PAYG:
        if keys.instance is None:
            raise LicenseError(
                "a PAYG license is generated on its Marketplace instance, and this lab has "
                "no instance key: it is not running as a Marketplace instance"
            )
        key_id, public_key = keys.instance
        if signature.key_id != key_id:
            raise LicenseError(
                "this PAYG license was signed by another instance's key: a PAYG license "
                "only works where it was generated (a new one is generated at first boot)"
            )
        assert lic.instance is not None  # _license_from requires it for PAYG
        if lic.instance.instance_id != keys.instance_id:
            raise LicenseError(
                f"this PAYG license is bound to instance {lic.instance.instance_id!r}, not "
                f"to this one ({keys.instance_id or 'unknown'})"
            )
    else:
        vendor_key = keys.vendor.get(signature.key_id)
        if vendor_key is None:
            raise LicenseError(
                f"a {lic.type.value} license must be signed by the vendor; key "
                f"{signature.key_id!r} is not a vendor key this lab trusts"
            )
        public_key = vendor_key
    if not check(public_key, signed_message(lic), signature.value):
        raise LicenseError(
            "the signature does not match: the document was changed after it was signed, "
            "or it was not signed by the key it names"
        )


def check_dates(lic: License, now: datetime) -> None:
    """Refuse a license that is not valid yet, or has expired (saying when).

    Raises:
        LicenseError: On ``expires_at`` or ``issued_at``.
    """
    if now >= lic.expires_at:
        raise LicenseError(
            f"license {lic.id!r} expired on {_time_text(lic.expires_at)}: renew it "
            "(PAYG: annotrain licenses renew) or import a current one",
            field="expires_at",
        )
    if now + CLOCK_SKEW < lic.issued_at:
        raise LicenseError(
            f"license {lic.id!r} is not valid before {_time_text(lic.issued_at)}; check "
            "this machine's clock, or wait",
            field="issued_at",
        )


def judge(
    records: Iterable[tuple[str, str]], keys: TrustedKeys, check: SignatureCheck, now: datetime
) -> list[Verdict]:
    """A verdict per stored (id, document), in the order given."""
    verdicts: list[Verdict] = []
    for license_id, document in records:
        try:
            lic, signature = read_document(document)
        except LicenseError as exc:
            verdicts.append(Verdict(license_id, None, str(exc)))
            continue
        try:
            check_signature(lic, signature, keys, check)
            check_dates(lic, now)
        except LicenseError as exc:
            verdicts.append(Verdict(license_id, lic, str(exc)))
            continue
        verdicts.append(Verdict(license_id, lic))
    return verdicts


# --- what the licenses in force allow ------------------------------------------------


class ServerClass(StrEnum):
    """Which limit a job counts against."""

    TRAINING = "training"
    PREANNOTATION = "preannotation"


def server_class(kind: JobKind) -> ServerClass:
    """Training jobs count as training servers; pre-annotation and OCR as the other."""
    return ServerClass.TRAINING if kind is JobKind.TRAIN else ServerClass.PREANNOTATION


def required_scope(kind: JobKind, model_kinds: Iterable[ModelKind] = ()) -> Scope:
    """The scope a job needs: Visual NER (and OCR) needs the ``ocr:`` one."""
    visual = kind is JobKind.OCR or ModelKind.VISUAL_NER in set(model_kinds)
    if kind is JobKind.TRAIN:
        return Scope.OCR_TRAINING if visual else Scope.TRAINING
    return Scope.OCR_INFERENCE if visual else Scope.INFERENCE


@dataclass(frozen=True, slots=True)
class Grant:
    """What the lab may do now, from the licenses in force.

    Attributes:
        licenses: The licenses in force.
        default: True when no license is stored and the single-node default applies
            (every scope, no server limit from a license).
        problems: Why stored licenses are not in force (id → reason).
    """

    licenses: tuple[License, ...] = ()
    default: bool = False
    problems: Mapping[str, str] = field(default_factory=dict)

    @property
    def scopes(self) -> frozenset[Scope]:
        """Every scope some license in force grants (all under the default)."""
        if self.default:
            return ALL_SCOPES
        return frozenset(s for lic in self.licenses for s in lic.scopes)

    @property
    def payg(self) -> License | None:
        """The PAYG license in force (the one expiring last), if any."""
        payg = [lic for lic in self.licenses if lic.type is LicenseType.PAYG]
        return max(payg, key=lambda lic: lic.expires_at) if payg else None

    @property
    def cost_banner(self) -> str | None:
        """The cost banner while a PAYG license is in force."""
        return COST_BANNER if self.payg is not None else None

    def granting(self, scope: Scope) -> list[License]:
        """The licenses in force that grant ``scope``."""
        return [lic for lic in self.licenses if scope in lic.scopes]

    def limit_for(self, scope: Scope, cls: ServerClass) -> tuple[int | None, int | None, str]:
        """(class limit, total limit, license id) under the most generous license with ``scope``.

        None means unlimited. Under the default there is no limit.
        """
        if self.default:
            return None, None, "default"
        best: tuple[float, float, str] | None = None
        for lic in self.granting(scope):
            limits = lic.effective_limits
            own = (
                limits.training_servers
                if cls is ServerClass.TRAINING
                else limits.preannotation_servers
            )
            candidate = (_inf(own), _inf(limits.servers), lic.id)
            if best is None or candidate[:2] > best[:2]:
                best = candidate
        if best is None:
            return 0, 0, ""
        return _finite(best[0]), _finite(best[1]), best[2]

    def summary(self) -> str:
        """One line for the system page."""
        if self.default:
            return "single-node default license (all scopes; no license imported)"
        if not self.licenses:
            return "no license in force"
        parts = [
            f"{lic.type.value} {lic.id} until {_time_text(lic.expires_at)}"
            for lic in sorted(self.licenses, key=lambda lic: lic.id)
        ]
        return "; ".join(parts)


def grant_from(verdicts: Sequence[Verdict], *, default_allowed: bool) -> Grant:
    """The grant of stored licenses; the default only with none stored and it allowed."""
    in_force = tuple(v.license for v in verdicts if v.in_force and v.license is not None)
    problems = {v.license_id: v.problem for v in verdicts if v.problem is not None}
    return Grant(in_force, default=default_allowed and not verdicts, problems=problems)


def why_missing(grant: Grant, scope: Scope) -> str:
    """Why no license grants ``scope``, for the refusal's message."""
    if grant.licenses:
        held = ", ".join(sorted(s.value for s in grant.scopes)) or "none"
        return f"the licenses in force grant only: {held}"
    if grant.problems:
        first_id, first = sorted(grant.problems.items())[0]
        return f"no license is in force (license {first_id!r}: {first})"
    return "no license is in force"


# --- PAYG on a Marketplace instance --------------------------------------------------


def payg_license(
    *,
    instance_id: str,
    product_code: str,
    issued_at: datetime,
    validity: timedelta,
    limits: ServerLimits,
) -> License:
    """The PAYG license of an instance: every scope, bound to it, for ``validity``.

    Raises:
        LicenseError: No instance id or product code (not a Marketplace launch), or
            a validity or limit that cannot be.
    """
    if not instance_id.startswith("i-"):
        raise LicenseError(f"{instance_id!r} is not an EC2 instance id", field="instance_id")
    if not product_code:
        raise LicenseError(
            "no Marketplace product code: a PAYG license is only generated on an instance "
            "launched from the Marketplace AMI",
            field="product_code",
        )
    if validity <= CLOCK_SKEW:
        raise LicenseError("must be longer than a few minutes", field="validity")
    for name, value in limits.to_json().items():
        if value is not None and value < 1:
            raise LicenseError(f"{name} must be at least 1", field="limits")
    stamp = issued_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return License(
        # Not the instance id itself: it is also the admin's first API token, and a
        # license id shows up in logs and listings.
        id=f"payg-{hashlib.blake2b(instance_id.encode(), digest_size=6).hexdigest()}-{stamp}",
        type=LicenseType.PAYG,
        scopes=ALL_SCOPES,
        issued_at=_whole_seconds(issued_at),
        expires_at=_whole_seconds(issued_at + validity),
        limits=limits,
        instance=InstanceBinding(instance_id, product_code),
        licensee=f"AWS Marketplace instance {instance_id}",
    )


def renewal_due(current: License | None, now: datetime, renew_before: timedelta) -> bool:
    """Whether a new PAYG license should be generated now: none, or the current one
    expires within ``renew_before``."""
    return current is None or current.expires_at - now <= renew_before


# --- parsing helpers ---------------------------------------------------------------


def _license_from(value: Any) -> License:
    if not isinstance(value, dict):
        raise LicenseError('"license" must be an object')
    known = {"format", "id", "type", "scopes", "issued_at", "expires_at", "limits", "instance",
             "licensee"}  # fmt: skip
    unknown = sorted(set(value) - known)
    if unknown:
        raise LicenseError(f"unknown field(s) in the license: {', '.join(unknown)}")
    missing = sorted(known - set(value))
    if missing:
        raise LicenseError(f"the license lacks: {', '.join(missing)}")
    if value["format"] != FORMAT_VERSION or isinstance(value["format"], bool):
        raise LicenseError(
            f"license format {value['format']!r} is not known here (this lab reads format "
            f"{FORMAT_VERSION}): upgrade annotrain",
            field="format",
        )
    license_id = value["id"]
    if not isinstance(license_id, str) or not 1 <= len(license_id) <= 200:
        raise LicenseError("id must be a string of 1 to 200 characters", field="id")
    try:
        kind = LicenseType(value["type"])
    except ValueError:
        raise LicenseError(
            f"type {value['type']!r} is not one of {', '.join(t.value for t in LicenseType)}",
            field="type",
        ) from None
    scopes = value["scopes"]
    if not isinstance(scopes, list) or not scopes:
        raise LicenseError("scopes must be a non-empty list", field="scopes")
    try:
        parsed_scopes = frozenset(Scope(s) for s in scopes)
    except ValueError:
        raise LicenseError(
            f"scopes may only be {', '.join(s.value for s in Scope)}", field="scopes"
        ) from None
    if sorted(scopes) != sorted(s.value for s in parsed_scopes):
        raise LicenseError("scopes must not repeat", field="scopes")
    issued_at = _time_from(value["issued_at"], "issued_at")
    expires_at = _time_from(value["expires_at"], "expires_at")
    if expires_at <= issued_at:
        raise LicenseError("expires_at must be after issued_at", field="expires_at")
    licensee = value["licensee"]
    if not isinstance(licensee, str) or len(licensee) > 500:
        raise LicenseError("licensee must be a string of at most 500 characters", field="licensee")
    instance = _instance_from(value["instance"])
    if (kind is LicenseType.PAYG) != (instance is not None):
        raise LicenseError(
            "a PAYG license is bound to an instance, and only a PAYG license is",
            field="instance",
        )
    return License(
        license_id, kind, parsed_scopes, issued_at, expires_at,
        _limits_from(value["limits"]), instance, licensee,
    )  # fmt: skip


def _limits_from(value: Any) -> ServerLimits:
    names = ("training_servers", "preannotation_servers", "servers")
    if not isinstance(value, dict) or set(value) != set(names):
        raise LicenseError(f"limits must be an object of {', '.join(names)}", field="limits")
    for name in names:
        limit = value[name]
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or not 1 <= limit <= 10_000):  # fmt: skip
            raise LicenseError(f"limits.{name} must be null or 1 to 10000", field="limits")
    return ServerLimits(value["training_servers"], value["preannotation_servers"], value["servers"])


def _instance_from(value: Any) -> InstanceBinding | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"instance_id", "product_code"}:
        raise LicenseError("instance must be null or {instance_id, product_code}", field="instance")
    instance_id, product_code = value["instance_id"], value["product_code"]
    if not (
        isinstance(instance_id, str) and instance_id.startswith("i-") and len(instance_id) < 64
    ):
        raise LicenseError("instance.instance_id must be an EC2 instance id", field="instance")
    if not (isinstance(product_code, str) and 0 < len(product_code) < 256):
        raise LicenseError("instance.product_code must be a product code", field="instance")
    return InstanceBinding(instance_id, product_code)


def _signature_from(value: Any) -> Signature:
    if not isinstance(value, dict) or set(value) != {"algorithm", "key_id", "value"}:
        raise LicenseError('"signature" must be {algorithm, key_id, value}', field="signature")
    if value["algorithm"] != ALGORITHM:
        raise LicenseError(f"the signature algorithm must be {ALGORITHM}", field="signature")
    key_id, text = value["key_id"], value["value"]
    if not isinstance(key_id, str) or not 1 <= len(key_id) <= 200:
        raise LicenseError("signature.key_id must be a string", field="signature")
    if not isinstance(text, str):
        raise LicenseError("signature.value must be base64 text", field="signature")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise LicenseError("signature.value is not base64", field="signature") from None
    # Unused bits in the last base64 digit could change without changing the bytes.
    if len(raw) != 64 or base64.b64encode(raw).decode("ascii") != text:
        raise LicenseError("signature.value is not a 64-byte Ed25519 signature", field="signature")
    return Signature(key_id, raw)


def _time_from(value: Any, name: str) -> datetime:
    if not isinstance(value, str) or not value.endswith("Z"):
        raise LicenseError(f"{name} must be UTC time text like 2026-01-31T00:00:00Z", field=name)
    try:
        parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise LicenseError(
            f"{name} must be UTC time text like 2026-01-31T00:00:00Z", field=name
        ) from None
    return parsed


def _time_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _whole_seconds(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(microsecond=0)


def _canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _min(value: int | None, cap: int) -> int:
    return cap if value is None else min(value, cap)


def _inf(value: int | None) -> float:
    return math.inf if value is None else float(value)


def _finite(value: float) -> int | None:
    return None if math.isinf(value) else int(value)
