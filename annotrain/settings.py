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

__all__ = ["Mode", "Settings", "get_settings"]


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
        allow_custom_scripts: Whether project Owners may upload a training script that
            the train job runs for NER (off unless an admin turns it on: the script
            runs with the job's rights over its own run's files; see docs/jobs.md).
            The API checks it on upload and training start, the job again before it
            runs a script: set it in both environments.
        max_training_script_bytes: The largest training script an upload takes.
        custom_script_timeout_seconds: How long the job lets a training script run.
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
    allow_custom_scripts: bool = False
    max_training_script_bytes: int = Field(default=256 * 1024, gt=0)
    custom_script_timeout_seconds: float = Field(default=6 * 3600, gt=0)

    @property
    def blob_dir(self) -> Path:
        """The single-node blob store's folder: task images, snapshots, logs, models."""
        return self.data_dir / "blobs"

    @property
    def database_path(self) -> Path:
        """The single-node SQLite file."""
        return self.data_dir / "annotrain.db"


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
