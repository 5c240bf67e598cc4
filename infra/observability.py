"""The Lambda functions' Lambda Powertools settings (read by ``lambdas/observability.py``).

Active X-Ray tracing is set on each function where it is made (``tracing=ACTIVE``,
which also grants its role ``xray:PutTraceSegments`` and ``xray:PutTelemetryRecords``);
this module gives the environment the tools read.
"""

from __future__ import annotations

#: The CloudWatch namespace of the functions' EMF metrics and of the log metric filters.
METRICS_NAMESPACE = "annotrain"


def powertools_environment(service: str, *, log_level: str) -> dict[str, str]:
    """The Powertools settings of one function.

    Args:
        service: The function's service name: its logs' ``service`` key and its
            metrics' ``service`` dimension (``annotrain-api-jobs``).
        log_level: ``POWERTOOLS_LOG_LEVEL`` (``LabConfig.log_level``).
    """
    return {
        "POWERTOOLS_SERVICE_NAME": service,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": log_level,
    }
