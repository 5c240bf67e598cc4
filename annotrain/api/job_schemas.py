"""The HTTP contract of the job routes (servers), kept apart from the domain.

Responses are built from domain values by the explicit ``*_out`` functions below.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from annotrain.api.errors import ERROR_CONTENT
from annotrain.domain.records import JobKind, Run, RunStatus, Server


class ServerOut(BaseModel):
    """A running job: a training, a pre-annotation or an OCR pass."""

    run_id: str
    kind: JobKind
    project_id: int
    started_by: str
    since: datetime
    resource: Literal["GPU", "CPU"] = Field(description="what it runs on")
    host: str = Field(description="host and process id, or the AWS Batch job id")


class ServerList(BaseModel):
    """The running jobs you may see, oldest first."""

    items: list[ServerOut]


class ServerStopOut(BaseModel):
    """A job asked to stop: its run is cancelled, its process is being stopped."""

    run_id: str
    status: RunStatus


def server_out(server: Server) -> ServerOut:
    """A server record as the API shows it."""
    return ServerOut(
        run_id=server.run_id,
        kind=server.kind,
        project_id=server.project_id,
        started_by=server.started_by,
        since=server.since,
        resource="GPU" if server.use_gpu else "CPU",
        host=server.host,
    )


def server_stop_out(run: Run) -> ServerStopOut:
    """A stopped job's run as the API shows it."""
    return ServerStopOut(run_id=run.id, status=run.status)


def not_implemented_until(issue: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI note of a route that answers 501 until ``issue`` lands."""
    return {
        501: {
            "description": f"not_implemented: lands with {issue}; the message names what "
            "is missing",
            "content": ERROR_CONTENT,
        }
    }
