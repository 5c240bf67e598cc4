"""Lambda Powertools in the lab's functions: JSON logs, X-Ray traces, CloudWatch EMF metrics.

Every function's handler runs inside :func:`instrument`: one structured JSON log
line per log call, carrying the invocation's correlation id (API Gateway's
request id, or an EventBridge event's id), the function's name and whether it
was a cold start; and a ``ColdStart`` metric plus whatever the handler adds,
flushed as one EMF blob per invocation to stdout, where CloudWatch turns it into
metrics.

Traces: every function has X-Ray active tracing (set in the CDK app), so Lambda
itself records a segment per invocation, its initialization included. With
``trace_aws_calls`` the handler also runs under Powertools' Tracer, which adds a
subsegment for the handler and one per AWS SDK call (only botocore is patched).
The job-state function does that. The API functions do not: importing the X-Ray
SDK builds its recorder (two botocore clients for sampling rules), which costs
more than the rest of an API function's cold start (benchmarks/api.py,
docs/deploy.md).

The CDK app sets, on each function, ``POWERTOOLS_SERVICE_NAME`` (the function:
``annotrain-api-jobs``, ``annotrain-job-events``), ``POWERTOOLS_METRICS_NAMESPACE``
(``annotrain``) and ``POWERTOOLS_LOG_LEVEL``; the tools read them.

Nothing is imported or built at import of this module: the tools are made on a
function's first invocation (the API functions' cold-import goal, benchmarks/api.py).

What is never logged or traced: request or response bodies, headers (the bearer
token or Cognito's JWT), query strings. The handler's response is not put on a
trace either (``capture_response=False``).
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics, Tracer

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

#: The metrics' namespace when ``POWERTOOLS_METRICS_NAMESPACE`` is not set (the CDK
#: app sets it to the same, ``infra.observability.METRICS_NAMESPACE``).
NAMESPACE = "annotrain"
#: The correlation id of an invocation: API Gateway's request id, else an
#: EventBridge event's id (the jobs function takes both).
CORRELATION_ID_PATH = "requestContext.requestId || id"
# The lab's own loggers (``annotrain.*``) log through the function's logger too.
_LAB_LOGGERS = "annotrain"


@functools.cache
def logger() -> Logger:
    """The function's structured logger (service and level from the environment)."""
    import logging

    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    log = Logger()
    # The lab's loggers propagate to "annotrain": give it the same JSON handler and
    # level, so what the services log carries the correlation id as well.
    logging.getLogger(_LAB_LOGGERS)
    copy_config_to_registered_loggers(source_logger=log, include={_LAB_LOGGERS})
    return log


@functools.cache
def tracer() -> Tracer:
    """The function's X-Ray tracer, patching the AWS SDK only (disabled outside Lambda)."""
    from aws_lambda_powertools import Tracer

    return Tracer(patch_modules=["botocore"])


@functools.cache
def metrics() -> Metrics:
    """The function's EMF metrics (namespace and service from the environment)."""
    import os

    from aws_lambda_powertools import Metrics

    return Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE)


def instrument(
    handler: Handler, *, access_log: bool = False, trace_aws_calls: bool = False
) -> Handler:
    """``handler`` inside the function's logger and metrics (and tracer).

    Args:
        handler: The function's handler.
        access_log: Log one line per API Gateway request: route, path, status and
            duration (no body, no headers, no query string).
        trace_aws_calls: Run the handler under Powertools' Tracer: subsegments for
            the handler and each AWS SDK call (the X-Ray SDK's import cost, paid
            once per cold start).
    """
    log = logger()
    if access_log:
        handler = _access_logged(handler, log)
    if trace_aws_calls:
        handler = tracer().capture_lambda_handler(handler, capture_response=False)
    measured = _quiet_when_no_metrics(
        metrics().log_metrics(handler, capture_cold_start_metric=True)
    )
    observed: Handler = log.inject_lambda_context(
        measured, correlation_id_path=CORRELATION_ID_PATH, log_event=False, clear_state=True
    )
    return observed


def _quiet_when_no_metrics(handler: Handler) -> Handler:
    """Most API invocations add no metric of their own (API Gateway counts requests):
    an empty flush is normal here, not worth Powertools' warning on every call."""

    @functools.wraps(handler)
    def quiet(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No application metrics to publish")
            return handler(event, context)

    return quiet


def _access_logged(handler: Handler, log: Logger) -> Handler:
    @functools.wraps(handler)
    def logged(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if "requestContext" not in event:  # an EventBridge event: the handler logs it
            return handler(event, context)
        began = time.perf_counter()
        response = handler(event, context)
        log.info("request", extra=_request_fields(event, response, began))
        return response

    return logged


def _request_fields(
    event: Mapping[str, Any], response: Mapping[str, Any], began: float
) -> dict[str, Any]:
    return {
        "route": event.get("routeKey"),
        "path": event.get("rawPath"),
        "status": response.get("statusCode"),
        "duration_ms": round((time.perf_counter() - began) * 1000, 1),
    }
