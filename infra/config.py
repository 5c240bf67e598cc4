"""The CDK app's typed configuration, built once from ``cdk.json`` context.

Only :mod:`infra.app` reads context; every stack and construct takes the pieces
it needs as keyword-only properties. The context key is ``annotrain`` (a JSON
object); each field below may be set there or with ``cdk deploy -c
annotrain='{"gpu": {"enabled": false}}'`` (merged over the defaults, key by key).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONTEXT_KEY = "annotrain"


class ConfigError(ValueError):
    """A context value is missing, of the wrong type or out of range; the message says which."""


@dataclass(frozen=True, slots=True)
class ComputeProfile:
    """One kind of Batch capacity: a compute environment, its queue and its job definitions.

    GPU and CPU are two rows of the same table (:data:`LabConfig.profiles`); one
    construct (:class:`infra.batch.BatchCapacity`) turns a row into AWS resources.

    Attributes:
        name: ``gpu`` or ``cpu``: the key the job runner's queues use.
        instance_types: EC2 instance types or families (``g4dn``, ``c6i.xlarge``).
        max_vcpus: The compute environment's ceiling; 0 vCPUs run when idle.
        spot: Use Spot capacity (reclaimed hosts are retried, see docs/jobs.md).
        gpus_per_job: GPUs each job of this profile reserves (0 for CPU).
        vcpus_per_job: vCPUs each job reserves.
        memory_mib_per_job: Memory each job reserves, in MiB.
        timeout_minutes: A job attempt longer than this is stopped (run ``failed``: timed out).
    """

    name: str
    instance_types: tuple[str, ...]
    max_vcpus: int
    spot: bool
    gpus_per_job: int
    vcpus_per_job: int
    memory_mib_per_job: int
    timeout_minutes: int

    @property
    def uses_gpu(self) -> bool:
        """Whether jobs of this profile reserve a GPU."""
        return self.gpus_per_job > 0


@dataclass(frozen=True, slots=True)
class ApiThrottle:
    """The HTTP API's default stage throttling.

    Attributes:
        rate_per_second: Steady-state requests per second across the API.
        burst: Requests allowed in a burst above the rate.
    """

    rate_per_second: int
    burst: int


@dataclass(frozen=True, slots=True)
class LabConfig:
    """Everything the stacks are configured by.

    Attributes:
        gpu: The GPU profile, or None when the lab runs without GPUs (every job
            then goes to the CPU queue).
        cpu: The CPU profile.
        throttle: The HTTP API's throttling.
        alarm_email: Where alarms are mailed (an SNS e-mail subscription), or None.
        vpc_max_azs: Availability zones of the VPC (and of each endpoint).
        lambda_memory_mib: Memory of the API functions.
        log_retention_days: How long Lambda, API and flow logs are kept.
        heartbeat_seconds: The jobs' ``ANNOTRAIN_HEARTBEAT_SECONDS``.
        log_level: The functions' ``POWERTOOLS_LOG_LEVEL`` (``DEBUG``, ``INFO``,
            ``WARNING`` or ``ERROR``).
    """

    gpu: ComputeProfile | None
    cpu: ComputeProfile
    throttle: ApiThrottle
    alarm_email: str | None = None
    vpc_max_azs: int = 2
    lambda_memory_mib: int = 1024
    log_retention_days: int = 90
    heartbeat_seconds: int = 30
    log_level: str = "INFO"
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def profiles(self) -> tuple[ComputeProfile, ...]:
        """The compute profiles to build: GPU (when on) and CPU."""
        return (self.gpu, self.cpu) if self.gpu is not None else (self.cpu,)


DEFAULTS: Mapping[str, Any] = {
    "gpu": {
        "enabled": True,
        "instance_types": ["g4dn"],
        "max_vcpus": 64,
        "spot": True,
        "gpus_per_job": 1,
        "vcpus_per_job": 4,
        "memory_mib_per_job": 15000,
        "timeout_minutes": 720,
    },
    "cpu": {
        "instance_types": ["c6i", "m6i"],
        "max_vcpus": 32,
        "spot": False,
        "vcpus_per_job": 2,
        "memory_mib_per_job": 4096,
        "timeout_minutes": 240,
    },
    "throttle": {"rate_per_second": 100, "burst": 200},
    "alarm_email": None,
    "vpc_max_azs": 2,
    "lambda_memory_mib": 1024,
    "log_retention_days": 90,
    "heartbeat_seconds": 30,
    "log_level": "INFO",
    "tags": {"project": "annotrain"},
}


def lab_config(context: Mapping[str, Any] | str | None) -> LabConfig:
    """Build the configuration from the ``annotrain`` context object over :data:`DEFAULTS`.

    Args:
        context: The context value: a mapping (from ``cdk.json``), its JSON text
            (``cdk deploy -c annotrain='{…}'``: the CLI passes context values as
            strings), or None for the defaults.

    Raises:
        ConfigError: A value is of the wrong type, out of range or unknown.
    """
    given: Any = context
    if isinstance(context, str):
        try:
            given = json.loads(context)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"context {CONTEXT_KEY!r} is not JSON ({error}): give an object, "
                f'-c {CONTEXT_KEY}=\'{{"gpu": {{"enabled": false}}}}\''
            ) from None
    values = _merge(DEFAULTS, given or {}, path=CONTEXT_KEY)
    gpu = dict(values["gpu"])
    enabled = _bool(gpu.pop("enabled"), "gpu.enabled")
    return LabConfig(
        gpu=_profile("gpu", gpu) if enabled else None,
        cpu=_profile("cpu", {**values["cpu"], "gpus_per_job": 0}),
        throttle=ApiThrottle(
            rate_per_second=_positive(values["throttle"]["rate_per_second"], "throttle.rate"),
            burst=_positive(values["throttle"]["burst"], "throttle.burst"),
        ),
        alarm_email=_optional_email(values["alarm_email"]),
        vpc_max_azs=_positive(values["vpc_max_azs"], "vpc_max_azs"),
        lambda_memory_mib=_positive(values["lambda_memory_mib"], "lambda_memory_mib"),
        log_retention_days=_retention(values["log_retention_days"]),
        heartbeat_seconds=_positive(values["heartbeat_seconds"], "heartbeat_seconds"),
        log_level=_log_level(values["log_level"]),
        tags={str(k): str(v) for k, v in dict(values["tags"]).items()},
    )


def _merge(base: Mapping[str, Any], override: Mapping[str, Any], *, path: str) -> dict[str, Any]:
    if not isinstance(override, Mapping):
        raise ConfigError(f"context {path!r} must be a JSON object, not {override!r}")
    unknown = sorted(set(override) - set(base))
    if unknown:
        raise ConfigError(f"unknown context key(s) {', '.join(unknown)} under {path!r}")
    merged = dict(base)
    for key, value in override.items():
        nested = base[key]
        if isinstance(nested, Mapping) and key != "tags":
            merged[key] = _merge(nested, value, path=f"{path}.{key}")
        else:
            merged[key] = value
    return merged


def _profile(name: str, values: Mapping[str, Any]) -> ComputeProfile:
    types = values["instance_types"]
    if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
        raise ConfigError(f"{name}.instance_types must be a non-empty list of strings")
    profile = ComputeProfile(
        name=name,
        instance_types=tuple(types),
        max_vcpus=_positive(values["max_vcpus"], f"{name}.max_vcpus"),
        spot=_bool(values["spot"], f"{name}.spot"),
        gpus_per_job=_non_negative(values["gpus_per_job"], f"{name}.gpus_per_job"),
        vcpus_per_job=_positive(values["vcpus_per_job"], f"{name}.vcpus_per_job"),
        memory_mib_per_job=_positive(values["memory_mib_per_job"], f"{name}.memory_mib_per_job"),
        timeout_minutes=_positive(values["timeout_minutes"], f"{name}.timeout_minutes"),
    )
    if profile.vcpus_per_job > profile.max_vcpus:
        raise ConfigError(f"{name}.vcpus_per_job exceeds {name}.max_vcpus: no job could start")
    if name == "gpu" and not profile.uses_gpu:
        raise ConfigError("gpu.gpus_per_job must be at least 1 (or set gpu.enabled to false)")
    return profile


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    return value


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, not {value!r}")
    return value


def _non_negative(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a whole number of at least 0, not {value!r}")
    return value


# CloudWatch Logs' retention periods, in days (the only ones it accepts).
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653)


def _retention(value: Any) -> int:
    if value not in RETENTION_DAYS or isinstance(value, bool):
        raise ConfigError(f"log_retention_days must be one of {RETENTION_DAYS}, not {value!r}")
    return int(value)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
    return value.upper()


def _optional_email(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or "@" not in value:
        raise ConfigError(f"alarm_email must be an e-mail address or null, not {value!r}")
    return value
