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


def lambda_context(function_name: str = "annotrain-test") -> Any:
    """A Lambda context object with what the runtime gives a handler (and Powertools reads)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        function_name=function_name,
        function_version="$LATEST",
        invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}",
        memory_limit_in_mb=1024,
        aws_request_id="8f6e4b1c-lambda-request",
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name="2026/11/21/[$LATEST]stream",
        get_remaining_time_in_millis=lambda: 29_000,
    )
