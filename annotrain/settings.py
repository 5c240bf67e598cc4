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

from pydantic import Field
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
        table: The DynamoDB table (serverless; ``ANNOTRAIN_TABLE``, as the Batch events
            function reads it).
        overflow_bucket: The S3 bucket for items too big for DynamoDB (serverless).
        data_bucket: The S3 bucket for task files, datasets and models (serverless).
        use_gpu: Whether the lab may use a GPU it has (``useGPU`` in the AMI's
            ``/etc/annotrain/annotrain.env``): false keeps the drivers but hides the GPU
            from the lab and its jobs.
        backup_target: Where ``POST /api/v1/backups`` and ``annotrain backup`` write
            without ``--to``: ``s3://bucket/prefix``, an absolute folder, or a folder
            relative to the data folder (default ``backups``: ``DATA_DIR/backups``, left
            out of the backups themselves).
        backup_keep: How many backups the daily backup keeps (``--keep``).
    """

    model_config = SettingsConfigDict(env_prefix="ANNOTRAIN_", extra="ignore")

    mode: Mode = Mode.SINGLE_NODE
    data_dir: Path = Path(".annotrain")
    max_json_bytes: int = Field(default=64 * 1024**2, gt=0)
    max_upload_bytes: int = Field(default=256 * 1024**2, gt=0)
    max_image_bytes: int = Field(default=50 * 1024**2, gt=0)
    table: str = ""
    overflow_bucket: str = ""
    data_bucket: str = ""
    use_gpu: bool = True
    backup_target: str = Field(default="backups", min_length=1)
    backup_keep: int = Field(default=7, ge=1)

    @property
    def blob_dir(self) -> Path:
        """The single-node blob store's folder: task images, snapshots, logs, models."""
        return self.data_dir / "blobs"

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
