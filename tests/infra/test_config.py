"""The app's configuration from cdk.json context: defaults, overrides, refusals."""

from __future__ import annotations

import sys

import pytest
from infra_synthesis import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.config import ConfigError, lab_config


def test_defaults_build_a_gpu_and_a_cpu_profile() -> None:
    config = lab_config(None)
    assert [p.name for p in config.profiles] == ["gpu", "cpu"]
    assert config.gpu is not None
    assert config.gpu.instance_types == ("g4dn",)
    assert config.gpu.gpus_per_job == 1
    assert config.cpu.gpus_per_job == 0


def test_gpu_off_leaves_only_the_cpu_profile() -> None:
    config = lab_config({"gpu": {"enabled": False}, "cpu": {"max_vcpus": 8}})
    assert config.gpu is None
    assert [p.name for p in config.profiles] == ["cpu"]
    assert config.cpu.max_vcpus == 8


def test_a_context_given_on_the_command_line_is_json_text() -> None:
    # `cdk deploy -c annotrain='{…}'`: the CLI hands the app every context value as a string.
    config = lab_config('{"gpu": {"enabled": false}, "cpu": {"spot": true}}')
    assert config.gpu is None
    assert config.cpu.spot is True
    with pytest.raises(ConfigError, match="context 'annotrain' is not JSON"):
        lab_config("gpu.enabled=false")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        lab_config('["gpu"]')


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"gpu": {"enabeld": False}}, "unknown context key(s) enabeld"),
        ({"cpu": {"max_vcpus": 0}}, "cpu.max_vcpus"),
        ({"cpu": {"vcpus_per_job": 64}}, "exceeds cpu.max_vcpus"),
        ({"gpu": {"spot": "yes"}}, "gpu.spot must be true or false"),
        ({"gpu": {"gpus_per_job": 0}}, "gpu.gpus_per_job must be at least 1"),
        ({"log_retention_days": 10}, "log_retention_days must be one of"),
        ({"alarm_email": "ops"}, "alarm_email"),
        ({"log_level": "LOUD"}, "log_level must be one of DEBUG, INFO, WARNING, ERROR"),
    ],
)
def test_a_wrong_context_value_is_refused_with_its_name(context: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        lab_config(context)
