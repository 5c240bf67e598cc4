"""The UsageReporter port over AWS Marketplace Metering's ``MeterUsage``.

MeterUsage is idempotent for identical requests: the same product code, hour
timestamp, dimension and quantity sent again is answered with the same metering
record id, not billed again; the same hour and dimension with another quantity is
refused (``DuplicateRequestException``). Records older than six hours are refused
(``TimestampOutOfBoundsException``). The ledger (``annotrain.services.metering``)
relies on the first: it fixes the quantity before the first send.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from annotrain.domain.errors import MeteringRefusedError

#: Error codes after which the identical request will never succeed.
FINAL_ERRORS = frozenset({
    "TimestampOutOfBoundsException", "DuplicateRequestException", "InvalidProductCodeException",
    "InvalidUsageDimensionException", "CustomerNotEntitledException",
    "InvalidEndpointRegionException", "InvalidTagException", "InvalidUsageAllocationsException",
    "InvalidCustomerIdentifierException", "InvalidTokenException", "AccessDeniedException",
    "ValidationException",
})  # fmt: skip


class MarketplaceUsageReporter:
    """Sends usage with ``meter_usage``.

    Args:
        client: A ``meteringmarketplace`` client (boto3; typed Any as boto3 ships no
            hints), made by the caller in the instance's region with the instance
            role's credentials.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def meter_usage(
        self, *, product_code: str, hour: datetime, dimension: str, quantity: int
    ) -> str:
        """Report one hour of one dimension; returns AWS's metering record id.

        Raises:
            MeteringRefusedError: ``retry`` False for a refusal that will stand
                (too old, duplicate with another quantity, not entitled…).
        """
        # Imported here: importing this module loads no AWS package.
        from botocore.exceptions import (  # type: ignore[import-untyped]
            BotoCoreError,
            ClientError,
        )

        try:
            answer = self._client.meter_usage(
                ProductCode=product_code,
                Timestamp=hour.astimezone(UTC),
                UsageDimension=dimension,
                UsageQuantity=quantity,
                DryRun=False,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            message = exc.response.get("Error", {}).get("Message", "")
            raise MeteringRefusedError(
                f"MeterUsage refused {dimension} at {hour:%Y-%m-%dT%H:00Z}: {code}: {message}",
                retry=code not in FINAL_ERRORS,
            ) from exc
        except BotoCoreError as exc:  # network, credentials: worth another try later
            raise MeteringRefusedError(
                f"MeterUsage could not be reached: {exc}", retry=True
            ) from exc
        record_id: str = answer["MeteringRecordId"]
        return record_id
