"""The Compute stack: the VPC, AWS Batch (GPU and CPU), the job images and the job-state events."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from aws_cdk import Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from annotrain.domain.records import JobKind
from infra.batch import GPU_KINDS, BatchCapacity
from infra.config import LabConfig
from infra.lambda_asset import RUNTIME, LambdaAsset
from infra.log_groups import lab_log_group
from infra.nag import Ack, acknowledge
from infra.observability import powertools_environment
from infra.storage import StorageRefs, StorageStack

BATCH_EVENTS_HANDLER = "lambdas.batch_events.handler"
# The job images are built from the repository root (annotrain/, batch_jobs/, the pins);
# .dockerignore keeps everything else out of the build context, and out of cdk.out.
DOCKERFILES = {"gpu": "batch_jobs/Dockerfile.gpu", "cpu": "batch_jobs/Dockerfile.cpu"}


class LabNetwork(Construct):
    """A VPC of private, isolated subnets that reaches AWS only through endpoints.

    Gateway endpoints for S3 and DynamoDB; interface endpoints for ECR, ECS (the
    agent registers the instances) and CloudWatch Logs. No NAT gateway: the jobs
    need nothing outside AWS (the base encoders ship in the image).

    Attributes:
        vpc: The VPC.
    """

    INTERFACE_ENDPOINTS: ClassVar[dict[str, ec2.InterfaceVpcEndpointAwsService]] = {
        "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
        "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
        "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
        "Ecs": ec2.InterfaceVpcEndpointAwsService.ECS,
        "EcsAgent": ec2.InterfaceVpcEndpointAwsService.ECS_AGENT,
        "EcsTelemetry": ec2.InterfaceVpcEndpointAwsService.ECS_TELEMETRY,
    }

    def __init__(
        self, scope: Construct, construct_id: str, *, max_azs: int, log_retention_days: int
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=max_azs,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="jobs", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=20
                )
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDb": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                ),
            },
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                lab_log_group(self, "FlowLogs", retention_days=log_retention_days)
            ),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        for name, service in self.INTERFACE_ENDPOINTS.items():
            endpoint = self.vpc.add_interface_endpoint(
                name, service=service, private_dns_enabled=True
            )
            acknowledge(
                endpoint,
                Ack(
                    "AwsSolutions-EC23",
                    "The endpoint's security group admits HTTPS from the VPC's own CIDR only "
                    "(a token cdk-nag cannot read), not from the internet.",
                ),
            )


class JobStateEvents(Construct):
    """Batch job-state changes of the lab's queues → the function that records them on runs.

    The function is traced (X-Ray, active) and logs and counts through Lambda Powertools.

        Failed deliveries and failed invocations both land in a dead-letter queue.

        Attributes:
            function: The ``lambdas.batch_events.handler`` function.
            log_group: Its log group (one JSON line per event).
            dead_letter_queue: Events that could not be applied.
            rule: The EventBridge rule.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        storage: StorageRefs,
        queue_arns: list[str],
        log_retention_days: int,
        log_level: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letter_queue,
            Ack(
                "AwsSolutions-SQS3",
                "This queue is the dead-letter queue of the job-state events; it has none itself.",
            ),
        )
        self.log_group = lab_log_group(self, "Logs", retention_days=log_retention_days)
        self.function = lambda_.Function(
            self,
            "Handler",
            runtime=RUNTIME,
            handler=BATCH_EVENTS_HANDLER,
            code=code,
            memory_size=512,
            timeout=Duration.seconds(60),
            environment={
                "ANNOTRAIN_TABLE": storage.table.table_name,
                "ANNOTRAIN_OVERFLOW_BUCKET": storage.overflow_bucket.bucket_name,
                **powertools_environment("annotrain-job-events", log_level=log_level),
            },
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=2,
        )
        storage.table.grant_read_write_data(self.function)
        storage.overflow_bucket.grant_read_write(self.function)
        acknowledge_function_role(self.function, storage)
        self.rule = events.Rule(
            self,
            "JobStateChanges",
            description="annotrain: Batch job state changes of the lab's queues",
            event_pattern=events.EventPattern(
                source=["aws.batch"],
                detail_type=["Batch Job State Change"],
                detail={"jobQueue": queue_arns},
            ),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    dead_letter_queue=self.dead_letter_queue,
                    max_event_age=Duration.hours(6),
                    retry_attempts=20,
                )
            ],
        )


_GRANT_ACTION_FAMILIES = [
    "Action::s3:Abort*",
    "Action::s3:DeleteObject*",
    "Action::s3:GetBucket*",
    "Action::s3:GetObject*",
    "Action::s3:List*",
    "Action::kms:GenerateDataKey*",
    "Action::kms:ReEncrypt*",
]


def grant_wildcards_ack(storage: StorageRefs) -> Ack:
    """The wildcard findings of ``grant_*`` on the lab's table, buckets and key."""
    return Ack(
        "AwsSolutions-IAM5",
        "grant_* on one table, one bucket or one key: object keys and index names are "
        "data (hence /* and /index/*), and s3:GetObject*/List*/Abort* and "
        "kms:GenerateDataKey*/ReEncrypt* are the grants' action families on that resource.",
        findings=[*_GRANT_ACTION_FAMILIES, *storage.grant_wildcards],
    )


def acknowledge_function_role(function: lambda_.IFunction, storage: StorageRefs) -> None:
    """The findings every function's role has, each with its reason."""
    acknowledge(
        function,
        Ack(
            "AwsSolutions-IAM4",
            "AWSLambdaBasicExecutionRole only lets the function write its own logs.",
            findings=[
                "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole"
            ],
        ),
        Ack(
            "AwsSolutions-IAM5",
            "X-Ray's PutTraceSegments and PutTelemetryRecords (active tracing) accept "
            "only Resource *.",
            findings=["Resource::*"],
        ),
        grant_wildcards_ack(storage),
        Ack(
            "AwsSolutions-L1",
            "Python 3.12 is pinned on purpose: the bundle's wheels are built for 3.12.",
        ),
    )


class ComputeStack(Stack):
    """The VPC, the Batch capacity of each profile, and the job-state events.

    Attributes:
        vpc: The VPC.
        capacities: The Batch capacity of each profile, by profile name (``gpu``, ``cpu``).
        events: The job-state events' function, rule and dead-letter queue.
        job_log_group: The job containers' log group.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LabConfig,
        storage_stack: StorageStack,
        lambda_asset: LambdaAsset,
        repo_root: Path,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        storage = StorageRefs.imported(self, storage=storage_stack)
        self.vpc = LabNetwork(
            self,
            "Network",
            max_azs=config.vpc_max_azs,
            log_retention_days=config.log_retention_days,
        ).vpc
        self.job_log_group = lab_log_group(
            self, "JobLogs", retention_days=config.log_retention_days
        )
        job_role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="annotrain jobs: the runs' records, snapshots and models",
        )
        storage.table.grant_read_write_data(job_role)
        storage.data_bucket.grant_read_write(job_role)
        storage.overflow_bucket.grant_read_write(job_role)
        acknowledge_grants(job_role, storage)
        environment = {
            "ANNOTRAIN_MODE": "serverless",
            "ANNOTRAIN_TABLE": storage.table.table_name,
            "ANNOTRAIN_OVERFLOW_BUCKET": storage.overflow_bucket.bucket_name,
            "ANNOTRAIN_DATA_BUCKET": storage.data_bucket.bucket_name,
            "ANNOTRAIN_HEARTBEAT_SECONDS": str(config.heartbeat_seconds),
        }
        self.capacities: dict[str, BatchCapacity] = {}
        for profile in config.profiles:
            image = ecs.ContainerImage.from_docker_image_asset(
                ecr_assets.DockerImageAsset(
                    self,
                    f"{profile.name.capitalize()}Image",
                    directory=str(repo_root),
                    file=DOCKERFILES[profile.name],
                    platform=ecr_assets.Platform.LINUX_AMD64,
                )
            )
            self.capacities[profile.name] = BatchCapacity(
                self,
                f"{profile.name.capitalize()}Batch",
                profile=profile,
                vpc=self.vpc,
                image=image,
                kinds=GPU_KINDS if profile.uses_gpu else tuple(JobKind),
                job_role=job_role,
                environment=environment,
                log_group=self.job_log_group,
            )
        for capacity in self.capacities.values():
            acknowledge_grants(capacity, storage)
        self.events = JobStateEvents(
            self,
            "JobStateEvents",
            code=lambda_asset.code(),
            storage=storage,
            queue_arns=[c.queue.job_queue_arn for c in self.capacities.values()],
            log_retention_days=config.log_retention_days,
            log_level=config.log_level,
        )

    @property
    def cpu(self) -> BatchCapacity:
        """The CPU capacity (always there)."""
        return self.capacities["cpu"]

    @property
    def gpu(self) -> BatchCapacity | None:
        """The GPU capacity, or None when the lab runs without GPUs."""
        return self.capacities.get("gpu")


def acknowledge_grants(construct: Construct, storage: StorageRefs) -> None:
    """The findings of the job containers' roles (job role, execution roles)."""
    acknowledge(
        construct,
        grant_wildcards_ack(storage),
        Ack(
            "AwsSolutions-IAM5",
            "ecr:GetAuthorizationToken (the execution role pulling the job image) accepts "
            "only Resource *.",
            findings=["Resource::*"],
        ),
    )
