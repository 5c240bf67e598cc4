"""License documents: signature, tampering, dates, who may sign what, scopes and limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from licensing_kit import INSTANCE_ID, PRODUCT_CODE, vendor_license, vendor_signer

from annotrain.adapters.ed25519 import Ed25519Signer, ed25519_check, parse_public_keys
from annotrain.domain.licenses import (
    COST_BANNER,
    License,
    LicenseError,
    LicenseType,
    Scope,
    ServerClass,
    ServerLimits,
    Signature,
    TrustedKeys,
    grant_from,
    judge,
    payg_license,
    read_document,
    render_document,
    renewal_due,
    required_scope,
    signed_message,
    verify,
)
from annotrain.domain.records import JobKind
from annotrain.domain.training_plan import ModelKind

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
VENDOR = vendor_signer()
KEYS = TrustedKeys(vendor={VENDOR.key_id: VENDOR.public_key})


def _payg(signer: Ed25519Signer, instance_id: str = INSTANCE_ID) -> str:
    lic = payg_license(
        instance_id=instance_id, product_code=PRODUCT_CODE, issued_at=NOW,
        validity=timedelta(days=30), limits=ServerLimits(3, 2),
    )  # fmt: skip
    return render_document(lic, Signature(signer.key_id, signer.sign(signed_message(lic))))


def test_a_vendor_signed_license_verifies_and_reads_back_the_same() -> None:
    document = vendor_license(VENDOR, issued_at=NOW, limits=ServerLimits(2, 1, None))
    lic = verify(document, KEYS, ed25519_check, NOW)
    assert lic.type is LicenseType.FLOATING
    assert lic.expires_at == NOW + timedelta(days=30)
    assert read_document(document)[0] == lic


def test_every_changed_byte_makes_the_document_invalid() -> None:
    document = vendor_license(VENDOR, issued_at=NOW).encode("utf-8")
    for position in range(len(document)):
        for replacement in {ord("0"), ord("A"), ord(" ")} - {document[position]}:
            changed = document[:position] + bytes([replacement]) + document[position + 1 :]
            with pytest.raises(LicenseError):
                verify(changed, KEYS, ed25519_check, NOW)


def test_a_changed_payload_re_encoded_canonically_fails_the_signature() -> None:
    value = json.loads(vendor_license(VENDOR, issued_at=NOW))
    value["license"]["expires_at"] = "2099-01-01T00:00:00Z"
    forged = json.dumps(value, sort_keys=True, separators=(",", ":"))
    with pytest.raises(LicenseError, match="signature does not match"):
        verify(forged, KEYS, ed25519_check, NOW)


def test_an_expired_license_is_refused_with_its_date() -> None:
    document = vendor_license(VENDOR, issued_at=NOW - timedelta(days=40))
    with pytest.raises(LicenseError, match="expired on 2026-11-11T12:00:00Z") as caught:
        verify(document, KEYS, ed25519_check, NOW)
    assert caught.value.field == "expires_at"


def test_a_license_not_valid_yet_is_refused_with_its_start() -> None:
    document = vendor_license(VENDOR, issued_at=NOW + timedelta(days=1))
    with pytest.raises(LicenseError, match="not valid before 2026-11-22T12:00:00Z"):
        verify(document, KEYS, ed25519_check, NOW)


def test_a_license_issued_within_the_clock_skew_is_valid() -> None:
    verify(vendor_license(VENDOR, issued_at=NOW + timedelta(minutes=2)), KEYS, ed25519_check, NOW)


def test_a_key_the_lab_does_not_trust_is_refused() -> None:
    stranger = vendor_signer("someone-else")
    with pytest.raises(LicenseError, match="not a vendor key this lab trusts"):
        verify(vendor_license(stranger, issued_at=NOW), KEYS, ed25519_check, NOW)


def test_a_license_signed_by_another_key_under_the_vendors_id_is_refused() -> None:
    impostor = Ed25519Signer.generate(VENDOR.key_id)
    with pytest.raises(LicenseError, match="signature does not match"):
        verify(vendor_license(impostor, issued_at=NOW), KEYS, ed25519_check, NOW)


def test_payg_is_valid_only_with_this_instances_key_and_id() -> None:
    instance = Ed25519Signer.generate()
    keys = TrustedKeys(instance=(instance.key_id, instance.public_key), instance_id=INSTANCE_ID)
    lic = verify(_payg(instance), keys, ed25519_check, NOW)
    assert lic.instance is not None
    assert lic.instance.product_code == PRODUCT_CODE
    other_instance = TrustedKeys(instance=keys.instance, instance_id="i-0fffffffffffffff0")
    with pytest.raises(LicenseError, match="bound to instance"):
        verify(_payg(instance), other_instance, ed25519_check, NOW)
    with pytest.raises(LicenseError, match="another instance's key"):
        verify(_payg(Ed25519Signer.generate()), keys, ed25519_check, NOW)
    with pytest.raises(LicenseError, match="no instance key"):
        verify(_payg(instance), TrustedKeys(instance_id=INSTANCE_ID), ed25519_check, NOW)


def test_the_vendor_key_cannot_sign_payg_and_an_instance_key_cannot_sign_floating() -> None:
    instance = Ed25519Signer.generate()
    keys = TrustedKeys(
        vendor={VENDOR.key_id: VENDOR.public_key},
        instance=(instance.key_id, instance.public_key),
        instance_id=INSTANCE_ID,
    )
    with pytest.raises(LicenseError, match="another instance's key"):
        verify(_payg(VENDOR), keys, ed25519_check, NOW)
    with pytest.raises(LicenseError, match="signed by the vendor"):
        verify(vendor_license(instance, issued_at=NOW), keys, ed25519_check, NOW)


def test_payg_needs_a_product_code() -> None:
    with pytest.raises(LicenseError, match="product code") as caught:
        payg_license(
            instance_id=INSTANCE_ID, product_code="", issued_at=NOW,
            validity=timedelta(days=30), limits=ServerLimits(),
        )  # fmt: skip
    assert caught.value.field == "product_code"


def test_floating_runs_one_server_at_a_time_whatever_it_says() -> None:
    lic = License("f", LicenseType.FLOATING, frozenset(Scope), NOW, NOW + timedelta(days=1),
                  ServerLimits(5, 5, 5))  # fmt: skip
    assert lic.effective_limits == ServerLimits(1, 1, 1)


def test_visual_ner_and_ocr_need_the_ocr_scopes() -> None:
    assert required_scope(JobKind.TRAIN, [ModelKind.NER]) is Scope.TRAINING
    assert required_scope(JobKind.TRAIN, [ModelKind.VISUAL_NER]) is Scope.OCR_TRAINING
    assert required_scope(JobKind.PREANNOTATE, [ModelKind.NER]) is Scope.INFERENCE
    assert required_scope(JobKind.PREANNOTATE, [ModelKind.VISUAL_NER]) is Scope.OCR_INFERENCE
    assert required_scope(JobKind.OCR) is Scope.OCR_INFERENCE


def test_the_default_applies_only_with_no_license_stored_and_not_on_an_ami() -> None:
    assert grant_from([], default_allowed=True).scopes == frozenset(Scope)
    assert grant_from([], default_allowed=False).scopes == frozenset()
    expired = vendor_license(VENDOR, issued_at=NOW - timedelta(days=40))
    grant = grant_from(judge([("lic-1", expired)], KEYS, ed25519_check, NOW), default_allowed=True)
    assert not grant.default
    assert grant.scopes == frozenset()
    assert "expired on" in grant.problems["lic-1"]


def test_the_cost_banner_shows_exactly_while_payg_is_in_force() -> None:
    instance = Ed25519Signer.generate()
    keys = TrustedKeys(instance=(instance.key_id, instance.public_key), instance_id=INSTANCE_ID)
    payg = grant_from(
        judge([("p", _payg(instance))], keys, ed25519_check, NOW), default_allowed=False
    )
    assert payg.cost_banner == COST_BANNER
    later = NOW + timedelta(days=31)
    lapsed = grant_from(judge([("p", _payg(instance))], keys, ed25519_check, later),
                        default_allowed=False)  # fmt: skip
    assert lapsed.cost_banner is None
    assert grant_from([], default_allowed=True).cost_banner is None


def test_limits_come_from_the_most_generous_license_granting_the_scope() -> None:
    small = vendor_license(VENDOR, license_id="a", kind=LicenseType.TRIAL, issued_at=NOW,
                           limits=ServerLimits(1, 1))  # fmt: skip
    big = vendor_license(
        VENDOR, license_id="b", kind=LicenseType.TRIAL, issued_at=NOW,
        scopes=frozenset({Scope.TRAINING}), limits=ServerLimits(4, None),
    )  # fmt: skip
    grant = grant_from(judge([("a", small), ("b", big)], KEYS, ed25519_check, NOW),
                       default_allowed=True)  # fmt: skip
    assert grant.limit_for(Scope.TRAINING, ServerClass.TRAINING) == (4, None, "b")
    assert grant.limit_for(Scope.INFERENCE, ServerClass.PREANNOTATION) == (1, None, "a")


def test_renewal_is_due_within_the_window_and_not_before() -> None:
    lic = License("p", LicenseType.PAYG, frozenset(Scope), NOW, NOW + timedelta(days=30))
    assert not renewal_due(lic, NOW + timedelta(days=22), timedelta(days=7))
    assert renewal_due(lic, NOW + timedelta(days=23), timedelta(days=7))
    assert renewal_due(None, NOW, timedelta(days=7))


def test_vendor_keys_from_the_settings_must_be_32_bytes_under_an_id() -> None:
    import base64

    raw = base64.b64encode(VENDOR.public_key).decode()
    assert parse_public_keys({"v1": raw}) == {"v1": VENDOR.public_key}
    with pytest.raises(LicenseError, match="32 raw bytes"):
        parse_public_keys({"v1": "AAAA"})
    with pytest.raises(LicenseError, match="must not start with"):
        parse_public_keys({"instance-x": raw})
