"""The CDK app: ``python -m infra.app`` (what ``cdk.json`` runs, and ``make synth``).

The only place that reads context: the ``annotrain`` object of ``cdk.json``
(or ``-c annotrain=…``) becomes one :class:`infra.config.LabConfig`, and every
stack takes typed properties from it. cdk-nag's AwsSolutions checks run at
synth as a policy-validation plugin (cdk-nag 3.x: ``Validations.of(app)``).
Stacks are environment-agnostic, so synth needs no AWS credentials; the Lambda
bundle is built by pip and the job images only staged, so it needs no Docker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App, Stack, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from annotrain.domain.records import JobKind
from infra.ami import AmiStack
from infra.api import ApiStack, BatchTargets
from infra.compute import ComputeStack
from infra.config import CONTEXT_KEY, LabConfig, lab_config
from infra.lambda_asset import LambdaAsset
from infra.monitoring import MonitoringStack
from infra.storage import StorageStack

REPO_ROOT = Path(__file__).resolve().parents[1]
STACK_PREFIX = "Annotrain"


@dataclass(frozen=True, slots=True)
class LabStacks:
    """The app's stacks, by lifecycle.

    Attributes:
        config: The configuration they were built from.
        storage: Table, buckets, key, backups (retained on delete).
        compute: VPC, Batch, job images, job-state events.
        api: Cognito, the HTTP API, the function groups.
        ami: The Image Builder pipelines.
        monitoring: Alarms and their topic.
    """

    config: LabConfig
    storage: StorageStack
    compute: ComputeStack
    api: ApiStack
    ami: AmiStack
    monitoring: MonitoringStack

    @property
    def all(self) -> tuple[Stack, ...]:
        """Every stack, in deploy order."""
        return (self.storage, self.compute, self.api, self.ami, self.monitoring)


def cdk_json_context(root: Path = REPO_ROOT) -> dict[str, Any]:
    """The ``context`` of ``cdk.json`` (what the CDK CLI passes the app), for in-process synths."""
    context: dict[str, Any] = json.loads((root / "cdk.json").read_text(encoding="utf-8"))["context"]
    return context


def build_lab(app: App, *, root: Path = REPO_ROOT, nag: bool = True) -> LabStacks:
    """Add the lab's stacks to ``app``.

    Args:
        app: The app, its context set (by the CLI from ``cdk.json``, or by a test).
        root: The repository root: sources, pins, Dockerfiles, ``marketplace_ami/``.
        nag: Register cdk-nag's AwsSolutions checks as a validation plugin.
    """
    config = lab_config(app.node.try_get_context(CONTEXT_KEY))
    lambda_asset = LambdaAsset(root=root, cache_dir=root / ".build" / "lambda-deps")
    storage = StorageStack(app, f"{STACK_PREFIX}Storage", description="annotrain: lab data")
    compute = ComputeStack(
        app,
        f"{STACK_PREFIX}Compute",
        config=config,
        storage_stack=storage,
        lambda_asset=lambda_asset,
        repo_root=root,
        description="annotrain: VPC, AWS Batch, job images, job-state events",
    )
    queues = {"cpu": compute.cpu.queue}
    if compute.gpu:  # without a GPU queue the jobs function refuses runs asking for one
        queues["gpu"] = compute.gpu.queue
    targets = BatchTargets(
        queues=queues,
        job_definitions=dict(compute.cpu.job_definitions),
        gpu_job_definitions=dict(compute.gpu.job_definitions) if compute.gpu else {},
    )
    if set(targets.job_definitions) != set(JobKind):
        raise RuntimeError("the CPU capacity must define a job definition for every kind")
    api = ApiStack(
        app,
        f"{STACK_PREFIX}Api",
        config=config,
        storage_stack=storage,
        batch_targets=targets,
        lambda_asset=lambda_asset,
        description="annotrain: Cognito, HTTP API, API functions",
    )
    ami = AmiStack(
        app,
        f"{STACK_PREFIX}Ami",
        components_dir=root / "marketplace_ami" / "components",
        source_dir=root,
        product_code=str(app.node.try_get_context("annotrain_marketplace_product_code") or ""),
        description="annotrain: Marketplace AMI pipelines",
    )
    monitoring = MonitoringStack(
        app,
        f"{STACK_PREFIX}Monitoring",
        functions={
            **{f"Api{name.capitalize()}": fn for name, fn in api.functions.items()},
            "JobEvents": compute.events.function,
        },
        job_events_log_group=compute.events.log_group,
        dead_letter_queue=compute.events.dead_letter_queue,
        lab_events_dead_letter_queue=api.events.dead_letter_queue,
        alarm_email=config.alarm_email,
        description="annotrain: alarms",
    )
    for key, value in config.tags.items():
        Tags.of(app).add(key, value)
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(verbose=True))
    return LabStacks(config, storage, compute, api, ami, monitoring)


def main() -> None:
    """Synthesize the lab into ``cdk.out`` (or the CLI's output folder)."""
    app = App()
    build_lab(app)
    app.synth()


if __name__ == "__main__":
    main()
