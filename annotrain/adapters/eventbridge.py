"""The EventPublisher port on Amazon EventBridge: the serverless completions side.

A submitted completion becomes one event on the lab's bus (``Source``
:data:`SOURCE`, ``DetailType`` :data:`COMPLETION_SUBMITTED`, the ids as
``Detail``). A rule on the bus delivers it to the jobs function, which counts it
for active learning (:func:`completion_submitted_from` reads it back). So the
function that takes completions needs only ``events:PutEvents`` on that bus, and
never the right to submit a job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from annotrain.domain.errors import InvalidRequestError
from annotrain.services.events import CompletionSubmitted

SOURCE = "annotrain.completions"
COMPLETION_SUBMITTED = "CompletionSubmitted"
_FIELDS = ("project_id", "task_id", "completion_id")
_LOG = logging.getLogger(__name__)


class EventBridgeEvents:
    """Publishes the completions side's events to an EventBridge bus.

    A put that fails is logged (ERROR, with the event) and not raised: the
    completion is stored by then, and an error would make the client submit it
    again; active learning misses that one count.

    Args:
        bus_name: The event bus (name or ARN).
        client: A boto3 EventBridge (``events``) client; one is made on first use when None.
        source: The events' ``Source``.
    """

    def __init__(self, bus_name: str, *, client: Any = None, source: str = SOURCE) -> None:
        if not bus_name:
            raise InvalidRequestError("bus_name", "name the EventBridge bus to publish to")
        self._bus = bus_name
        self._client = client
        self._source = source

    @property
    def client(self) -> Any:
        """The EventBridge client, made on first use."""
        if self._client is None:
            import boto3  # type: ignore[import-untyped]  # no stubs: the client is Any

            self._client = boto3.client("events")
        return self._client

    def publish(self, event: CompletionSubmitted) -> None:
        """Put the event on the bus; a refusal is logged, not raised (see the class)."""
        from botocore.exceptions import (  # type: ignore[import-untyped]
            BotoCoreError,
            ClientError,
        )

        entry = {
            "EventBusName": self._bus,
            "Source": self._source,
            "DetailType": COMPLETION_SUBMITTED,
            "Detail": json.dumps(asdict(event)),
        }
        try:
            response = self.client.put_events(Entries=[entry])
        except (BotoCoreError, ClientError) as exc:
            _LOG.error("event %r was not published to %s: %s", event, self._bus, exc)
            return
        if response.get("FailedEntryCount"):
            (failed,) = response.get("Entries") or [{}]
            _LOG.error(
                "event %r was not published to %s: %s: %s", event, self._bus,
                failed.get("ErrorCode", "?"), failed.get("ErrorMessage", "?"),
            )  # fmt: skip


def completion_submitted_from(event: Mapping[str, Any]) -> CompletionSubmitted:
    """The :class:`CompletionSubmitted` an EventBridge event (as a rule delivers it) carries.

    Raises:
        InvalidRequestError: The event is not one :class:`EventBridgeEvents` put.
    """
    if event.get("detail-type") != COMPLETION_SUBMITTED:
        raise InvalidRequestError("detail-type", f"expected {COMPLETION_SUBMITTED!r}")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise InvalidRequestError("detail", "expected an object")
    values = [detail.get(name) for name in _FIELDS]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise InvalidRequestError("detail", f"expected integer {', '.join(_FIELDS)}")
    project_id, task_id, completion_id = (int(v) for v in values)  # type: ignore[arg-type]
    return CompletionSubmitted(project_id, task_id, completion_id)
