"""The Storage stack: what outlives every deploy (table, buckets, key, backups), retained."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_backup as backup
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from annotrain.adapters.dynamodb import TABLE
from annotrain.domain.task_files import UPLOADS_PREFIX
from infra.nag import Ack, acknowledge

# Days a presigned upload may wait for its confirmation before S3 expires it.
UNCONFIRMED_UPLOAD_DAYS = 2


class LabTable(Construct):
    """The one DynamoDB table, built from the adapter's own design (``adapters.dynamodb.TABLE``).

    Point-in-time recovery, deletion protection, the lab's KMS key, on-demand billing.

    Attributes:
        table: The table.
    """

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        string = dynamodb.AttributeType.STRING
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=TABLE.partition_key, type=string),
            sort_key=dynamodb.Attribute(name=TABLE.sort_key, type=string),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for index in TABLE.indexes:
            self.table.add_global_secondary_index(
                index_name=index.name,
                partition_key=dynamodb.Attribute(name=index.partition_key, type=string),
                sort_key=dynamodb.Attribute(name=index.sort_key, type=string),
                projection_type=dynamodb.ProjectionType(index.projection),
            )


class LabBucket(Construct):
    """A private, versioned, KMS-encrypted, TLS-only bucket whose access is logged.

    Attributes:
        bucket: The bucket.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        access_logs: s3.IBucket,
        lifecycle_rules: list[s3.LifecycleRule],
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=f"{construct_id.lower()}/",
            lifecycle_rules=[
                # Processes killed mid-upload leave parts that cost until removed (docs/blobs.md).
                s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(1)),
                *lifecycle_rules,
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )


class StorageStack(Stack):
    """The lab's data: the table, the buckets, their key and the backup plan.

    Attributes:
        key: The customer managed KMS key of the table, the buckets and the backups.
        table: The DynamoDB table (``ANNOTRAIN_TABLE``).
        data_bucket: Task files, snapshots, models, run logs (``ANNOTRAIN_DATA_BUCKET``).
        overflow_bucket: Records too big for DynamoDB (``ANNOTRAIN_OVERFLOW_BUCKET``).
        backups_bucket: Exports written by the backups routes.
        access_logs_bucket: The server access logs of the other buckets.
    """

    def __init__(self, scope: Construct, construct_id: str, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.key = kms.Key(
            self,
            "LabKey",
            description="annotrain: the table, the buckets and their backups",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogs",
            # S3 server access logging delivers only to SSE-S3 buckets, not SSE-KMS.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(365),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.access_logs_bucket,
            Ack(
                "AwsSolutions-S1",
                "This is the server access log bucket; logging it into itself would loop.",
            ),
        )
        self.table = LabTable(self, "Records", key=self.key).table
        self.data_bucket = LabBucket(
            self,
            "Data",
            key=self.key,
            access_logs=self.access_logs_bucket,
            lifecycle_rules=[
                # A replaced model or snapshot is kept a while for recovery, not forever.
                s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30)),
                # Presigned uploads nobody confirmed (a presigned POST lives an hour at
                # most): gone after two days, and their old versions after one more.
                s3.LifecycleRule(
                    id="UnconfirmedUploads",
                    prefix=UPLOADS_PREFIX,
                    expiration=Duration.days(UNCONFIRMED_UPLOAD_DAYS),
                    noncurrent_version_expiration=Duration.days(1),
                ),
            ],
        ).bucket
        self.overflow_bucket = LabBucket(
            self,
            "Overflow",
            key=self.key,
            access_logs=self.access_logs_bucket,
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(7))],
        ).bucket
        self.backups_bucket = LabBucket(
            self,
            "Backups",
            key=self.key,
            access_logs=self.access_logs_bucket,
            lifecycle_rules=[
                s3.LifecycleRule(
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=Duration.days(30),
                        )
                    ],
                    expiration=Duration.days(365),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
        ).bucket
        self._backup_plan()
        self._export()

    def _export(self) -> None:
        exports = {
            "KeyArn": self.key.key_arn,
            "TableArn": self.table.table_arn,
            "DataBucketArn": self.data_bucket.bucket_arn,
            "DataBucketName": self.data_bucket.bucket_name,
            "OverflowBucketArn": self.overflow_bucket.bucket_arn,
            "OverflowBucketName": self.overflow_bucket.bucket_name,
            "BackupsBucketArn": self.backups_bucket.bucket_arn,
            "BackupsBucketName": self.backups_bucket.bucket_name,
        }
        for name, value in exports.items():
            CfnOutput(self, name, value=value, export_name=f"{self.stack_name}-{name}")

    def _backup_plan(self) -> None:
        vault = backup.BackupVault(
            self, "Vault", encryption_key=self.key, removal_policy=RemovalPolicy.RETAIN
        )
        plan = backup.BackupPlan(self, "Plan", backup_vault=vault)
        plan.add_rule(
            backup.BackupPlanRule(
                rule_name="Daily35Days",
                schedule_expression=events.Schedule.cron(hour="3", minute="0"),
                delete_after=Duration.days(35),
            )
        )
        selection = plan.add_selection(
            "LabData",
            resources=[
                backup.BackupResource.from_dynamo_db_table(self.table),
                backup.BackupResource.from_arn(self.data_bucket.bucket_arn),
                backup.BackupResource.from_arn(self.overflow_bucket.bucket_arn),
            ],
            allow_restores=True,
        )
        acknowledge(
            selection,
            Ack(
                "AwsSolutions-IAM4",
                "AWS Backup's own service-role policies are what its backup and restore "
                "jobs are documented to need.",
                findings=[
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AWSBackupServiceRolePolicyForBackup",
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AWSBackupServiceRolePolicyForRestores",
                ],
            ),
        )


@dataclass(frozen=True, slots=True)
class StorageRefs:
    """The Storage stack's resources as the other stacks import them (by export name).

    Imported by name rather than by CDK's automatic cross-stack references, so the
    names are stable: the stacks that use them can be replaced without touching
    Storage, and their IAM findings name the export (``AnnotrainStorage-DataBucketArn``).

    Attributes:
        key: The lab's KMS key.
        table: The DynamoDB table.
        data_bucket: Files, snapshots, models.
        overflow_bucket: Oversized records.
        backups_bucket: Backup exports.
        export_prefix: The Storage stack's name, which every export name starts with.
    """

    key: kms.IKey
    table: dynamodb.ITable
    data_bucket: s3.IBucket
    overflow_bucket: s3.IBucket
    backups_bucket: s3.IBucket
    export_prefix: str

    @classmethod
    def imported(cls, scope: Construct, *, storage: StorageStack) -> StorageRefs:
        """Import the Storage stack's exports into ``scope``'s stack (which then depends on it)."""
        Stack.of(scope).add_stack_dependency(storage)
        prefix = storage.stack_name
        imports = Construct(scope, "StorageImports")

        def value(name: str) -> str:
            return Fn.import_value(f"{prefix}-{name}")

        key = kms.Key.from_key_arn(imports, "Key", value("KeyArn"))
        return cls(
            key=key,
            table=dynamodb.Table.from_table_attributes(
                imports,
                "Table",
                table_arn=value("TableArn"),
                encryption_key=key,
                global_indexes=[index.name for index in TABLE.indexes],
            ),
            data_bucket=_imported_bucket(imports, "Data", prefix, key),
            overflow_bucket=_imported_bucket(imports, "Overflow", prefix, key),
            backups_bucket=_imported_bucket(imports, "Backups", prefix, key),
            export_prefix=prefix,
        )

    @property
    def grant_wildcards(self) -> list[str]:
        """The ``Resource::`` findings cdk-nag reports for ``grant_*`` on these resources."""
        return [
            f"Resource::{self.export_prefix}-TableArn/index/*",
            *(f"Resource::{self.export_prefix}-{b}BucketArn/*" for b in _BUCKETS),
        ]


_BUCKETS = ("Data", "Overflow", "Backups")


def _imported_bucket(scope: Construct, name: str, prefix: str, key: kms.IKey) -> s3.IBucket:
    return s3.Bucket.from_bucket_attributes(
        scope,
        f"{name}Bucket",
        bucket_arn=Fn.import_value(f"{prefix}-{name}BucketArn"),
        bucket_name=Fn.import_value(f"{prefix}-{name}BucketName"),
        encryption_key=key,
    )
