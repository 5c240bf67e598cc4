"""The ports: what the services need from storage, files, jobs, metering and time.

Each is a ``Protocol`` with (at least) two adapters in ``annotrain/adapters``: an
embedded one for the single node (SQLite, a folder, local processes) and an AWS
one (DynamoDB, S3, AWS Batch). One contract test suite per port runs against
every adapter of it (``tests/contract``).

Shared rules:

- Records carry a ``revision``. ``create_*`` stores revision 1; ``update_*`` stores
  ``revision + 1`` only if the stored revision is the one given, and raises
  :class:`~annotrain.domain.errors.ConflictError` otherwise. Nothing is ever
  silently overwritten.
- ``get_*`` raises :class:`~annotrain.domain.errors.NotFoundError` for what does not
  exist; ``delete_*`` of something absent is not an error (deletes are idempotent).
- Every listing is paginated: it returns a :class:`Page` whose ``next_token``, passed
  back as ``token``, gives the next page; ``None`` means there is no more. Tokens are
  opaque strings; ``limit`` is at most :data:`MAX_PAGE_SIZE`.
- Listing what a missing project holds raises NotFoundError rather than giving an
  empty page. A page size outside 1..MAX_PAGE_SIZE raises InvalidRequestError.
- Adapters translate their technology's errors into the domain's; storage that
  stays busy after every retry raises
  :class:`~annotrain.domain.errors.StoreUnavailableError`.
- Listings ordered by time break ties by id, in the same direction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, Generic, Protocol, TypeVar, runtime_checkable

from annotrain.domain.records import (
    ApiToken,
    JobKind,
    LicenseRecord,
    MeteringEntry,
    MeteringState,
    ModelEntry,
    Project,
    Run,
    RunStatus,
    Server,
    UsageRecord,
    User,
)
from annotrain.domain.snapshot import TrainingSnapshot
from annotrain.domain.tasks import Completion, Member, Prediction, Review, Task
from annotrain.domain.training_plan import ModelSpec

T = TypeVar("T")
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing.

    Attributes:
        items: This page's items.
        next_token: Pass it back to get the next page; None when this is the last.
    """

    items: list[T]
    next_token: str | None = None


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """Which tasks a listing returns.

    Attributes:
        tags: Only tasks with at least one of these tags; empty for all.
        has_completions: Only tasks with (True) or without (False) a submitted
            completion; None for both.
        has_predictions: Only tasks with (True) or without (False) predictions.
    """

    tags: frozenset[str] = frozenset()
    has_completions: bool | None = None
    has_predictions: bool | None = None


class TaskOrder(StrEnum):
    """How a numbered task listing is ordered.

    ``uncertainty`` (active learning) puts the tasks whose latest prediction (the
    one with the highest id) has the lowest task score first; tasks without a
    prediction, or whose latest one has no score, come last; ties by task id.
    """

    ID = "id"
    UNCERTAINTY = "uncertainty"


class ProjectStore(Protocol):
    """Projects and their members."""

    def create_project(self, project: Project) -> Project:
        """Store a new project; returns it with its id assigned and revision 1."""
        ...

    def get_project(self, project_id: int) -> Project:
        """The project, or NotFoundError."""
        ...

    def update_project(self, project: Project) -> Project:
        """Store a changed project (revision-checked); returns it at its new revision."""
        ...

    def delete_project(self, project_id: int) -> None:
        """Delete the project with its members, tasks, completions and predictions."""
        ...

    def list_projects(self, *, limit: int = 100, token: str | None = None) -> Page[Project]:
        """Projects, oldest first."""
        ...

    def put_member(self, project_id: int, member: Member) -> None:
        """Add a member, or change an existing member's role and priority."""
        ...

    def remove_member(self, project_id: int, user: str) -> None:
        """Remove a member."""
        ...

    def list_members(
        self, project_id: int, *, limit: int = 100, token: str | None = None
    ) -> Page[Member]:
        """Members by user name."""
        ...

    def get_memberships(self, user: str, project_ids: Collection[int]) -> dict[int, Member]:
        """The user's membership of each of ``project_ids`` they are in, by project id.

        One call for many projects, so that a listing of projects can show its reader
        their own role in each without a lookup per project. Projects the user is not
        in, and projects that do not exist, are left out.
        """
        ...


class TaskStore(Protocol):
    """Tasks with their completions, reviews and predictions.

    The store assigns task and completion ids (whole numbers, increasing within a
    project); ids in what is given are ignored.
    """

    def add_tasks(self, project_id: int, tasks: Sequence[Task]) -> list[Task]:
        """Store tasks with their completions and predictions, all or none.

        Returns:
            The tasks as stored: ids assigned, revision 1, in the order given.
        """
        ...

    def get_task(self, project_id: int, task_id: int) -> Task:
        """The task with its completions (reviews included) and predictions."""
        ...

    def list_tasks(
        self,
        project_id: int,
        query: TaskQuery | None = None,
        *,
        limit: int = 100,
        token: str | None = None,
    ) -> Page[Task]:
        """Tasks in id order, each with its completions and predictions."""
        ...

    def iter_tasks(self, project_id: int, query: TaskQuery | None = None) -> Iterator[Task]:
        """Every matching task, page after page: for selection and export."""
        ...

    def update_task(self, project_id: int, task: Task) -> Task:
        """Store a task's changed data and tags (revision-checked); completions untouched."""
        ...

    def delete_task(self, project_id: int, task_id: int) -> None:
        """Delete a task with its completions and predictions."""
        ...

    def add_completion(self, project_id: int, task_id: int, completion: Completion) -> Completion:
        """Store a new completion of a task; returns it with its id and revision 1."""
        ...

    def update_completion(
        self, project_id: int, task_id: int, completion: Completion
    ) -> Completion:
        """Store a changed completion (revision-checked): result, state, ground truth.

        Its reviews stay as stored: only :meth:`add_review` changes them.
        """
        ...

    def delete_completion(self, project_id: int, task_id: int, completion_id: int) -> None:
        """Delete a completion."""
        ...

    def add_review(
        self, project_id: int, task_id: int, completion_id: int, review: Review
    ) -> Completion:
        """Append a review to a completion; returns the completion at its new revision."""
        ...

    def add_predictions(
        self, project_id: int, predictions: Sequence[tuple[int, Prediction]]
    ) -> None:
        """Store predictions, each for the task whose id it comes with, all or none."""
        ...

    def replace_predictions(
        self,
        project_id: int,
        predictions: Sequence[tuple[int, Prediction]],
        *,
        models: Collection[str],
    ) -> None:
        """Store one prediction per task by ``models``, replacing those models' earlier ones.

        What pre-annotation writes: each task named loses the predictions an earlier
        call stored for any of ``models`` (registry names) and gains the one given,
        in one step per task (never both, never neither). Predictions stored
        otherwise (imported with the task, :meth:`add_predictions`) stay. SQLite
        writes the whole batch in one transaction; DynamoDB one transaction per up to
        100 operations (see the adapter).

        Raises:
            InvalidRequestError: ``models`` empty or a name with a comma; a task named twice.
            NotFoundError: A task is not in the project (checked before anything is written).
        """
        ...


@runtime_checkable
class TaskCounting(Protocol):
    """Optional, beside :class:`TaskStore`: counting and numbered pages in one query each.

    For listings that show "page N of M". A store without it still serves them,
    by walking :meth:`TaskStore.iter_tasks` (see ``annotrain.services.tasks``).
    Implemented by the SQLite store; not (yet) by DynamoDB, where a count is a
    scan of the project's partition anyway.
    """

    def count_tasks(self, project_id: int, query: TaskQuery | None = None) -> int:
        """How many of a project's tasks match (NotFoundError if no project)."""
        ...

    def list_tasks_at(
        self,
        project_id: int,
        query: TaskQuery | None = None,
        *,
        offset: int,
        limit: int = 100,
    ) -> list[Task]:
        """Matching tasks in id order from the ``offset``-th, whole."""
        ...


@runtime_checkable
class UncertaintyOrdering(Protocol):
    """Optional, beside :class:`TaskStore`: a page of tasks most-uncertain-first in one query.

    The order is :attr:`TaskOrder.UNCERTAINTY`'s. Implemented by the SQLite store
    (an index over each task's latest score); a store without it is served by
    walking :meth:`TaskStore.iter_tasks` (see ``annotrain.services.tasks``).
    """

    def list_tasks_by_uncertainty(
        self,
        project_id: int,
        query: TaskQuery | None = None,
        *,
        offset: int,
        limit: int = 100,
    ) -> list[Task]:
        """Matching tasks, lowest latest score first, from the ``offset``-th, whole."""
        ...


class RunStore(Protocol):
    """Runs of training, pre-annotation and OCR jobs."""

    def create_run(self, run: Run) -> Run:
        """Store a new run under its id (AlreadyExistsError if taken); revision 1."""
        ...

    def get_run(self, run_id: str) -> Run:
        """The run, or NotFoundError."""
        ...

    def update_run(self, run: Run) -> Run:
        """Store a changed run (revision-checked); returns it at its new revision."""
        ...

    def list_runs(
        self, project_id: int, *, limit: int = 100, token: str | None = None
    ) -> Page[Run]:
        """A project's runs, newest first: its training history."""
        ...

    def list_runs_by_status(
        self, status: RunStatus, *, limit: int = 100, token: str | None = None
    ) -> Page[Run]:
        """Runs in a status, oldest first: what is queued, what claims to be running."""
        ...


class ModelStore(Protocol):
    """The model registry."""

    def register_model(self, entry: ModelEntry) -> ModelEntry:
        """Store a model as the next version of its name (the given version is ignored)."""
        ...

    def get_model(self, name: str, version: int | None = None) -> ModelEntry:
        """A version of a model, the latest when none is given."""
        ...

    def update_model(self, entry: ModelEntry) -> ModelEntry:
        """Store a changed entry (revision-checked): where deployed, metrics."""
        ...

    def list_models(
        self, *, project_id: int | None = None, limit: int = 100, token: str | None = None
    ) -> Page[ModelEntry]:
        """Models by name then version, optionally only those trained on a project."""
        ...


class ServerStore(Protocol):
    """Running jobs, as the servers page shows them."""

    def put_server(self, server: Server) -> None:
        """Record a running job (replacing the record of the same run)."""
        ...

    def remove_server(self, run_id: str) -> None:
        """Forget a job that stopped."""
        ...

    def list_servers(self, *, limit: int = 100, token: str | None = None) -> Page[Server]:
        """Running jobs, oldest first."""
        ...


class UserStore(Protocol):
    """Users and their API tokens (hashes only)."""

    def create_user(self, user: User) -> User:
        """Store a new user (AlreadyExistsError if the name is taken); revision 1."""
        ...

    def get_user(self, name: str) -> User:
        """The user, or NotFoundError."""
        ...

    def list_users(self, *, limit: int = 100, token: str | None = None) -> Page[User]:
        """Users by name."""
        ...

    def delete_user(self, name: str) -> None:
        """Delete a user and their tokens."""
        ...

    def add_token(self, token: ApiToken) -> None:
        """Store a token hash for an existing user."""
        ...

    def find_token(self, token_hash: str) -> ApiToken | None:
        """The token with this hash, or None: how a request is authenticated."""
        ...

    def delete_token(self, token_hash: str) -> None:
        """Revoke a token."""
        ...


class LicenseStore(Protocol):
    """License documents as imported."""

    def put_license(self, record: LicenseRecord) -> None:
        """Store a license (replacing one with the same id)."""
        ...

    def get_license(self, license_id: str) -> LicenseRecord:
        """The license, or NotFoundError."""
        ...

    def list_licenses(self, *, limit: int = 100, token: str | None = None) -> Page[LicenseRecord]:
        """Licenses by id."""
        ...

    def delete_license(self, license_id: str) -> None:
        """Delete a license."""
        ...


class UsageMeter(Protocol):
    """Server time, recorded by billing dimension."""

    def record_usage(self, record: UsageRecord) -> None:
        """Record one use; the same (run, dimension, start) reported again keeps the first."""
        ...

    def list_usage(
        self, *, since: datetime, until: datetime, limit: int = 100, token: str | None = None
    ) -> Page[UsageRecord]:
        """Uses that started in [since, until), oldest first."""
        ...


@runtime_checkable
class MeteringLedger(Protocol):
    """The local ledger of what was sent to AWS Marketplace Metering, per hour and dimension.

    Marketplace metering happens on a Marketplace instance, which keeps its lab in
    SQLite: the SQLite store implements this; a serverless deployment is billed by
    AWS for its own resources and has no ledger. ``(hour, dimension)`` is the key:
    an entry is written once and only its state changes afterwards.
    """

    def add_metering(self, entry: MeteringEntry) -> MeteringEntry:
        """Store a new entry at revision 1, or return the one stored under its key unchanged."""
        ...

    def update_metering(self, entry: MeteringEntry) -> MeteringEntry:
        """Store a changed state, attempts, record id or error (revision-checked).

        The quantity never changes: a different one raises InvalidRequestError.
        """
        ...

    def list_metering(
        self,
        *,
        since: datetime,
        until: datetime,
        states: frozenset[MeteringState] | None = None,
        limit: int = 100,
        token: str | None = None,
    ) -> Page[MeteringEntry]:
        """Entries whose hour is in [since, until), in the given states, by hour then dimension."""
        ...


class Store(
    ProjectStore, TaskStore, RunStore, ModelStore, ServerStore, UserStore, LicenseStore,
    UsageMeter, Protocol,
):  # fmt: skip
    """Everything the lab keeps: what one database adapter provides."""


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A stored file.

    Attributes:
        key: Its path in the store (``projects/3/tasks/17/page-1.png``).
        size: Bytes.
        content_type: Its media type.
    """

    key: str
    size: int
    content_type: str


class BlobStore(Protocol):
    """Files: task images, dataset snapshots, models, logs, backups. Streams, never whole.

    Keys are relative paths of letters, digits and ``-_.=/``; no ``..``, no leading
    ``/``. Anything else raises InvalidRequestError naming the key.
    """

    def put(
        self, key: str, stream: BinaryIO, *, content_type: str = "application/octet-stream"
    ) -> BlobInfo:
        """Store a file read from ``stream``; it appears whole or not at all."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A stream of the file (NotFoundError if absent); the caller closes it."""
        ...

    def head(self, key: str) -> BlobInfo:
        """Size and content type (NotFoundError if absent)."""
        ...

    def delete(self, key: str) -> None:
        """Delete a file."""
        ...

    def list(self, prefix: str, *, limit: int = 100, token: str | None = None) -> Page[BlobInfo]:
        """Files whose key starts with ``prefix``, by key."""
        ...


@runtime_checkable
class PresignedUrls(Protocol):
    """Direct browser access to files, where the blob store offers it (S3).

    Runtime-checkable: a service asks its blob store whether it is one.
    """

    def download_url(self, key: str, *, expires_in: int = 900) -> str:
        """A URL that downloads the file without credentials, for ``expires_in`` seconds."""
        ...

    def upload_url(
        self, key: str, *, content_type: str, max_bytes: int, expires_in: int = 900
    ) -> tuple[str, dict[str, str]]:
        """A URL and form fields for a browser to upload one file of at most ``max_bytes``."""
        ...


class BackupTarget(Protocol):
    """Where backups are kept: a folder or an S3 prefix (single node).

    A backup is a named set of files (``annotrain-20250301T120000Z``); ``path`` is a
    relative path inside it (``manifest.json``, ``files/blobs/…``), letters, digits
    and ``-_.=~/`` only, without ``..`` or empty parts.
    """

    def describe(self) -> str:
        """Where the backups are, for messages (``/var/backups/annotrain``, ``s3://b/p``)."""
        ...

    def names(self) -> list[str]:
        """The backups present, complete or not, by name."""
        ...

    def write(self, name: str, path: str, stream: BinaryIO) -> None:
        """Store one file of a backup; it appears whole or not at all."""
        ...

    def open(self, name: str, path: str) -> BinaryIO:
        """A stream of one file (NotFoundError if absent); the caller closes it."""
        ...

    def delete_backup(self, name: str) -> None:
        """Delete a backup and every file in it."""
        ...


class LabDatabase(Protocol):
    """The single node's database as a file: copied while in use, checked, counted."""

    def backup_into(self, path: Path) -> None:
        """Write a consistent copy of the live database to ``path`` (online backup)."""
        ...

    def check_copy(self, path: Path) -> None:
        """Raise AnnotrainError naming ``path`` unless it is a sound database this
        version of annotrain can open."""
        ...

    def count_copy(self, path: Path) -> dict[str, int]:
        """How many rows each table of a copy holds (reviews counted one by one)."""
        ...


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What to run: ``python -m batch_jobs.<kind> --run-id <run_id>``.

    Attributes:
        kind: Which job.
        run_id: The run it serves; the job reads everything else from the stores.
        use_gpu: GPU queue or device, else CPU.
    """

    kind: JobKind
    run_id: str
    use_gpu: bool = False


@dataclass(frozen=True, slots=True)
class JobStatus:
    """What the runner knows of a job.

    Attributes:
        status: Where it stands.
        job_ref: The runner's handle (process id, AWS Batch job id).
        reason: Why it failed or was cancelled (exit code, signal, Batch reason).
    """

    status: RunStatus
    job_ref: str
    reason: str | None = None


class JobRunner(Protocol):
    """Runs jobs: local processes on a single node, AWS Batch in the cloud."""

    def submit(self, spec: JobSpec) -> str:
        """Queue a job; returns its handle."""
        ...

    def cancel(self, run_id: str) -> None:
        """Stop a job (queued or running); cancelling a finished one does nothing."""
        ...

    def status(self, run_id: str) -> JobStatus:
        """Where a submitted job stands (NotFoundError for one never submitted)."""
        ...


class LicenseSigner(Protocol):
    """The key that signs this instance's PAYG licenses (kept where only the lab reads it)."""

    @property
    def key_id(self) -> str:
        """The key's id, as signatures name it (``instance-<fingerprint>``)."""
        ...

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        ...

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        ...


class UsageReporter(Protocol):
    """Where metered usage goes: AWS Marketplace Metering's MeterUsage."""

    def meter_usage(
        self, *, product_code: str, hour: datetime, dimension: str, quantity: int
    ) -> str:
        """Report one hour's quantity of one dimension; returns the metering record id.

        Sending the identical request again is answered with the same record id.

        Raises:
            MeteringRefusedError: AWS did not take it; ``retry`` says whether a later
                identical send may succeed.
        """


@dataclass(frozen=True, slots=True)
class InstanceIdentity:
    """Who this EC2 instance is, from its instance identity document.

    Attributes:
        instance_id: ``i-…``; also the admin's first API token, so never logged.
        region: The AWS region.
        account_id: The account that runs the instance.
        instance_type: ``g4dn.xlarge``…
        image_id: The AMI it was launched from.
        product_codes: The AWS Marketplace product codes of the launch (none when
            it was not launched from a Marketplace listing).
    """

    instance_id: str
    region: str
    account_id: str
    instance_type: str = ""
    image_id: str = ""
    product_codes: tuple[str, ...] = ()


class InstanceMetadata(Protocol):
    """Where the identity comes from (IMDSv2 on EC2, a fake in tests)."""

    def identity(self) -> InstanceIdentity:
        """This instance's identity; raises AnnotrainError when it cannot be read."""
        ...


class Clock(Protocol):
    """The time: injected so tests can set it."""

    def now(self) -> datetime:
        """Now, timezone-aware UTC."""
        ...


# --- the model code, as the jobs call it (batch_jobs/text; torch stays there) ---------


class TrainingProgress(Protocol):
    """Where a training stands, as the trainer reports it."""

    @property
    def percent(self) -> float:
        """0 to 100, over every model the run trains."""
        ...

    @property
    def epoch(self) -> int | None:
        """The epoch under way."""
        ...

    @property
    def step(self) -> int | None:
        """The optimisation step."""
        ...

    @property
    def total_steps(self) -> int | None:
        """The steps the run will take at most."""
        ...

    @property
    def loss(self) -> float | None:
        """The latest training loss."""
        ...

    @property
    def model_name(self) -> str | None:
        """The model being trained."""
        ...

    @property
    def message(self) -> str | None:
        """A line for people, if any."""
        ...


class TrainedModel(Protocol):
    """One trained model: a ``save_pretrained`` folder with ``annotrain.json``, and its scores."""

    @property
    def spec(self) -> ModelSpec:
        """The model the snapshot asked for."""
        ...

    @property
    def directory(self) -> Path:
        """The model folder (loads with transformers as it is)."""
        ...

    @property
    def metrics(self) -> Mapping[str, Any]:
        """JSON-safe: ``per_label`` P/R/F1/support, ``micro``, ``macro``, ``confusion_matrix``."""
        ...

    @property
    def history(self) -> Sequence[Mapping[str, Any]]:
        """One entry per evaluation: epoch, loss, scores."""
        ...

    @property
    def plots(self) -> Sequence[Path]:
        """PNG files: learning curves, confusion matrices."""
        ...


class Trainer(Protocol):
    """Trains every model a snapshot asks for (``batch_jobs.text``'s ``train_snapshot``).

    Errors a person can act on subclass AnnotrainError; their text is the run's
    failure reason.
    """

    def __call__(
        self,
        snapshot: TrainingSnapshot,
        out_dir: Path,
        *,
        device: str = "cpu",
        on_progress: Callable[[TrainingProgress], None],
        log: logging.Logger | None,
        should_stop: Callable[[], bool],
    ) -> list[TrainedModel]:
        """Train into ``out_dir``; returns the models (none when asked to stop)."""
        ...


class TaskPrediction(Protocol):
    """What the models predict for one task."""

    @property
    def result(self) -> Sequence[Mapping[str, Any]]:
        """Result items in Label Studio JSON, each with its ``score``."""
        ...

    @property
    def score(self) -> float:
        """The task's score (confidence, 0 to 1)."""
        ...

    @property
    def model_version(self) -> str:
        """Which models (and versions) predicted it."""
        ...


class TextPredictor(Protocol):
    """Loaded models that predict for tasks."""

    def predict(self, tasks: Sequence[Mapping[str, Any]]) -> list[TaskPrediction]:
        """One prediction per task (``{"id", "data"}``), in order."""
        ...


class PredictorLoader(Protocol):
    """Loads model folders into one predictor (``batch_jobs.text``'s ``load_models``)."""

    def __call__(self, directories: Sequence[Path], device: str = "cpu") -> TextPredictor:
        """The models of these folders, on ``device``."""
        ...
