"""API Gateway HTTP API (payload format 2.0) events, as Lambda receives them."""

from __future__ import annotations

import base64
import json
from typing import Any


def http_api_event(
    method: str, path: str, *, claims: dict[str, Any] | None, body: Any = None
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, as its JWT authorizer leaves it."""
    context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "api",
        "domainName": "api.example.com",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.1",
            "userAgent": "test",
        },
        "requestId": "r1",
        "routeKey": "$default",
        "stage": "$default",
        "time": "21/Nov/2026:12:00:00 +0000",
        "timeEpoch": 0,
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "api.example.com", "content-type": "application/json"},
        "requestContext": context,
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = base64.b64encode(json.dumps(body).encode()).decode()
        event["isBase64Encoded"] = True
    return event
