"""The Ami stack: an EC2 Image Builder pipeline per flavour (CPU, GPU) for the Marketplace AMI.

Its components are the YAML documents in ``marketplace_ami/components/`` (Image
Builder's component format), in name order, after AWS's ``update-linux``; whatever
documents exist when the app runs are taken. A document whose name ends in ``-cpu``
goes only into the CPU recipe, ``-gpu`` only into the GPU one, any other into both.
A component's name carries a hash of its document, because Image Builder components
are immutable: a changed document is a new component, and the recipe's version follows.

The lab's sources reach the build instance as a CDK asset (a zip in the bootstrap
bucket): each recipe passes its S3 URI to the components as ``SourceUri``, and the
Marketplace product code (context ``annotrain_marketplace_product_code``) as
``ProductCode``, to the components that declare those parameters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_imagebuilder as imagebuilder
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra.nag import Ack, acknowledge

# The parent images, as SSM parameters Image Builder resolves at build time.
PARENT_IMAGES = {
    "cpu": "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "gpu": (
        "ssm:/aws/service/deeplearning/ami/x86_64/"
        "base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id"
    ),
}
BUILD_INSTANCE_TYPES = {"cpu": "m6i.large", "gpu": "g4dn.xlarge"}
FLAVOURS = ("cpu", "gpu")
#: What of the repository the build instance needs: the sources, pins and installer.
SOURCE_EXCLUDES = [
    ".git", ".venv", ".lock-venv", ".build", ".annotrain", ".annotrain-backups", "cdk.out",
    "infra/node_modules", "**/__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache",
    ".hypothesis", "tests", "benchmarks",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class ComponentDocument:
    """An Image Builder component document found in ``marketplace_ami/``.

    Attributes:
        name: The file's stem (``install-annotrain``).
        text: The YAML document.
    """

    name: str
    text: str

    @property
    def digest(self) -> str:
        """A short hash of the document: a changed document is a new component."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:10]

    @property
    def flavours(self) -> tuple[str, ...]:
        """The recipes it belongs to: by the name's ``-cpu`` / ``-gpu`` ending, else both."""
        for flavour in FLAVOURS:
            if self.name.endswith(f"-{flavour}"):
                return (flavour,)
        return FLAVOURS

    def declares(self, parameter: str) -> bool:
        """Whether the document declares a parameter (``- SourceUri:`` under ``parameters``)."""
        return f"- {parameter}:" in self.text


def component_documents(folder: Path) -> list[ComponentDocument]:
    """The ``*.yml`` / ``*.yaml`` documents of ``folder``, by name; none when it is absent."""
    if not folder.is_dir():
        return []
    paths = sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])
    return [ComponentDocument(p.stem, p.read_text(encoding="utf-8")) for p in paths]


class AmiPipeline(Construct):
    """The recipe and pipeline of one flavour.

    Attributes:
        recipe: The image recipe.
        pipeline: The image pipeline, run on demand
            (``aws imagebuilder start-image-pipeline-execution``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        flavour: str,
        components: Sequence[tuple[imagebuilder.CfnComponent, dict[str, str]]],
        version: str,
        instance_profile: iam.CfnInstanceProfile,
        logs_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        update_linux = stack.format_arn(
            service="imagebuilder",
            account="aws",
            resource="component",
            resource_name="update-linux/x.x.x",
        )
        self.recipe = imagebuilder.CfnImageRecipe(
            self,
            "Recipe",
            name=f"{stack.stack_name}-{flavour}",
            version=version,
            parent_image=PARENT_IMAGES[flavour],
            components=[
                imagebuilder.CfnImageRecipe.ComponentConfigurationProperty(
                    component_arn=update_linux
                ),
                *(
                    imagebuilder.CfnImageRecipe.ComponentConfigurationProperty(
                        component_arn=component.attr_arn,
                        parameters=[
                            imagebuilder.CfnImageRecipe.ComponentParameterProperty(
                                name=name, value=[value]
                            )
                            for name, value in parameters.items()
                        ]
                        or None,
                    )
                    for component, parameters in components
                ),
            ],
            block_device_mappings=[
                imagebuilder.CfnImageRecipe.InstanceBlockDeviceMappingProperty(
                    device_name="/dev/xvda",
                    ebs=imagebuilder.CfnImageRecipe.EbsInstanceBlockDeviceSpecificationProperty(
                        # The account's EBS key: Image Builder's service-linked role can use it.
                        encrypted=True,
                        volume_size=100,
                        volume_type="gp3",
                        delete_on_termination=True,
                    ),
                )
            ],
        )
        infrastructure = imagebuilder.CfnInfrastructureConfiguration(
            self,
            "Infrastructure",
            name=f"{stack.stack_name}-{flavour}",
            instance_profile_name=instance_profile.ref,
            instance_types=[BUILD_INSTANCE_TYPES[flavour]],
            terminate_instance_on_failure=True,
            instance_metadata_options=imagebuilder.CfnInfrastructureConfiguration.InstanceMetadataOptionsProperty(
                http_tokens="required"
            ),
            logging=imagebuilder.CfnInfrastructureConfiguration.LoggingProperty(
                s3_logs=imagebuilder.CfnInfrastructureConfiguration.S3LogsProperty(
                    s3_bucket_name=logs_bucket.bucket_name, s3_key_prefix=f"imagebuilder/{flavour}"
                )
            ),
        )
        self.pipeline = imagebuilder.CfnImagePipeline(
            self,
            "Pipeline",
            name=f"{stack.stack_name}-{flavour}",
            description=f"annotrain Marketplace AMI ({flavour.upper()})",
            image_recipe_arn=self.recipe.attr_arn,
            infrastructure_configuration_arn=infrastructure.attr_arn,
            image_tests_configuration=imagebuilder.CfnImagePipeline.ImageTestsConfigurationProperty(
                image_tests_enabled=True, timeout_minutes=90
            ),
            enhanced_image_metadata_enabled=True,
        )


class AmiStack(Stack):
    """Image Builder: the components of ``marketplace_ami/`` and a CPU and a GPU pipeline.

    Args:
        components_dir: The component documents (``marketplace_ami/components``).
        source_dir: The repository root, shipped to the build instances as an asset.
        product_code: The AWS Marketplace product code first boot checks for ("" until
            the listing has one: first boot then generates no license).

    Attributes:
        components: The components made from the documents, by name.
        pipelines: The pipeline of each flavour (``cpu``, ``gpu``).
        logs_bucket: The build logs.
        sources: The asset holding the lab's sources.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        components_dir: Path,
        source_dir: Path,
        product_code: str = "",
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        documents = component_documents(components_dir)
        key = kms.Key(
            self,
            "AmiKey",
            description="annotrain AMI builds: volumes and build logs",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.logs_bucket = s3.Bucket(
            self,
            "BuildLogs",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.logs_bucket,
            Ack(
                "AwsSolutions-S1",
                "Build logs of the AMI pipelines; the bucket holds only logs, written by the "
                "build instances, and is not itself worth a second log.",
            ),
        )
        logs_resource = self.logs_bucket.node.default_child
        assert isinstance(logs_resource, s3.CfnBucket)
        role = iam.Role(
            self,
            "BuildRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore"),
                iam.ManagedPolicy.from_aws_managed_policy_name("EC2InstanceProfileForImageBuilder"),
            ],
        )
        self.logs_bucket.grant_put(role)
        key.grant_encrypt_decrypt(role)
        acknowledge(
            role,
            Ack(
                "AwsSolutions-IAM4",
                "Image Builder's build instances need its documented managed policies "
                "(SSM agent, Image Builder agent).",
                findings=[
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore",
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/"
                    "EC2InstanceProfileForImageBuilder",
                ],
            ),
            Ack(
                "AwsSolutions-IAM5",
                "Build logs are written under any key of the one build-log bucket; "
                "GenerateDataKey*/ReEncrypt* are the key grant's action families on one key.",
                findings=[
                    "Action::s3:Abort*",
                    "Action::kms:GenerateDataKey*",
                    "Action::kms:ReEncrypt*",
                    f"Resource::<{self.resolve(self.get_logical_id(logs_resource))}.Arn>/*",
                ],
            ),
        )
        self.sources = s3_assets.Asset(
            self, "Sources", path=str(source_dir), exclude=SOURCE_EXCLUDES
        )
        # The one object, not the whole bootstrap bucket that grant_read would open.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.sources.bucket.arn_for_objects(self.sources.s3_object_key)],
            )
        )
        profile = iam.CfnInstanceProfile(self, "BuildInstanceProfile", roles=[role.role_name])
        # Recipes are immutable: new documents, sources or product code make a new version.
        fingerprint = "".join(d.digest for d in documents) + self.sources.asset_hash + product_code
        digest = hashlib.sha256(fingerprint.encode()).hexdigest()
        version = f"1.{int(digest[:6], 16) % 100000}.0"
        self.components = {
            document.name: imagebuilder.CfnComponent(
                self,
                f"Component{document.name.title().replace('-', '').replace('_', '')}",
                name=f"{self.stack_name}-{document.name}-{document.digest}",
                platform="Linux",
                version="1.0.0",
                data=document.text,
            )
            for document in documents
        }
        parameters = {
            "SourceUri": self.sources.s3_object_url,
            "ProductCode": product_code or "none",
        }
        self.pipelines = {
            flavour: AmiPipeline(
                self,
                f"{flavour.capitalize()}Pipeline",
                flavour=flavour,
                components=[
                    (
                        self.components[document.name],
                        {k: v for k, v in parameters.items() if document.declares(k)},
                    )
                    for document in documents
                    if flavour in document.flavours
                ],
                version=version,
                instance_profile=profile,
                logs_bucket=self.logs_bucket,
            )
            for flavour in FLAVOURS
        }
