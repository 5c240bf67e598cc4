"""Ed25519 with ``cryptography``: verifying license signatures, the instance key, and
the lab's :class:`~annotrain.services.licenses.Licensing` built from the settings.

The instance key signs this instance's PAYG licenses. It is made on first use
(first boot on a Marketplace instance), kept as PKCS#8 PEM in a file only its
owner may read (0600, written whole or not at all), and never logged.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from annotrain.domain.licenses import (
    INSTANCE_KEY_PREFIX,
    VENDOR_PUBLIC_KEYS,
    License,
    LicenseError,
    ServerLimits,
    instance_key_id,
)
from annotrain.services.licenses import Licensing, generate_payg_license, renew_payg_license
from annotrain.settings import Mode, Settings

__all__ = [
    "Ed25519KeyFile",
    "Ed25519Signer",
    "InstanceKeyMissingError",
    "ed25519_check",
    "licensing_from_settings",
    "parse_public_keys",
    "payg_limits",
    "provision_payg_license",
    "renew_payg_license_of",
]


def ed25519_check(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s Ed25519 signature of ``message``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


class Ed25519Signer:
    """Signs with an Ed25519 private key (the instance's, or a vendor's in its own tooling).

    Args:
        private_key: The key.
        key_id: Its id in signatures; by default the instance key id of its public key.
    """

    def __init__(self, private_key: Ed25519PrivateKey, key_id: str | None = None) -> None:
        self._key = private_key
        self._public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._key_id = key_id or instance_key_id(self._public)

    @classmethod
    def generate(cls, key_id: str | None = None) -> Ed25519Signer:
        """A signer with a fresh key (tests, a vendor's key ceremony)."""
        return cls(Ed25519PrivateKey.generate(), key_id)

    @property
    def key_id(self) -> str:
        """The key's id, as signatures name it."""
        return self._key_id

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key."""
        return self._public

    def sign(self, message: bytes) -> bytes:
        """The 64-byte signature of ``message``."""
        return self._key.sign(message)

    def __repr__(self) -> str:  # never the key itself
        return f"Ed25519Signer(key_id={self._key_id!r})"


class InstanceKeyMissingError(LicenseError):
    """There is no instance key file: this lab has not been set up as a Marketplace instance."""


class Ed25519KeyFile:
    """The instance's signing key in a file (``DATA_DIR/license-signing-key``).

    Args:
        path: The file.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)

    @property
    def path(self) -> Path:
        """Where the key is kept."""
        return self._path

    def exists(self) -> bool:
        """Whether the key has been made."""
        return self._path.is_file()

    def load(self) -> Ed25519Signer:
        """The signer of the stored key.

        Raises:
            InstanceKeyMissingError: No key file.
            LicenseError: The file is not an Ed25519 private key, or others may read it.
        """
        try:
            data = self._path.read_bytes()
            mode = self._path.stat().st_mode
        except FileNotFoundError:
            raise InstanceKeyMissingError(
                f"there is no instance key at {self._path}: it is made when the Marketplace "
                "instance first boots (annotrain licenses generate-payg)",
                field="instance_key",
            ) from None
        if mode & 0o077:
            raise LicenseError(
                f"{self._path} may be read by others (mode {mode & 0o777:o}): chmod 600 it",
                field="instance_key",
            )
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise LicenseError(
                f"{self._path} is not a PEM private key", field="instance_key"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise LicenseError(f"{self._path} is not an Ed25519 key", field="instance_key")
        return Ed25519Signer(key)

    def public_key(self) -> tuple[str, bytes] | None:
        """(key id, raw public key) of the stored key; None when there is no key file."""
        if not self.exists():
            return None
        signer = self.load()
        return signer.key_id, signer.public_key

    def load_or_create(self) -> Ed25519Signer:
        """The stored key, made first if there is none (0600 from the start, written whole).

        Two processes making it at once keep one: the second finds the first's file.
        """
        if self.exists():
            return self.load()
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            # link() fails if the key appeared meanwhile: never replace a key in use.
            with contextlib.suppress(FileExistsError):
                os.link(temp, self._path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        return self.load()


def parse_public_keys(keys: Mapping[str, str]) -> dict[str, bytes]:
    """Vendor keys as ``ANNOTRAIN_VENDOR_PUBLIC_KEYS`` gives them (key id → base64 raw key).

    Raises:
        LicenseError: A key that is not 32 bytes of base64, or an id that is empty or
            looks like an instance key's.
    """
    parsed: dict[str, bytes] = {}
    for key_id, encoded in keys.items():
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32 or not key_id.strip():
            raise LicenseError(
                f"{key_id!r}: give each vendor key as base64 of its 32 raw bytes under its id",
                field="vendor_public_keys",
            )
        if key_id.startswith(INSTANCE_KEY_PREFIX):
            raise LicenseError(
                f"{key_id!r}: vendor key ids must not start with {INSTANCE_KEY_PREFIX!r}",
                field="vendor_public_keys",
            )
        parsed[key_id] = raw
    return parsed


def licensing_from_settings(settings: Settings) -> Licensing:
    """This lab's licensing: the vendor keys (code and settings), the instance key file
    (single node), the instance id and the AMI switch."""
    vendor = {key_id: base64.b64decode(key) for key_id, key in VENDOR_PUBLIC_KEYS.items()}
    vendor.update(parse_public_keys(settings.vendor_public_keys))
    key_file = Ed25519KeyFile(settings.license_key_path)

    def instance_key() -> tuple[str, bytes] | None:
        if settings.mode is Mode.SERVERLESS:
            return None
        return key_file.public_key()

    return Licensing(
        check=ed25519_check,
        vendor_keys=vendor,
        instance_key=instance_key,
        instance_id=settings.instance_id,
        ami=settings.ami,
    )


def provision_payg_license(settings: Settings, *, instance_id: str, product_code: str) -> License:
    """First boot: make the instance key if needed, then generate and store the PAYG license.

    What ``annotrain licenses generate-payg`` runs. Opens the lab's SQLite store in
    ``settings.data_dir``; the limits and validity come from the settings.

    Raises:
        LicenseError: No product code (not a Marketplace launch) or a bad instance id;
            nothing is stored (the key may have been made).
    """
    from annotrain.adapters.sqlite import SqliteStore
    from annotrain.adapters.system_clock import SystemClock

    signer = Ed25519KeyFile(settings.license_key_path).load_or_create()
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with SqliteStore(settings.database_path) as store:
        return generate_payg_license(
            store, signer, SystemClock(), instance_id=instance_id, product_code=product_code,
            limits=payg_limits(settings), validity=timedelta(days=settings.payg_validity_days),
        )  # fmt: skip


def renew_payg_license_of(settings: Settings) -> License | None:
    """The renewal timer's work: the next PAYG license if the current one expires soon.

    Raises:
        InstanceKeyMissingError: No instance key (first boot has not run).
        LicenseError: No PAYG license of this instance stored.
    """
    from annotrain.adapters.sqlite import SqliteStore
    from annotrain.adapters.system_clock import SystemClock

    signer = Ed25519KeyFile(settings.license_key_path).load()
    with SqliteStore(settings.database_path) as store:
        return renew_payg_license(
            store, licensing_from_settings(settings), signer, SystemClock(),
            limits=payg_limits(settings), validity=timedelta(days=settings.payg_validity_days),
            renew_before=timedelta(days=settings.payg_renew_before_days),
        )  # fmt: skip


def payg_limits(settings: Settings) -> ServerLimits:
    """The server limits a PAYG license gets: the configured caps."""
    return ServerLimits(
        training_servers=settings.payg_training_servers,
        preannotation_servers=settings.payg_preannotation_servers,
    )
