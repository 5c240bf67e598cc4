"""AWS Batch capacity: one construct turns a compute profile (GPU or CPU) into resources.

A profile row (:class:`infra.config.ComputeProfile`) becomes a managed EC2
compute environment, its job queue, and one job definition per job kind, all
running the profile's image with the environment every job needs
(``batch_jobs/runtime.py``). The retry strategy is the adapter's own
(``annotrain.adapters.batch.RETRY_STRATEGY``): a reclaimed host is retried, a
job that failed on its own is not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, Size
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from annotrain.adapters.batch import RETRY_STRATEGY
from annotrain.domain.records import JobKind
from infra.config import ComputeProfile, ConfigError
from infra.nag import Ack, acknowledge

# The kinds whose work uses a GPU when it has one: they get a GPU job definition.
GPU_KINDS: tuple[JobKind, ...] = (JobKind.TRAIN, JobKind.PREANNOTATE)
RUN_ID_PARAMETER = "run_id"


def retry_strategies() -> tuple[int, list[batch.RetryStrategy]]:
    """The adapter's retry strategy as CDK values: (attempts, strategies)."""
    strategies = []
    for rule in RETRY_STRATEGY["evaluateOnExit"]:
        action = batch.Action.RETRY if rule["action"] == "RETRY" else batch.Action.EXIT
        reason = batch.Reason.custom(
            on_status_reason=rule.get("onStatusReason"),
            on_reason=rule.get("onReason"),
            on_exit_code=rule.get("onExitCode"),
        )
        strategies.append(batch.RetryStrategy.of(action, reason))
    return int(RETRY_STRATEGY["attempts"]), strategies


def instance_class(family: str) -> ec2.InstanceClass:
    """The EC2 instance family ``family`` (``g4dn``), as CDK names it.

    Raises:
        ConfigError: CDK knows no such family.
    """
    try:
        return ec2.InstanceClass[family.upper().replace("-", "_")]
    except KeyError:
        raise ConfigError(f"unknown EC2 instance family {family!r}") from None


def job_command(kind: JobKind) -> list[str]:
    """The container command of a job of ``kind`` (the image's entry point is ``python -m``)."""
    return [f"batch_jobs.{kind.value}", "--run-id", f"Ref::{RUN_ID_PARAMETER}"]


class BatchCapacity(Construct):
    """A compute environment, its queue and a job definition per kind, from one profile.

    Args:
        profile: The GPU or CPU profile.
        vpc: Where instances run (its private subnets).
        image: The job image (``batch_jobs/Dockerfile.gpu`` or ``Dockerfile.cpu``).
        kinds: The job kinds to define on this profile.
        job_role: The role the job containers run with.
        environment: The containers' environment (the store's names, heartbeat…).
        log_group: Where the containers' output goes.

    Attributes:
        compute_environment: The managed EC2 compute environment.
        queue: The job queue (the job runner's ``gpu`` or ``cpu`` queue).
        job_definitions: The job definition of each kind.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        profile: ComputeProfile,
        vpc: ec2.IVpc,
        image: ecs.ContainerImage,
        kinds: Sequence[JobKind],
        job_role: iam.IRole,
        environment: Mapping[str, str],
        log_group: logs.ILogGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        machine_image = (
            batch.EcsMachineImageType.ECS_AL2_NVIDIA
            if profile.uses_gpu
            else batch.EcsMachineImageType.ECS_AL2
        )
        launch_template = ec2.LaunchTemplate(self, "LaunchTemplate", require_imdsv2=True)
        self.compute_environment = batch.ManagedEc2EcsComputeEnvironment(
            self,
            "ComputeEnvironment",
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            instance_types=[ec2.InstanceType(t) for t in profile.instance_types if "." in t],
            instance_classes=[instance_class(t) for t in profile.instance_types if "." not in t],
            use_optimal_instance_classes=False,
            images=[batch.EcsMachineImage(image_type=machine_image)],
            spot=profile.spot,
            allocation_strategy=(
                batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED
                if profile.spot
                else batch.AllocationStrategy.BEST_FIT_PROGRESSIVE
            ),
            minv_cpus=0,
            maxv_cpus=profile.max_vcpus,
            launch_template=launch_template,
            update_to_latest_image_version=True,
        )
        acknowledge(
            self.compute_environment,
            Ack(
                "AwsSolutions-IAM4",
                "The ECS container instance role needs AmazonEC2ContainerServiceforEC2Role "
                "(the managed policy AWS keeps in step with the ECS agent).",
                findings=[
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AmazonEC2ContainerServiceforEC2Role"
                ],
            ),
        )
        self.queue = batch.JobQueue(
            self,
            "Queue",
            compute_environments=[
                batch.OrderedComputeEnvironment(
                    compute_environment=self.compute_environment, order=1
                )
            ],
            priority=1,
        )
        attempts, strategies = retry_strategies()
        self.job_definitions: dict[JobKind, batch.EcsJobDefinition] = {}
        for kind in kinds:
            container = batch.EcsEc2ContainerDefinition(
                self,
                f"{kind.value.capitalize()}Container",
                image=image,
                cpu=profile.vcpus_per_job,
                memory=Size.mebibytes(profile.memory_mib_per_job),
                gpu=profile.gpus_per_job or None,
                command=job_command(kind),
                environment=dict(environment),
                job_role=job_role,
                logging=ecs.LogDriver.aws_logs(
                    stream_prefix=f"{profile.name}-{kind.value}", log_group=log_group
                ),
            )
            self.job_definitions[kind] = batch.EcsJobDefinition(
                self,
                f"{kind.value.capitalize()}JobDefinition",
                container=container,
                parameters={RUN_ID_PARAMETER: "unset"},
                retry_attempts=attempts,
                retry_strategies=strategies,
                timeout=Duration.minutes(profile.timeout_minutes),
                propagate_tags=True,
            )
