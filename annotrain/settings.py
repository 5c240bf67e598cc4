"""The lab's settings: the only place environment variables are read.

Every setting is an environment variable with the prefix ``ANNOTRAIN_``
(``ANNOTRAIN_DATA_DIR``, ``ANNOTRAIN_MODE``…). Nothing is read at import: call
:func:`get_settings` (cached), or take it through FastAPI's ``Depends`` so tests
can override it.
"""

from __future__ import annotations

import functools
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["FirstBootSettings", "Mode", "Settings", "get_settings"]


class Mode(StrEnum):
    """How the lab runs: on one machine, or serverless in an AWS account."""

    SINGLE_NODE = "single_node"
    SERVERLESS = "serverless"


class Settings(BaseSettings):
    """Settings of the HTTP API and the single-node server.

    Attributes:
        mode: ``single_node`` (SQLite, API tokens) or ``serverless`` (DynamoDB,
            Cognito claims from API Gateway).
        data_dir: The single-node data folder (database, files, admin token).
        max_json_bytes: The largest request body accepted, uploads aside.
        max_upload_bytes: The largest ``multipart/form-data`` body accepted.
        max_image_bytes: The largest image a task import takes, uploaded in a form or
            through a presigned URL.
        max_pdf_pages: The most PDF pages one upload renders (over all its PDFs).
        pdf_dpi: Dots per inch uploaded PDF pages are rendered at.
        table: The DynamoDB table (serverless; ``ANNOTRAIN_TABLE``, as the Batch events
            function reads it).
        overflow_bucket: The S3 bucket for items too big for DynamoDB (serverless).
        data_bucket: The S3 bucket for task files, datasets and models (serverless).
        ami: Whether this lab is a Marketplace AMI instance (``ANNOTRAIN_AMI``, written
            by the installer): only its PAYG license exists; importing or deleting
            licenses is refused, and there is no default license.
        instance_id: The EC2 instance this lab runs on (``ANNOTRAIN_INSTANCE_ID``,
            written at first boot); a PAYG license must be bound to it.
        use_gpu: Whether jobs may use the GPU (``ANNOTRAIN_USE_GPU``, written by the
            installer; false stops GPU use without removing drivers).
        payg_training_servers: Training servers a PAYG license allows at once.
        payg_preannotation_servers: Pre-annotation servers a PAYG license allows at once.
        payg_validity_days: How long a generated PAYG license is valid.
        payg_renew_before_days: A new PAYG license is generated when the current one
            expires within this many days.
        vendor_public_keys: More vendor keys to trust besides those in the code, as
            JSON: ``{"key_id": "<base64 of the raw 32-byte key>"}``.
        license_cache_seconds: How long the cost banner's license state is kept
            before the store is read again (a license change clears it at once).
        cpu_queue: The AWS Batch job queue of CPU runs (serverless jobs function).
        gpu_queue: The AWS Batch job queue of GPU runs; empty when the stack has no
            GPUs, and then a run asking for the GPU is refused (serverless jobs function).
        job_definition_train: The Batch job definition of CPU trainings.
        job_definition_preannotate: The Batch job definition of CPU pre-annotations.
        job_definition_ocr: The Batch job definition of OCR jobs.
        gpu_job_definition_train: The Batch job definition of GPU trainings.
        gpu_job_definition_preannotate: The Batch job definition of GPU pre-annotations.
        event_bus: The EventBridge bus the completions function publishes submitted
            completions to (serverless; the jobs function's rule on it starts
            active-learning trainings).
        allow_custom_scripts: Whether project Owners may upload a training script that
            the train job runs for NER (off unless an admin turns it on: the script
            runs with the job's rights over its own run's files; see docs/jobs.md).
            The API checks it on upload and training start, the job again before it
            runs a script: set it in both environments.
        max_training_script_bytes: The largest training script an upload takes.
        custom_script_timeout_seconds: How long the job lets a training script run.
        backup_target: Where ``POST /api/v1/backups`` and ``annotrain backup`` write
            without ``--to``: ``s3://bucket/prefix``, an absolute folder, or a folder
            relative to the data folder (default ``backups``: ``DATA_DIR/backups``, left
            out of the backups themselves).
        backup_keep: How many backups the daily backup keeps (``--keep``).
        cognito_domain: The Cognito user pool's hosted-UI domain
            (``https://<prefix>.auth.<region>.amazoncognito.com``); with
            ``cognito_client_id`` the web console signs in there (authorization code
            with PKCE). ``http://`` only for a loopback host.
        cognito_client_id: The app client the console signs in with (no secret).
    """

    model_config = SettingsConfigDict(env_prefix="ANNOTRAIN_", extra="ignore")

    mode: Mode = Mode.SINGLE_NODE
    data_dir: Path = Path(".annotrain")
    max_json_bytes: int = Field(default=64 * 1024**2, gt=0)
    max_upload_bytes: int = Field(default=256 * 1024**2, gt=0)
    max_image_bytes: int = Field(default=50 * 1024**2, gt=0)
    max_pdf_pages: int = Field(default=50, gt=0, le=2000)
    pdf_dpi: int = Field(default=150, ge=72, le=400)
    table: str = ""
    overflow_bucket: str = ""
    data_bucket: str = ""
    ami: bool = False
    instance_id: str = ""
    use_gpu: bool = True
    payg_training_servers: int = Field(default=2, ge=1, le=64)
    payg_preannotation_servers: int = Field(default=2, ge=1, le=64)
    payg_validity_days: int = Field(default=30, ge=2, le=366)
    payg_renew_before_days: int = Field(default=7, ge=1, le=365)
    vendor_public_keys: dict[str, str] = Field(default_factory=dict)
    license_cache_seconds: float = Field(default=60.0, ge=0, le=3600)
    cpu_queue: str = ""
    gpu_queue: str = ""
    job_definition_train: str = ""
    job_definition_preannotate: str = ""
    job_definition_ocr: str = ""
    gpu_job_definition_train: str = ""
    gpu_job_definition_preannotate: str = ""
    event_bus: str = ""
    allow_custom_scripts: bool = False
    max_training_script_bytes: int = Field(default=256 * 1024, gt=0)
    custom_script_timeout_seconds: float = Field(default=6 * 3600, gt=0)
    backup_target: str = Field(default="backups", min_length=1)
    backup_keep: int = Field(default=7, ge=1)
    cognito_domain: str = Field(default="", max_length=300)
    cognito_client_id: str = Field(default="", max_length=128, pattern=r"^[A-Za-z0-9_+-]*$")

    @field_validator("cognito_domain")
    @classmethod
    def _domain_is_an_origin(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value:
            return value
        parts = urlsplit(value)
        loopback = parts.hostname in ("localhost", "127.0.0.1")
        if (
            parts.scheme not in ("https", "http")
            or (parts.scheme == "http" and not loopback)
            or not parts.hostname
            or parts.path
            or parts.query
            or parts.fragment
        ):
            raise ValueError(
                "ANNOTRAIN_COGNITO_DOMAIN must be the hosted UI's origin, "
                "https://<prefix>.auth.<region>.amazoncognito.com, with no path"
            )
        return value

    @property
    def blob_dir(self) -> Path:
        """The single-node blob store's folder: task images, snapshots, logs, models."""
        return self.data_dir / "blobs"

    @property
    def license_key_path(self) -> Path:
        """The instance key that signs this instance's PAYG licenses (mode 0600)."""
        return self.data_dir / "license-signing-key"

    @property
    def backup_location(self) -> str:
        """Where backups go when no other place is named."""
        if self.backup_target.startswith("s3://") or Path(self.backup_target).is_absolute():
            return self.backup_target
        return str(self.data_dir / self.backup_target)

    @property
    def database_path(self) -> Path:
        """The single-node SQLite file."""
        return self.data_dir / "annotrain.db"


class FirstBootSettings(BaseSettings):
    """Settings of ``annotrain first-boot`` (the AMI's first-boot oneshot).

    Attributes:
        marketplace_product_code: The AWS Marketplace product code of this AMI; first
            boot generates a PAYG license only for an instance that carries it.
        imds_endpoint: The EC2 instance metadata service (a test points it elsewhere).
    """

    model_config = SettingsConfigDict(env_prefix="ANNOTRAIN_", extra="ignore")

    marketplace_product_code: str = ""
    imds_endpoint: str = "http://169.254.169.254"


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
