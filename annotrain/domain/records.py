"""What the lab keeps besides tasks: projects, runs, models, servers, users, licenses, usage.

Plain values, like the rest of the domain. Every record that can be updated
carries a ``revision``: the stores refuse an update whose revision is not the
stored one (optimistic concurrency), so two writers never silently overwrite each
other. Times are timezone-aware UTC ``datetime`` values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from annotrain.domain.training_plan import ModelKind

_EMPTY: Mapping[str, Any] = {}


class JobKind(StrEnum):
    """What a job does; ``python -m batch_jobs.<kind>`` runs it."""

    TRAIN = "train"
    PREANNOTATE = "preannotate"
    OCR = "ocr"


class RunStatus(StrEnum):
    """Where a run stands. ``succeeded``, ``failed`` and ``cancelled`` are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True once the run will not change state again."""
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class Project:
    """A labeling project.

    Attributes:
        id: Assigned by the store (0 until stored).
        name: What people call it.
        label_config: The Label Studio XML labeling config.
        created_by: Who created it.
        created_at: When.
        settings: Project settings (active-learning threshold, language…).
        revision: The stored revision this value was read at (0: never stored).
    """

    id: int
    name: str
    label_config: str
    created_by: str
    created_at: datetime
    settings: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Run:
    """One job's run: a training, a pre-annotation or an OCR pass.

    Attributes:
        id: Unique across projects (jobs know only this).
        project_id: The project it works on.
        kind: What it does.
        status: Where it stands.
        created_by: Who asked for it.
        created_at: When it was asked for.
        use_gpu: Whether it runs on the GPU queue or device.
        params: What it was asked to do (training parameters, task ids…).
        progress: 0 to 100.
        epoch: The training epoch under way, when training.
        metrics: Results so far (per model: P/R/F1 per label, confusion matrix…).
        history: One entry per epoch or evaluation: loss, scores, time.
        logs_key: Where its log lies in the blob store.
        dataset_key: Where its immutable dataset snapshot lies in the blob store.
        failure_reason: Why it failed, for a person to act on.
        started_at: When it started running.
        finished_at: When it reached a final status.
        heartbeat_at: The last sign of life from its process.
        job_ref: The runner's handle (a process id, an AWS Batch job id).
        revision: The stored revision this value was read at (0: never stored).
    """

    id: str
    project_id: int
    kind: JobKind
    status: RunStatus
    created_by: str
    created_at: datetime
    use_gpu: bool = False
    params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    progress: float = 0.0
    epoch: int | None = None
    metrics: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    history: tuple[Mapping[str, Any], ...] = ()
    logs_key: str | None = None
    dataset_key: str | None = None
    failure_reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    job_ref: str | None = None
    revision: int = 0


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A trained model in the registry.

    Attributes:
        name: The model's name; versions share it.
        version: 1, 2, … in the order they were trained.
        kind: What it does.
        labels: What it predicts.
        project_id: The project it was trained on.
        run_id: The run that trained it.
        artifact_key: Where its files lie in the blob store.
        base_model: The encoder it started from.
        metrics: Its benchmark: P/R/F1 per label, confusion matrix.
        created_at: When it was registered.
        deployed_in: Projects whose config points at it.
        revision: The stored revision this value was read at (0: never stored).
    """

    name: str
    version: int
    kind: ModelKind
    labels: tuple[str, ...]
    project_id: int
    run_id: str
    artifact_key: str
    base_model: str
    created_at: datetime
    metrics: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    deployed_in: tuple[int, ...] = ()
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Server:
    """A running job, as the servers page shows it.

    Attributes:
        run_id: The run it serves.
        kind: What it does.
        project_id: For which project.
        started_by: Who started it.
        since: When it started.
        use_gpu: GPU or CPU.
        host: Where it runs (host name and process id, or AWS Batch job id).
    """

    run_id: str
    kind: JobKind
    project_id: int
    started_by: str
    since: datetime
    use_gpu: bool
    host: str = ""


class UserRole(StrEnum):
    """What a user may do across the lab."""

    ADMIN = "admin"
    USER = "user"


@dataclass(frozen=True, slots=True)
class User:
    """A person (or tool) that signs in.

    Attributes:
        name: Unique; what completions and members carry.
        role: Lab-wide role.
        created_at: When the user was made.
        revision: The stored revision this value was read at (0: never stored).
    """

    name: str
    role: UserRole
    created_at: datetime
    revision: int = 0


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token; only its hash is ever stored.

    Attributes:
        token_hash: The hash the token is looked up by.
        user: Whose token it is.
        created_at: When it was issued.
        label: What it is for ("laptop", "CI").
    """

    token_hash: str
    user: str
    created_at: datetime
    label: str = ""


@dataclass(frozen=True, slots=True)
class LicenseRecord:
    """A license document as imported; the licensing rules read and verify it.

    Attributes:
        id: The license id.
        document: The signed document, as given.
        imported_at: When it was stored.
    """

    id: str
    document: str
    imported_at: datetime


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """Server time used, by billing dimension.

    Attributes:
        dimension: What is billed (``training_gpu_hours``, ``inference_cpu_hours``…).
        quantity: How much, in the dimension's unit.
        start: When the use began.
        end: When it ended.
        run_id: The run that used it.
    """

    dimension: str
    quantity: float
    start: datetime
    end: datetime
    run_id: str


class MeteringState(StrEnum):
    """Where one hour's metering record stands with AWS Marketplace.

    ``pending``: counted, not sent yet (or a send failed and will be retried);
    ``sending``: a send began (after a crash, the identical request is sent again,
    which MeterUsage answers idempotently); ``sent``: AWS took it; ``rejected``: AWS
    refused it for good (too old, a quantity it holds differently…), never resent.
    """

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class MeteringEntry:
    """One (hour, dimension) in the local metering ledger.

    Attributes:
        hour: The start of the UTC hour metered (the MeterUsage timestamp).
        dimension: The Marketplace usage dimension (``training_gpu_hours``…).
        quantity: Whole server-hours, fixed when the entry is first written: a
            resend after a crash sends the very same request.
        state: Where it stands.
        attempts: Sends tried.
        record_id: AWS's metering record id, once sent.
        last_error: Why the last send failed or was refused.
        updated_at: When it last changed.
        revision: The stored revision this value was read at (0: never stored).
    """

    hour: datetime
    dimension: str
    quantity: int
    state: MeteringState
    updated_at: datetime
    attempts: int = 0
    record_id: str | None = None
    last_error: str | None = None
    revision: int = 0
