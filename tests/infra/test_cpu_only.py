"""The lab synthesized with GPUs off (``cdk.json``: ``"gpu": {"enabled": false}``).

No GPU compute environment, queue, job definition or image; every job kind runs
on the CPU queue, which the jobs function is the only one to name; the CPU
capacity takes the Spot option. The stacks still lint clean and pass cdk-nag.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fakes import InMemoryStore
from infra_synthesis import Synthesis
from test_serverless_flow import RecordingBatch, resolve
from test_stacks import API, COMPUTE, function_environment, job_definitions, logical_id

from annotrain.domain.records import JobKind, Run, RunStatus
from annotrain.ports import JobSpec


def test_no_gpu_capacity_is_built(cpu_only_synthesis: Synthesis) -> None:
    lab = cpu_only_synthesis.lab
    assert lab.config.gpu is None
    assert lab.compute.gpu is None
    assert set(lab.compute.capacities) == {"cpu"}
    (environment,) = cpu_only_synthesis.resources(
        COMPUTE, "AWS::Batch::ComputeEnvironment"
    ).values()
    compute = environment["Properties"]["ComputeResources"]
    assert compute["Ec2Configuration"] == [{"ImageType": "ECS_AL2"}]
    assert not any(t.startswith(("g4dn", "g5", "p3", "p4")) for t in compute["InstanceTypes"])
    (queue,) = cpu_only_synthesis.resources(COMPUTE, "AWS::Batch::JobQueue").values()
    assert queue["Properties"]["ComputeEnvironmentOrder"][0]["ComputeEnvironment"] == {
        "Fn::GetAtt": [logical_id(lab.compute.cpu.compute_environment), "ComputeEnvironmentArn"]
    }
    definitions = cpu_only_synthesis.resources(COMPUTE, "AWS::Batch::JobDefinition").values()
    assert len(definitions) == len(JobKind)
    for definition in definitions:
        requirements = definition["Properties"]["ContainerProperties"]["ResourceRequirements"]
        assert all(r["Type"] != "GPU" for r in requirements)
    manifest = (cpu_only_synthesis.outdir / f"{COMPUTE}.assets.json").read_text()
    assert "Dockerfile.gpu" not in manifest
    assert "Dockerfile.cpu" in manifest


def test_the_cpu_capacity_takes_the_spot_option(cpu_only_synthesis: Synthesis) -> None:
    (environment,) = cpu_only_synthesis.resources(
        COMPUTE, "AWS::Batch::ComputeEnvironment"
    ).values()
    compute = environment["Properties"]["ComputeResources"]
    assert compute["Type"] == "SPOT"
    assert compute["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"


def test_every_job_goes_to_the_cpu_queue(
    cpu_only_synthesis: Synthesis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annotrain.api.routers.trainings import lab_has_gpu
    from annotrain.settings import Settings
    from lambdas.api import batch_job_runner

    lab = cpu_only_synthesis.lab
    variables = function_environment(cpu_only_synthesis, API, lab.api.functions["jobs"])
    assert not [name for name in variables if "GPU" in name]
    cpu_queue = {"Fn::GetAtt": [logical_id(lab.compute.cpu.queue), "JobQueueArn"]}
    assert resolve_import(cpu_only_synthesis, variables["ANNOTRAIN_CPU_QUEUE"]) == cpu_queue
    cpu_definitions = job_definitions(cpu_only_synthesis, "cpu")
    assert set(cpu_definitions) == set(JobKind)

    environment = {
        name: resolve(cpu_only_synthesis, API, value)
        for name, value in variables.items()
        if name.startswith("ANNOTRAIN_")
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    # No run may ask for a GPU; and a run that did would still go to the CPU queue.
    assert lab_has_gpu(settings, lambda: True) is False
    store, batch = InMemoryStore(), RecordingBatch()
    runner = batch_job_runner(settings, store, client=batch)
    created = datetime(2026, 11, 21, tzinfo=UTC)
    for number, kind in enumerate(JobKind):
        for use_gpu in (False, True):
            run_id = f"run-{number}-{use_gpu}"
            store.create_run(
                Run(run_id, 1, kind, RunStatus.QUEUED, "ana", created, use_gpu=use_gpu)
            )
            runner.submit(JobSpec(kind, run_id, use_gpu=use_gpu))
    assert len(batch.submitted) == 2 * len(JobKind)
    cpu_queue_arn = environment["ANNOTRAIN_CPU_QUEUE"]
    assert {request["jobQueue"] for request in batch.submitted} == {cpu_queue_arn}
    expected = {
        resolve(
            cpu_only_synthesis, API, variables[f"ANNOTRAIN_JOB_DEFINITION_{kind.value.upper()}"]
        )
        for kind in JobKind
    }
    assert {request["jobDefinition"] for request in batch.submitted} == expected


def test_the_cpu_only_stacks_lint_clean_and_pass_cdk_nag(cpu_only_synthesis: Synthesis) -> None:
    from cdk_nag import AwsSolutionsChecks
    from cfnlint.api import ManualArgs, lint_file

    errors = []
    for stack in (COMPUTE, API):
        path = cpu_only_synthesis.outdir / f"{stack}.template.json"
        matches = lint_file(path, config=ManualArgs(regions=["us-east-1"]))
        errors += [f"{stack}: {m}" for m in matches if m.rule.id.startswith("E")]
    assert errors == []
    report = AwsSolutionsChecks().validate_scope(cpu_only_synthesis.app)
    assert [v.rule_name for v in report.violations] == []


def resolve_import(synthesis: Synthesis, value: Any) -> Any:
    """A value the Api stack imports from the Compute stack: the Compute stack's own expression."""
    if isinstance(value, dict) and "Fn::GetStackOutput" in value:
        reference = value["Fn::GetStackOutput"]
        return synthesis.templates[reference["StackName"]]["Outputs"][reference["OutputName"]][
            "Value"
        ]
    return value
