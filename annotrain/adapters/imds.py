"""The EC2 instance metadata service (IMDSv2): who this instance is, and its product codes.

IMDSv2 only: a session token is first asked for with ``PUT /latest/api/token`` and
then sent with every read, so a request forged through a proxy on the instance
(which cannot make the PUT) learns nothing. Every call has a timeout; a service
that does not answer (not on EC2, IMDS disabled, hop limit too low in a container)
raises :class:`InstanceMetadataUnavailableError` after a few tries.

Only the standard library: first boot runs before anything else is up.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from annotrain.domain.errors import AnnotrainError
from annotrain.ports import InstanceIdentity

__all__ = ["DEFAULT_ENDPOINT", "Imdsv2Metadata", "InstanceMetadataUnavailableError"]

DEFAULT_ENDPOINT = "http://169.254.169.254"
_TOKEN_PATH = "/latest/api/token"  # noqa: S105 - a URL path, not a secret
_DOCUMENT_PATH = "/latest/dynamic/instance-identity/document"
_PRODUCT_CODES_PATH = "/latest/meta-data/product-codes"
_TOKEN_TTL_S = 300
# The identity document is about 500 bytes; anything far larger is not IMDS.
_MAX_ANSWER_BYTES = 64 * 1024


class InstanceMetadataUnavailableError(AnnotrainError):
    """IMDS did not answer, or answered something that is not an identity document."""


class Imdsv2Metadata:
    """Reads the instance identity through IMDSv2.

    Args:
        endpoint: IMDS's base URL (a test passes a local fake server's).
        timeout_s: Per request.
        attempts: Tries of the whole read; right after boot IMDS may not answer yet.
        retry_delay_s: The wait before the second try, doubled before each next one.
        sleep: Waits between tries (injected by tests).
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        timeout_s: float = 2.0,
        attempts: int = 5,
        retry_delay_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint {endpoint!r} must be an http:// or https:// URL")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._endpoint = endpoint.rstrip("/")
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._retry_delay_s = retry_delay_s
        self._sleep = sleep

    def identity(self) -> InstanceIdentity:
        """The instance id, region, account and Marketplace product codes.

        Raises:
            InstanceMetadataUnavailableError: IMDS did not answer after every try, or
                its answer was not an identity document.
        """
        delay = self._retry_delay_s
        for attempt in range(1, self._attempts + 1):
            try:
                return self._read_identity()
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self._attempts:
                    raise InstanceMetadataUnavailableError(
                        f"the instance metadata service at {self._endpoint} did not answer "
                        f"after {attempt} tries ({exc}); on EC2, check that IMDS is enabled "
                        "(http-endpoint enabled, http-tokens optional or required)"
                    ) from exc
                self._sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_identity(self) -> InstanceIdentity:
        token = self._request("PUT", _TOKEN_PATH, {"X-aws-ec2-metadata-token-ttl-seconds":
                                                   str(_TOKEN_TTL_S)})  # fmt: skip
        if token is None or not token.strip():
            raise InstanceMetadataUnavailableError(
                f"{self._endpoint}{_TOKEN_PATH} gave no IMDSv2 session token"
            )
        auth = {"X-aws-ec2-metadata-token": token.strip()}
        document_text = self._request("GET", _DOCUMENT_PATH, auth)
        if document_text is None:
            raise InstanceMetadataUnavailableError(
                f"{self._endpoint}{_DOCUMENT_PATH} is missing: not an EC2 instance"
            )
        codes_text = self._request("GET", _PRODUCT_CODES_PATH, auth)
        codes = tuple(c.strip() for c in (codes_text or "").splitlines() if c.strip())
        return _identity_from_document(document_text, codes, self._endpoint)

    def _request(self, method: str, path: str, headers: dict[str, str]) -> str | None:
        """The answer's text, or None for a 404 (a path IMDS does not have)."""
        request = urllib.request.Request(  # noqa: S310 - the endpoint is checked to be http(s)
            self._endpoint + path, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as answer:  # noqa: S310
                body: bytes = answer.read(_MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            hint = " (IMDSv2 refused: the hop limit is 1 inside a container?)"
            raise InstanceMetadataUnavailableError(
                f"{method} {self._endpoint}{path} answered HTTP {exc.code}"
                + (hint if exc.code in (401, 403) else "")
            ) from None
        if len(body) > _MAX_ANSWER_BYTES:
            raise InstanceMetadataUnavailableError(
                f"{method} {self._endpoint}{path}: answer larger than {_MAX_ANSWER_BYTES} bytes"
            )
        return body.decode("utf-8", errors="replace")


def _identity_from_document(
    text: str, product_codes: tuple[str, ...], endpoint: str
) -> InstanceIdentity:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InstanceMetadataUnavailableError(
            f"{endpoint}{_DOCUMENT_PATH} is not JSON: {exc}"
        ) from None
    if not isinstance(document, dict):
        raise InstanceMetadataUnavailableError(f"{endpoint}{_DOCUMENT_PATH} is not an object")
    fields = {}
    for name in ("instanceId", "region", "accountId"):
        value = document.get(name)
        if not isinstance(value, str) or not value:
            raise InstanceMetadataUnavailableError(
                f"{endpoint}{_DOCUMENT_PATH} lacks {name!r}: not an identity document"
            )
        fields[name] = value
    # The document also lists product codes (marketplaceProductCodes): take both.
    listed = document.get("marketplaceProductCodes") or []
    extra = tuple(c for c in listed if isinstance(c, str) and c not in product_codes)
    return InstanceIdentity(
        instance_id=fields["instanceId"],
        region=fields["region"],
        account_id=fields["accountId"],
        instance_type=str(document.get("instanceType", "")),
        image_id=str(document.get("imageId", "")),
        product_codes=product_codes + extra,
    )
